//! Bad model bundles (issue 13, items 10, 12 and 15): every one is refused at load with exit
//! status 3 and one line on stderr that names the bundle and what is wrong with it, and the
//! bundle's sha256s (manifest `files`, docs/bundle-format.md "Integrity") catch corrupted
//! weights and files that are not in the bundle directory.
//!
//! The cached-decoder cases need a bundle with a `decoder_cached` section: the shipped
//! `models/default`.

mod support;

use std::path::{Path, PathBuf};
use support::*;

/// `earshot caption --model BUNDLE WAV` (greedy, to keep the cached-decoder cases quick).
fn caption(bundle: &Path, wav: &Path) -> Run {
    let out = earshot()
        .arg("caption")
        .arg("--model")
        .arg(bundle)
        .args(["--beam", "1"])
        .arg(wav)
        .output()
        .unwrap();
    finished(out)
}

/// The shipped default bundle (it has the key/value-cached decoder).
fn default_bundle() -> PathBuf {
    repo().join("models/default")
}

/// A copy of bundle `src` in a new temp dir, and a 7.5 s test WAV beside it.
struct Copy {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    wav: PathBuf,
}

fn copy_of(src: &Path) -> Copy {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bundle");
    std::fs::create_dir(&dir).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        if e.path().is_file() {
            std::fs::copy(e.path(), dir.join(e.file_name())).unwrap();
        }
    }
    let wav = tmp.path().join("a.wav");
    write_wav(&wav, 16000, 1, WavKind::Pcm16, &signal(16000, 7.5));
    Copy {
        _tmp: tmp,
        dir,
        wav,
    }
}

