//! The one helper module of the integration tests (`mod support;` in each test file): repo
//! paths, the tiny golden bundle, the shared directory, and the one `earshot()` command with one
//! environment scrub (and [`earshot_limited`], the same under a memory limit); WAV files ([`wav`]), test signals ([`signal`], on
//! `earshot::audio::synth`), a fake model and an in-memory sink ([`fake`]), a mosquitto broker
//! and a test CA ([`broker`]), raw HTTP and a webhook receiver ([`http`]), headless chromium
//! through WebDriver ([`browser`]), pseudo-terminals ([`pty`]), JSON helpers ([`json`]) and
//! [`Run`], a finished run of the binary checked for panics.
#![allow(dead_code, unused_imports)]

pub mod broker;
pub mod browser;
pub mod fake;
pub mod http;
pub mod json;
pub mod pty;
pub mod signal;
pub mod wav;

pub use signal::signal;
pub use wav::{write_wav, WavKind};

use std::path::PathBuf;
use std::process::Command;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn golden() -> PathBuf {
    repo().join("tests/golden")
}

/// The tiny bundle exported by train/, or `None` (with a SKIP message) when not committed yet.
pub fn tiny_bundle() -> Option<PathBuf> {
    let p = golden().join("tiny-bundle");
    if p.join("manifest.json").is_file() {
        Some(p)
    } else {
        eprintln!(
            "SKIP: {} is not committed yet (written by `python -m earshot_train.golden`)",
            p.display()
        );
        None
    }
}

/// Copies the tiny bundle into a temporary directory and edits its manifest with `edit`.
pub fn bundle_copy(
    edit: impl FnOnce(&mut serde_json::Value),
) -> Option<(tempfile::TempDir, PathBuf)> {
    let src = tiny_bundle()?;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bundle");
    std::fs::create_dir(&dir).unwrap();
    for e in std::fs::read_dir(&src).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dir.join(e.file_name())).unwrap();
    }
    let path = dir.join("manifest.json");
    let mut m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    // Callers change graphs and add files (tags.txt): the copy is a bundle without sha256s, as
    // written before the manifest's `files` section existed (those still load).
    m.as_object_mut().unwrap().remove("files");
    edit(&mut m);
    std::fs::write(&path, serde_json::to_string_pretty(&m).unwrap()).unwrap();
    Some((tmp, dir))
}

/// The shared directory beside the repository (reference checkpoints), or `$EARSHOT_SHARED`.
pub fn shared_dir() -> PathBuf {
    std::env::var_os("EARSHOT_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("../shared"))
}

/// Environment variables that would change what the binary does under test.
const SCRUBBED_ENV: [&str; 6] = [
    "EARSHOT_MODEL",
    "EARSHOT_DECODER_PLAN",
    "EARSHOT_DECODER_CACHE",
    "EARSHOT_MQTT_PASSWORD",
    "EARSHOT_HTTP_TOKEN",
    "RUST_LOG",
];

/// The `earshot` binary of this build, with the environment scrubbed (no model from
/// `$EARSHOT_MODEL`, default decoder, default logging); tests set what they need on top.
/// A plain `std::process::Command`: `.output()`, `.spawn()`, and `assert_cmd`'s `.assert()`
/// (with `assert_cmd::prelude::*`) all work on it.
pub fn earshot() -> Command {
    use assert_cmd::cargo::CommandCargoExt;
    let mut c = Command::cargo_bin("earshot").unwrap();
    for var in SCRUBBED_ENV {
        c.env_remove(var);
    }
    c
}

/// [`earshot`] under an address-space limit of `bytes` (as on a small board): an allocation
/// sized from a lying header fails there instead of succeeding on a big test machine.
pub fn earshot_limited(bytes: u64) -> Command {
    use std::os::unix::process::CommandExt;
    let mut c = earshot();
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        c.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: bytes as libc::rlim_t,
                rlim_max: bytes as libc::rlim_t,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    c
}

/// One finished run of the binary: exit status (-1 when a signal ended it), stdout, stderr.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Collects a finished run. Bad input must never reach a panic: a panic message, a backtrace hint
/// or earshot's "internal error" (a caught panic) on stderr fails the test.
pub fn finished(out: std::process::Output) -> Run {
    let r = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(
        !r.stderr.contains("panicked")
            && !r.stderr.contains("RUST_BACKTRACE")
            && !r.stderr.contains("internal error"),
        "panic: {}",
        r.stderr
    );
    r
}
