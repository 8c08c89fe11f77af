//! Saving the audio behind a caption (`[clips]`): the window a caption was made from, with
//! `pre_seconds` before and `post_seconds` after it, as a FLAC (default) or WAV file named by
//! its UTC time and a slug of the caption ([`retention::file_name`]).
//!
//! ```text
//! DSP thread ──model-rate samples──▶ History (RAM ring, fixed size) ◀── cut ── clip writer thread
//! inference thread ──request(window, caption)──▶ job queue (bounded) ──────────▶ encode, write,
//!                                                                                 retention
//! ```
//!
//! Invariants:
//! - capture and inference never wait for the disk: the inference thread only queues a request
//!   (a full queue is a counted failure, the caption still goes out), and the writer thread
//!   ([`ClipRecorder`], `earshot-clips`) does the encoding, writing and pruning;
//! - memory is bounded: the ring ([`history::History`]) is allocated at start for
//!   `window + pre + post + queue slack` seconds, at most [`history::MAX_PENDING`] clips wait,
//!   and the writer reuses one sample buffer (a clip is encoded in memory, one at a time);
//! - a failed write (full or read-only disk, a folder that went away) is logged (the first and
//!   then every power of two) and counted in [`ClipStats::failed`]; nothing else stops. A clip
//!   is written to `.<name>.part` and renamed, so a cut-short write never looks like a clip;
//! - retention ([`retention::prune`]) runs at start and after every write, and only touches
//!   files named like clips;
//! - the path a caption's event names is where its clip is being written; the clip appears
//!   after `post_seconds` of further audio (or at the end of the stream).

pub mod encode;
pub mod history;
pub mod retention;

pub use encode::ClipFormat;
pub use retention::Retention;

use anyhow::{Context, Result};
use history::{History, Job, Next};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

/// `[clips]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipSettings {
    pub dir: PathBuf,
    pub format: ClipFormat,
    pub pre_seconds: f64,
    pub post_seconds: f64,
    pub retention: Retention,
}

/// Clip counters, shared with the health reports.
#[derive(Debug, Default)]
pub struct ClipStats {
    pub written: AtomicU64,
    /// Clips deleted by retention.
    pub pruned: AtomicU64,
    /// Clips that could not be written (disk full or read-only, queue full, ...).
    pub failed: AtomicU64,
}

impl ClipStats {
    fn fail(&self, what: impl std::fmt::Display) {
        let n = self.failed.fetch_add(1, Ordering::Relaxed) + 1;
        if n == 1 || n.is_power_of_two() {
            log::error!("clips: {what} ({n} clips failed so far; captioning goes on)");
        }
    }
}

/// The clip writer of one run: its thread, the shared ring, and how a request becomes a job.
pub struct ClipRecorder {
    history: Arc<History>,
    stats: Arc<ClipStats>,
    settings: ClipSettings,
    rate: u32,
    last_name: Option<String>,
    thread: Option<JoinHandle<()>>,
}

impl ClipRecorder {
    /// Enforces retention once, then starts the writer thread. `rate`: model rate;
    /// `capacity`: ring length in samples (see [`ring_samples`]); `lossless`: the source waits
    /// for the writer instead of overwriting audio a clip still needs.
    pub fn start(
        settings: &ClipSettings,
        rate: u32,
        capacity: usize,
        lossless: bool,
        stats: Arc<ClipStats>,
    ) -> Result<ClipRecorder> {
        if let Err(e) = std::fs::create_dir_all(&settings.dir) {
            // Each clip tries again (and counts its own failure): a USB stick may come later.
            log::error!(
                "clips: cannot create {}: {e}; clips will fail until it can be",
                settings.dir.display()
            );
        }
        prune_now(settings, &stats);
        let history = Arc::new(History::new(capacity, lossless));
        let (h, st, s) = (history.clone(), stats.clone(), settings.clone());
        let thread = std::thread::Builder::new()
            .name("earshot-clips".into())
            .spawn(move || {
                writer(&h, &st, &s, rate);
                h.writer_gone();
            })
            .context("cannot start the clip writer thread")?;
        Ok(ClipRecorder {
            history,
            stats,
            settings: settings.clone(),
            rate,
            last_name: None,
            thread: Some(thread),
        })
    }

    /// The ring the DSP thread fills.
    pub fn history(&self) -> Arc<History> {
        self.history.clone()
    }

