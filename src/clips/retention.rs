//! Clip file names and retention.
//!
//! A clip is named `YYYYMMDDTHHMMSS.mmmZ_<slug>.<ext>`: the UTC time of its first sample and a
//! slug of its caption (`20261207T130501.250Z_a-dog-barks.flac`) — no colons, so the names also
//! work on FAT-formatted USB sticks. Retention ([`prune`]) only ever looks at files named that
//! way (a user's own files in the folder are never touched) and deletes, oldest first (by name,
//! which is by time): every clip older than `max_age_days` (by modification time), then as many
//! as it takes to keep at most `max_files` clips and `max_megabytes` (10^6 bytes) in all.
//! Leftover `.<clip name>.part` files (a write cut short by a crash) are removed too. It runs at
//! start and after every write; its memory is one entry per clip in the folder.

use super::encode::ClipFormat;
use crate::sink::format::iso8601;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// Retention limits (`None`: no limit of that kind).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Retention {
    pub max_files: Option<u64>,
    pub max_megabytes: Option<f64>,
    pub max_age_days: Option<f64>,
}

/// What one retention pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pruned {
    pub deleted: u64,
    /// Deletions that failed (logged).
    pub failed: u64,
}

/// The longest slug, in bytes.
pub const MAX_SLUG: usize = 48;

/// `a dog barks!` → `a-dog-barks`: lower-case ASCII letters and digits, words joined by `-`, cut
/// at a word boundary to at most [`MAX_SLUG`] bytes; `caption` when nothing is left.
pub fn slug(caption: &str) -> String {
    let mut out = String::new();
    for word in caption
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let add = word.len() + usize::from(!out.is_empty());
        if out.len() + add > MAX_SLUG {
            if out.is_empty() {
                out.push_str(&word[..MAX_SLUG].to_ascii_lowercase());
            }
            break;
        }
        if !out.is_empty() {
            out.push('-');
        }
        out.push_str(&word.to_ascii_lowercase());
    }
    if out.is_empty() {
        out.push_str("caption");
    }
    out
}

/// `20261207T130501.250Z_a-dog-barks.flac`.
pub fn file_name(time: SystemTime, caption: &str, format: ClipFormat) -> String {
    // iso8601: 2026-12-07T13:05:01.250Z
    let iso = iso8601(time);
    let compact: String = iso.chars().filter(|&c| c != '-' && c != ':').collect();
    format!("{compact}_{}.{}", slug(caption), format.extension())
}

/// A clip's file name as [`file_name`] makes them (with any extension).
pub fn is_clip_name(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() > 21
        && b[..8].iter().all(u8::is_ascii_digit)
        && b[8] == b'T'
        && b[9..15].iter().all(u8::is_ascii_digit)
        && b[15] == b'.'
        && b[16..19].iter().all(u8::is_ascii_digit)
        && &b[19..21] == b"Z_"
        && (name.ends_with(".flac") || name.ends_with(".wav"))
}

