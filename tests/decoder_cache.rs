//! The key/value-cached decoder (`decoder_cached` in the manifest) gives the same token ids as the
//! full-prefix decoder, greedy and beam. Needs a bundle with the cached graphs:
//!
//!     cp -r tests/golden/tiny-bundle /tmp/tiny-cached
//!     (cd train && python -m earshot_train.export_cached /tmp/tiny-cached --tiny)
//!     EARSHOT_CACHED_BUNDLE=/tmp/tiny-cached cargo test --test decoder_cache
//!
//! Skipped (passes trivially) when EARSHOT_CACHED_BUNDLE is not set.

mod support;

use support::{earshot, golden};

fn ids(bundle: &str, cache: &str, beam: &str) -> String {
    let out = earshot()
        .args(["caption", "--model", bundle, "--print-ids", "--beam", beam])
        .arg(golden().join("tiny-input.wav"))
        .env("EARSHOT_DECODER_CACHE", cache)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn cached_decoder_matches_full_prefix() {
    let Ok(bundle) = std::env::var("EARSHOT_CACHED_BUNDLE") else {
        eprintln!("EARSHOT_CACHED_BUNDLE not set: skipped");
        return;
    };
    for beam in ["1", "3"] {
        let full = ids(&bundle, "off", beam);
        let cached = ids(&bundle, "on", beam);
        assert_eq!(full, cached, "beam {beam}");
    }
}