    pub fn stats(&self) -> &Arc<ClipStats> {
        &self.stats
    }

    /// Queues the clip of a window (stream samples `[start, end)` at the model rate, `start_time`
    /// the wall-clock time of `start`) for `caption`. Returns the path the clip will have, or
    /// `None` when it was refused (queue full: counted as failed).
    pub fn request(
        &mut self,
        start: u64,
        end: u64,
        start_time: SystemTime,
        caption: &str,
    ) -> Option<PathBuf> {
        let rate = f64::from(self.rate);
        let pre = (self.settings.pre_seconds * rate).round() as u64;
        let post = (self.settings.post_seconds * rate).round() as u64;
        let first_time = start_time
            .checked_sub(Duration::from_secs_f64(self.settings.pre_seconds))
            .unwrap_or(start_time);
        let mut name = retention::file_name(first_time, caption, self.settings.format);
        if self.last_name.as_deref() == Some(name.as_str()) {
            // Two clips of the same caption in the same millisecond (tiny hops): keep both.
            name = name.replacen("Z_", "Z_2-", 1);
        }
        let path = self.settings.dir.join(&name);
        let job = Job {
            start: start.saturating_sub(pre),
            end: end.saturating_add(post),
            path: path.clone(),
        };
        if !self.history.request(job) {
            self.stats.fail(format!(
                "{} waiting clips already (the disk is too slow?): {name} skipped",
                history::MAX_PENDING
            ));
            return None;
        }
        self.last_name = Some(name);
        Some(path)
    }

    /// No more requests: the writer writes what is queued (with the audio there is) and stops.
    /// The DSP thread must have called [`History::input_done`] (or do so) for the last clips.
    pub fn finish(&mut self) {
        self.history.close_jobs();
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                log::error!("clips: the writer thread panicked");
            }
        }
    }
}

impl Drop for ClipRecorder {
    fn drop(&mut self) {
        self.history.input_done();
        self.finish();
    }
}

/// Ring length for clips of a `window`-sample window with `pre`/`post` seconds and `lead`
/// samples the DSP thread may run ahead of the inference thread (queued windows), plus 2 s.
pub fn ring_samples(rate: u32, window: usize, s: &ClipSettings, lead: usize) -> usize {
    let r = f64::from(rate);
    window + ((s.pre_seconds + s.post_seconds + 2.0) * r).ceil() as usize + lead
}

fn prune_now(s: &ClipSettings, stats: &ClipStats) {
    let p = retention::prune(&s.dir, &s.retention, SystemTime::now());
    stats.pruned.fetch_add(p.deleted, Ordering::Relaxed);
}

/// The writer thread: cut, encode, write, prune — until no more jobs come.
fn writer(h: &History, stats: &ClipStats, s: &ClipSettings, rate: u32) {
    let mut buf: Vec<f32> = Vec::with_capacity(h.capacity());
    while let Next::Cut { job, first } = h.next_job(&mut buf) {
        if first > job.start {
            log::warn!(
                "clips: {} lacks its first {:.2} s (the audio had moved on)",
                job.path.display(),
                (first - job.start) as f64 / f64::from(rate)
            );
        }
        if buf.is_empty() {
            stats.fail(format!("{}: no audio left to save", job.path.display()));
            continue;
        }
        match write_clip(&job.path, &buf, rate, s.format) {
            Ok(()) => {
                stats.written.fetch_add(1, Ordering::Relaxed);
                log::debug!("clips: wrote {}", job.path.display());
            }
            Err(e) => stats.fail(format!("{e:#}")),
        }
        prune_now(s, stats);
    }
}

/// Encodes and writes one clip through `.<name>.part` beside it (removed again on failure).
pub fn write_clip(path: &Path, samples: &[f32], rate: u32, format: ClipFormat) -> Result<()> {
    let bytes = encode::encode(samples, rate, format)
        .with_context(|| format!("encoding {}", path.display()))?;
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
    }
    // `.<name>.part`: hidden (the HTTP page's clip list skips dot files) until renamed.
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let part = path.with_file_name(format!(".{name}.part"));
    let written = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&part)?;
        f.write_all(&bytes)?;
        f.sync_data()?;
        drop(f);
        std::fs::rename(&part, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&part);
        return Err(e).with_context(|| format!("cannot write {}", path.display()));
    }
    Ok(())
}