fn edit_manifest(dir: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let p = dir.join("manifest.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(&p, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

/// Removes the `files` section, as in a bundle written before sha256s existed.
fn drop_hashes(dir: &Path) {
    edit_manifest(dir, |v| {
        v.as_object_mut().unwrap().remove("files");
    });
}

/// Exit 3, nothing on stdout, one line on stderr that names the bundle and contains every
/// `keywords` entry (case-insensitive) and none of `not`.
fn refused(c: &Copy, keywords: &[&str], not: &[&str]) {
    let r = caption(&c.dir, &c.wav);
    assert_eq!(r.code, 3, "stdout {} stderr {}", r.stdout, r.stderr);
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{}", r.stderr);
    let line = lines[0].to_lowercase();
    assert!(
        line.contains(&c.dir.display().to_string().to_lowercase()),
        "bundle not named: {}",
        lines[0]
    );
    for k in keywords {
        assert!(
            line.contains(&k.to_lowercase()),
            "'{k}' not in: {}",
            lines[0]
        );
    }
    for k in not {
        assert!(!line.contains(&k.to_lowercase()), "'{k}' in: {}", lines[0]);
    }
}

fn captions_ok(c: &Copy) -> String {
    let r = caption(&c.dir, &c.wav);
    assert_eq!(r.code, 0, "stdout {} stderr {}", r.stdout, r.stderr);
    assert!(!r.stdout.trim().is_empty());
    r.stdout
}

/// Overwrites `n` bytes in the middle of `file` (where the weights are) with other values.
fn scribble(file: &Path, n: usize) {
    let mut bytes = std::fs::read(file).unwrap();
    let mid = bytes.len() / 2;
    for (i, b) in bytes[mid..mid + n].iter_mut().enumerate() {
        *b = b.wrapping_add(1 + (i as u8).wrapping_mul(37));
    }
    std::fs::write(file, bytes).unwrap();
}

// ---- item 10: messages ----------------------------------------------------------------------

#[test]
fn vocab_or_encoder_that_is_a_directory_says_so() {
    let Some(b) = tiny_bundle() else { return };
    for name in ["vocab.txt", "encoder.onnx"] {
        let c = copy_of(&b);
        std::fs::remove_file(c.dir.join(name)).unwrap();
        std::fs::create_dir(c.dir.join(name)).unwrap();
        refused(&c, &[name, "is not a file", "directory"], &["missing"]);
    }
}

#[test]
fn version_given_as_a_string_says_it_must_be_a_number() {
    let Some(b) = tiny_bundle() else { return };
    let c = copy_of(&b);
    edit_manifest(&c.dir, |v| v["version"] = "1".into());
    refused(
        &c,
        &["version", "number"],
        &["this earshot reads version 1)"],
    );
}

#[test]
fn manifest_with_a_byte_order_mark_loads() {
    let Some(b) = tiny_bundle() else { return };
    let c = copy_of(&b);
    let plain = captions_ok(&c);
    let p = c.dir.join("manifest.json");
    let text = std::fs::read_to_string(&p).unwrap();
    std::fs::write(&p, format!("\u{feff}{text}")).unwrap();
    assert_eq!(captions_ok(&c), plain);
    // The cached decoder's section is read from the same manifest.
    let c = copy_of(&default_bundle());
    let plain = captions_ok(&c);
    let p = c.dir.join("manifest.json");
    let text = std::fs::read_to_string(&p).unwrap();
    std::fs::write(&p, format!("\u{feff}{text}")).unwrap();
    assert_eq!(captions_ok(&c), plain);
}

#[test]
fn wrong_cached_decoder_layer_count_names_the_cached_decoder() {
    let c = copy_of(&default_bundle());
    edit_manifest(&c.dir, |v| {
        let l = v["decoder_cached"]["layers"].as_u64().unwrap();
        v["decoder_cached"]["layers"] = (l + 1).into();
    });
    refused(
        &c,
        &["decoder_cached.layers", "decoder_step.onnx"],
        &["encoder"],
    );
}

// ---- item 12: max_positions -----------------------------------------------------------------

#[test]
fn cached_decoder_max_positions_below_search_length_is_refused_at_load() {
    let c = copy_of(&default_bundle());
    edit_manifest(&c.dir, |v| {
        let max_len = v["search"]["max_len"].as_u64().unwrap();
        v["decoder_cached"]["max_positions"] = (max_len / 2).into();
    });
    refused(&c, &["decoder_cached.max_positions", "search.max_len"], &[]);
    // At the boundary, with a search short enough that every caption runs to max_len (the
    // longest prefix fed is max_len tokens: <start> and max_len - 1 generated ones): one short is
    // refused, exactly enough captions every window.
    for (max_positions, ok) in [(3, false), (4, true)] {
        let c = copy_of(&default_bundle());
        edit_manifest(&c.dir, |v| {
            v["search"]["max_len"] = 4.into();
            v["decoder_cached"]["max_positions"] = max_positions.into();
        });
        if ok {
            let out = captions_ok(&c);
            assert!(
                out.lines().all(|l| l.split_whitespace().count() >= 4),
                "{out}"
            );
        } else {
            refused(
                &c,
                &["decoder_cached.max_positions 3", "search.max_len 4"],
                &[],
            );
        }
    }
}

// ---- item 15: integrity ---------------------------------------------------------------------

#[test]
fn committed_bundles_carry_a_sha256_for_every_file_they_use() {
    let Some(tiny) = tiny_bundle() else { return };
    for b in [tiny, default_bundle()] {
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(b.join("manifest.json")).unwrap())
                .unwrap();
        let files = v["files"]
            .as_object()
            .unwrap_or_else(|| panic!("{}: no files section", b.display()));
        let mut used = vec![
            v["encoder"]["file"].as_str().unwrap(),
            v["decoder"]["file"].as_str().unwrap(),
            v["vocab"].as_str().unwrap_or("vocab.txt"),
        ];
        if let Some(c) = v.get("decoder_cached") {
            used.push(c["init_file"].as_str().unwrap());
            used.push(c["step_file"].as_str().unwrap());
        }
        for f in used {
            let hex = files[f]["sha256"].as_str().unwrap_or_default();
            assert_eq!(hex.len(), 64, "{}: {f} has no sha256", b.display());
        }
    }
}

#[test]
fn random_bytes_in_the_weights_fail_the_sha256_check() {
    let Some(b) = tiny_bundle() else { return };
    let c = copy_of(&b);
    scribble(&c.dir.join("decoder.onnx"), 64);
    refused(&c, &["decoder.onnx", "sha256"], &[]);
    // The step decoder of the cached form (issue 13: "(empty caption)", exit 0).
    let c = copy_of(&default_bundle());
    scribble(&c.dir.join("decoder_step.onnx"), 64);
    refused(&c, &["decoder_step.onnx", "sha256"], &[]);
    // A changed vocabulary (two words swapped: same words, same size) is caught too.
    let c = copy_of(&b);
    let p = c.dir.join("vocab.txt");
    let text = std::fs::read_to_string(&p).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    let n = lines.len();
    lines.swap(n - 1, n - 2);
    std::fs::write(&p, lines.join("\n") + "\n").unwrap();
    refused(&c, &["vocab.txt", "sha256"], &[]);
    // A truncated file names its size.
    let c = copy_of(&b);
    let p = c.dir.join("encoder.onnx");
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() - 10]).unwrap();
    refused(&c, &["encoder.onnx", "bytes"], &[]);
}

