//! What a bundle may read, and whether it is what train/ wrote (docs/bundle-format.md,
//! "Integrity").
//!
//! Every file name in the manifest must name a regular file inside the bundle directory: no
//! absolute paths, no `..`, no symbolic link that leads out of the directory. A manifest with a
//! `files` section (`{"encoder.onnx": {"sha256": "<hex>", "bytes": N}, ...}`, written by
//! `python -m earshot_train.integrity`) gets every listed file checked before any graph is
//! parsed, and every file the runtime reads must be listed. Bundles without the section load as
//! before (they were written before it existed).
//!
//! Cost: one read of each listed file (the page cache then serves tract's read), hashed on one
//! thread per file; with SHA extensions (x86 SHA-NI, ARMv8 crypto) about 1–2 GB/s per core.

use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

/// One entry of the manifest's `files` section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileEntry {
    /// Lower-case hex sha256 of the file's bytes (64 digits).
    pub sha256: String,
    /// File size in bytes (optional; checked first, so a truncated file says so).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
}

/// The `files` section: file name (inside the bundle) → entry.
pub type FileHashes = BTreeMap<String, FileEntry>;

/// Checks the shape of the section (64 hex digits each), for [`crate::model::Manifest::validate`].
pub fn validate_section(files: &FileHashes) -> Result<()> {
    for (name, e) in files {
        ensure!(
            e.sha256.len() == 64 && e.sha256.bytes().all(|b| b.is_ascii_hexdigit()),
            "files.{name}.sha256 must be 64 hex digits (got {:?})",
            e.sha256
        );
    }
    Ok(())
}

/// `name` without `./` components (`./vocab.txt` and `vocab.txt` are the same file), or an
/// error when it could leave the bundle directory.
fn inside_name(name: &str, what: &str) -> Result<PathBuf> {
    ensure!(!name.is_empty(), "{what} file name is empty");
    let mut out = PathBuf::new();
    for c in Path::new(name).components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => bail!(
                "{what} {name:?} is outside the bundle directory (manifest paths are file names \
                 inside the bundle)"
            ),
        }
    }
    ensure!(
        !out.as_os_str().is_empty(),
        "{what} {name:?} is not a file name"
    );
    Ok(out)
}

/// Resolves `name` (a path from the manifest) to a regular file inside bundle `dir`, with an
/// error that says what is wrong: missing, a directory, not a regular file, or outside the
/// bundle (an absolute path, `..`, or a symbolic link that leads out).
pub fn bundle_file(dir: &Path, name: &str, what: &str) -> Result<PathBuf> {
    let rel = inside_name(name, what)?;
    let path = dir.join(&rel);
    match std::fs::symlink_metadata(&path) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("{what} {} is missing", path.display())
        }
        Err(e) => bail!("cannot read {what} {}: {e}", path.display()),
    }
    let md = std::fs::metadata(&path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            anyhow::anyhow!(
                "{what} {} is missing (a symbolic link to nothing)",
                path.display()
            )
        } else {
            anyhow::anyhow!("cannot read {what} {}: {e}", path.display())
        }
    })?;
    ensure!(
        !md.is_dir(),
        "{what} {} is not a file (it is a directory)",
        path.display()
    );
    ensure!(
        md.is_file(),
        "{what} {} is not a regular file",
        path.display()
    );
    let real = path
        .canonicalize()
        .with_context(|| format!("cannot resolve {what} {}", path.display()))?;
    let home = dir
        .canonicalize()
        .with_context(|| format!("cannot resolve bundle directory {}", dir.display()))?;
    ensure!(
        real.starts_with(&home),
        "{what} {} is outside the bundle directory (a symbolic link to {})",
        path.display(),
        real.display()
    );
    Ok(path)
}

/// sha256 (lower-case hex) and size of the file at `path`.
pub fn sha256_file(path: &Path) -> Result<(String, u64)> {
    let mut f =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f
            .read(&mut buf)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    let hex = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok((hex, n))
}

/// Checks bundle `dir` against its `files` section: every file in `used` (manifest name, what it
/// is) must be listed, and every listed file must be inside the bundle and have the listed size
/// and sha256. Files are hashed in parallel, one thread each; errors are reported in the
/// section's order.
pub fn verify(dir: &Path, files: &FileHashes, used: &[(&str, &str)]) -> Result<()> {
    let mut listed: BTreeMap<PathBuf, (&str, &FileEntry)> = BTreeMap::new();
    for (name, e) in files {
        listed.insert(inside_name(name, "files entry")?, (name.as_str(), e));
    }
    for (name, what) in used {
        ensure!(
            listed.contains_key(&inside_name(name, what)?),
            "{what} {name} is not listed in the manifest's files section (once the section \
             exists, every file the runtime reads needs its sha256 there)"
        );
    }
    let mut jobs = Vec::with_capacity(listed.len());
    for (name, e) in listed.values() {
        let path = bundle_file(dir, name, "listed file")?;
        let size = std::fs::metadata(&path)?.len();
        if let Some(bytes) = e.bytes {
            ensure!(
                size == bytes,
                "{name} has {size} bytes but the manifest's files section says {bytes} \
                 (truncated or changed after export)"
            );
        }
        jobs.push((*name, *e, path));
    }
    let results: Vec<Result<(String, u64)>> = std::thread::scope(|s| {
        let handles: Vec<_> = jobs
            .iter()
            .map(|(_, _, path)| s.spawn(move || sha256_file(path)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| bail!("hashing thread panicked"))
            })
            .collect()
    });
    for ((name, e, _), r) in jobs.iter().zip(results) {
        let (hex, _) = r?;
        ensure!(
            hex.eq_ignore_ascii_case(&e.sha256),
            "{name}: sha256 {hex} does not match the manifest's {} (the file is corrupted or \
             was changed after export)",
            e.sha256
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_known_bytes() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("abc");
        std::fs::write(&p, b"abc").unwrap();
        let (hex, n) = sha256_file(&p).unwrap();
        assert_eq!(
            hex,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(n, 3);
    }

    #[test]
    fn names_that_leave_the_bundle_are_refused() {
        for bad in ["/etc/passwd", "../x", "a/../../x", "..", ""] {
            assert!(inside_name(bad, "vocabulary").is_err(), "{bad}");
        }
        assert_eq!(
            inside_name("./a/b.onnx", "x").unwrap(),
            PathBuf::from("a/b.onnx")
        );
    }

    #[test]
    fn verify_checks_listed_files_and_coverage() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("a.onnx"), b"abc").unwrap();
        let good = FileEntry {
            sha256: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad".into(),
            bytes: Some(3),
        };
        let mut files = FileHashes::new();
        files.insert("a.onnx".into(), good.clone());
        verify(tmp.path(), &files, &[("./a.onnx", "encoder")]).unwrap();
        let e = verify(tmp.path(), &files, &[("b.onnx", "decoder")]).unwrap_err();
        assert!(format!("{e:#}").contains("not listed"), "{e:#}");
        files.insert(
            "a.onnx".into(),
            FileEntry {
                sha256: "0".repeat(64),
                bytes: None,
            },
        );
        let e = verify(tmp.path(), &files, &[]).unwrap_err();
        assert!(format!("{e:#}").contains("does not match"), "{e:#}");
        files.insert(
            "a.onnx".into(),
            FileEntry {
                bytes: Some(4),
                ..good
            },
        );
        let e = verify(tmp.path(), &files, &[]).unwrap_err();
        assert!(format!("{e:#}").contains("3 bytes"), "{e:#}");
    }
}
