//! Which model bundle to use when `--model` is not given.
//!
//! Order: `--model DIR`, `$EARSHOT_MODEL`, `<exe dir>/models/default`,
//! `<exe dir>/../share/earshot/models/default`, `/usr/share/earshot/models/default`, and the
//! source tree's `models/default` (compile-time `$CARGO_MANIFEST_DIR`, so `cargo run` works).
//! An explicit `--model` or `$EARSHOT_MODEL` is used as given (no silent fallback). The caller
//! reads the environment and the executable path ([`crate::commands::load_model`]).

use anyhow::{bail, Result};
use std::path::{Path, PathBuf};

/// Environment variable naming a bundle directory.
pub const MODEL_ENV: &str = "EARSHOT_MODEL";

/// Where the model was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Flag,
    Env,
    Default,
}

/// The candidate default locations, in order (without `--model` / `$EARSHOT_MODEL`).
pub fn default_candidates(exe: Option<&Path>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(dir) = exe.and_then(|e| e.parent()) {
        out.push(dir.join("models/default"));
        out.push(dir.join("../share/earshot/models/default"));
    }
    out.push(PathBuf::from("/usr/share/earshot/models/default"));
    out.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("models/default"));
    out
}

fn is_bundle(dir: &Path) -> bool {
    dir.join("manifest.json").is_file()
}

/// Resolves the bundle directory. `flag` is `--model`, `env` the value of `$EARSHOT_MODEL`.
pub fn resolve_with(
    flag: Option<&Path>,
    env: Option<&str>,
    exe: Option<&Path>,
) -> Result<(PathBuf, Origin)> {
    if let Some(p) = flag {
        return Ok((p.to_path_buf(), Origin::Flag));
    }
    if let Some(e) = env.filter(|e| !e.is_empty()) {
        return Ok((PathBuf::from(e), Origin::Env));
    }
    let candidates = default_candidates(exe);
    if let Some(found) = candidates.iter().find(|c| is_bundle(c)) {
        return Ok((found.clone(), Origin::Default));
    }
    let tried: Vec<String> = candidates.iter().map(|c| c.display().to_string()).collect();
    bail!(
        "no model found: pass --model DIR or set {MODEL_ENV}; tried {}",
        tried.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_of_precedence() {
        let tmp = tempfile::tempdir().unwrap();
        let exe = tmp.path().join("bin/earshot");
        let (p, o) = resolve_with(Some(Path::new("/x")), Some("/y"), Some(&exe)).unwrap();
        assert_eq!((p, o), (PathBuf::from("/x"), Origin::Flag));
        let (p, o) = resolve_with(None, Some("/y"), Some(&exe)).unwrap();
        assert_eq!((p, o), (PathBuf::from("/y"), Origin::Env));
        // Next to the executable beats the later candidates.
        let next = tmp.path().join("bin/models/default");
        std::fs::create_dir_all(&next).unwrap();
        std::fs::write(next.join("manifest.json"), "{}").unwrap();
        let (p, o) = resolve_with(None, Some(""), Some(&exe)).unwrap();
        assert_eq!((p, o), (next, Origin::Default));
    }

    #[test]
    fn share_dir_and_error_lists_paths() {
        let tmp = tempfile::tempdir().unwrap();
        let exe = tmp.path().join("bin/earshot");
        let share = tmp.path().join("share/earshot/models/default");
        std::fs::create_dir_all(&share).unwrap();
        // `bin/..` resolves only when bin/ exists, as it does for a real executable.
        std::fs::create_dir_all(tmp.path().join("bin")).unwrap();
        std::fs::write(share.join("manifest.json"), "{}").unwrap();
        let (p, _) = resolve_with(None, None, Some(&exe)).unwrap();
        assert_eq!(p, tmp.path().join("bin/../share/earshot/models/default"));
        let c = default_candidates(Some(&exe));
        assert_eq!(c.len(), 4);
        assert!(c[2].starts_with("/usr/share/earshot"));
    }
}