/// Enforces `limits` on the clips in `dir`.
pub fn prune(dir: &Path, limits: &Retention, now: SystemTime) -> Pruned {
    let mut done = Pruned::default();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return done;
    };
    // (name, bytes, modified)
    let mut clips: Vec<(String, u64, SystemTime)> = Vec::new();
    let remove = |path: &Path, done: &mut Pruned| match std::fs::remove_file(path) {
        Ok(()) => done.deleted += 1,
        Err(e) => {
            done.failed += 1;
            log::warn!("clips: cannot delete {}: {e}", path.display());
        }
    };
    for e in entries.flatten() {
        let Ok(name) = e.file_name().into_string() else {
            continue;
        };
        let partial = name
            .strip_prefix('.')
            .and_then(|n| n.strip_suffix(".part"))
            .is_some_and(is_clip_name);
        if !partial && !is_clip_name(&name) {
            continue;
        }
        let Ok(meta) = e.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        if partial {
            remove(&e.path(), &mut Pruned::default());
            continue;
        }
        let modified = meta.modified().unwrap_or(now);
        clips.push((name, meta.len(), modified));
    }
    clips.sort();
    let max_age = limits
        .max_age_days
        .map(|d| Duration::from_secs_f64((d * 86_400.0).max(0.0)));
    let mut keep = Vec::with_capacity(clips.len());
    for c in clips {
        let age = now.duration_since(c.2).unwrap_or_default();
        if max_age.is_some_and(|m| age > m) {
            remove(&dir.join(&c.0), &mut done);
        } else {
            keep.push(c);
        }
    }
    let max_bytes = limits.max_megabytes.map(|m| (m * 1e6) as u64);
    let mut bytes: u64 = keep.iter().map(|c| c.1).sum();
    let mut files = keep.len() as u64;
    for c in keep {
        let too_many = limits.max_files.is_some_and(|m| files > m);
        let too_big = max_bytes.is_some_and(|m| bytes > m);
        if !too_many && !too_big {
            break;
        }
        remove(&dir.join(&c.0), &mut done);
        files -= 1;
        bytes -= c.1;
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn names_and_slugs() {
        let t = UNIX_EPOCH + Duration::from_millis(1_795_752_306_250);
        let n = file_name(t, "A dog barks, twice!", ClipFormat::Flac);
        assert_eq!(n, "20261127T040506.250Z_a-dog-barks-twice.flac");
        assert!(is_clip_name(&n));
        assert!(!is_clip_name("holiday.flac"));
        assert!(!is_clip_name("20261127T040506.250Z_x.mp3"));
        assert_eq!(slug("¿?"), "caption");
        assert_eq!(slug(&"word ".repeat(40)).len(), 44);
        assert_eq!(slug(&"x".repeat(100)).len(), MAX_SLUG);
        assert_eq!(slug("café au lait"), "caf-au-lait");
    }

    fn clip(dir: &Path, name: &str, bytes: usize, age_days: f64, now: SystemTime) {
        let p = dir.join(name);
        std::fs::write(&p, vec![0u8; bytes]).unwrap();
        let t = now - Duration::from_secs_f64(age_days * 86_400.0);
        std::fs::File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_modified(t)
            .unwrap();
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    /// Five clips a day apart (the oldest first by name), 1000 bytes each, and a user's file.
    fn folder(now: SystemTime) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..5u32 {
            let name = format!("2026120{}T120000.000Z_a-dog-barks.flac", i + 1);
            clip(dir.path(), &name, 1000, f64::from(5 - i), now);
        }
        clip(dir.path(), "my-notes.flac", 50_000, 100.0, now);
        dir
    }

    #[test]
    fn retention_by_count_size_and_age() {
        let now = SystemTime::now();
        let limits = |files, mb, days| Retention {
            max_files: files,
            max_megabytes: mb,
            max_age_days: days,
        };
        // By count: the oldest go first; the user's file is never touched.
        let d = folder(now);
        let p = prune(d.path(), &limits(Some(2), None, None), now);
        assert_eq!(
            p,
            Pruned {
                deleted: 3,
                failed: 0
            }
        );
        assert_eq!(
            names(d.path()),
            [
                "20261204T120000.000Z_a-dog-barks.flac",
                "20261205T120000.000Z_a-dog-barks.flac",
                "my-notes.flac"
            ]
        );
        // By size: 3500 bytes keep three 1000-byte clips.
        let d = folder(now);
        assert_eq!(
            prune(d.path(), &limits(None, Some(0.0035), None), now).deleted,
            2
        );
        assert_eq!(names(d.path()).len(), 4);
        assert!(names(d.path())[0].starts_with("20261203"));
        // By age: clips older than 2.5 days (those of 3, 4 and 5 days).
        let d = folder(now);
        assert_eq!(
            prune(d.path(), &limits(None, None, Some(2.5)), now).deleted,
            3
        );
        assert_eq!(names(d.path())[0], "20261204T120000.000Z_a-dog-barks.flac");
        // No limits: nothing goes; a leftover partial write does.
        let d = folder(now);
        clip(d.path(), ".20261206T120000.000Z_x.flac.part", 10, 0.0, now);
        assert_eq!(prune(d.path(), &Retention::default(), now).deleted, 0);
        assert_eq!(names(d.path()).len(), 6);
        // A folder that is not there is nothing to prune.
        assert_eq!(
            prune(&d.path().join("none"), &limits(Some(1), None, None), now),
            Pruned::default()
        );
    }
}