#[test]
fn bundles_without_sha256s_still_load() {
    let Some(b) = tiny_bundle() else { return };
    let c = copy_of(&b);
    let with = captions_ok(&c);
    drop_hashes(&c.dir);
    assert_eq!(captions_ok(&c), with);
}

#[test]
fn malformed_or_incomplete_files_section_is_refused() {
    let Some(b) = tiny_bundle() else { return };
    let c = copy_of(&b);
    edit_manifest(&c.dir, |v| v["files"]["vocab.txt"]["sha256"] = "abc".into());
    refused(&c, &["files", "vocab.txt", "sha256"], &[]);
    // A file the runtime reads but the section does not list (written after hashing).
    let c = copy_of(&b);
    edit_manifest(&c.dir, |v| {
        v["files"].as_object_mut().unwrap().remove("decoder.onnx");
    });
    refused(&c, &["decoder.onnx", "files"], &[]);
    // A listed file that is not there.
    let c = copy_of(&b);
    edit_manifest(&c.dir, |v| {
        v["files"]["extra.bin"] = serde_json::json!({"sha256": "0".repeat(64)});
    });
    refused(&c, &["extra.bin"], &[]);
}

#[test]
fn manifest_paths_outside_the_bundle_are_refused() {
    let Some(b) = tiny_bundle() else { return };
    // Absolute paths and `..`: with and without sha256s (an old bundle must not read them
    // either).
    for hashed in [true, false] {
        for (key, value) in [
            ("vocab", "/etc/passwd"),
            ("encoder", "../encoder.onnx"),
            ("decoder", "sub/../../decoder.onnx"),
            ("tags", "/etc/passwd"),
        ] {
            let c = copy_of(&b);
            if !hashed {
                drop_hashes(&c.dir);
            }
            // Make the escaping target exist, so only the location is wrong.
            std::fs::copy(
                c.dir.join("encoder.onnx"),
                c.dir.parent().unwrap().join("encoder.onnx"),
            )
            .unwrap();
            std::fs::copy(
                c.dir.join("decoder.onnx"),
                c.dir.parent().unwrap().join("decoder.onnx"),
            )
            .unwrap();
            edit_manifest(&c.dir, |v| match key {
                "vocab" => v["vocab"] = value.into(),
                "tags" => {
                    v["tags"] = serde_json::json!({"output": "tags", "labels": value,
                        "activation": "sigmoid", "top_k": 3, "min_score": 0.1})
                }
                k => v[k]["file"] = value.into(),
            });
            refused(&c, &[value, "outside the bundle"], &[]);
        }
    }
    // A symlink that leaves the bundle directory.
    let c = copy_of(&b);
    drop_hashes(&c.dir);
    let outside = c.dir.parent().unwrap().join("vocab.txt");
    std::fs::rename(c.dir.join("vocab.txt"), &outside).unwrap();
    std::os::unix::fs::symlink(&outside, c.dir.join("vocab.txt")).unwrap();
    refused(&c, &["vocab.txt", "outside the bundle"], &[]);
    // A symlink inside the bundle is fine.
    let c = copy_of(&b);
    std::fs::rename(c.dir.join("vocab.txt"), c.dir.join("words.txt")).unwrap();
    std::os::unix::fs::symlink("words.txt", c.dir.join("vocab.txt")).unwrap();
    captions_ok(&c);
}
