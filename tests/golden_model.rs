//! Model parity with train/'s golden tiny bundle: `tests/golden/tiny-bundle-expect.json` holds
//! what onnxruntime (checked equal to PyTorch) computes for `tests/golden/tiny-input.wav` —
//! log-mel features, encoder memory, greedy and beam-search token ids and captions. This test
//! checks the Rust runtime (our front end + tract) against it through the library and through
//! `earshot caption` on the file.
//!
//! scripts/test-arm.sh runs it on aarch64 and armv7 under qemu-user: tract's ARM kernels must
//! give the same numbers and the same captions as x86.

mod support;

use earshot::model::bundle::{LoadOptions, Model};
use earshot::model::Captioner;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;
use support::json::{assert_close, floats, ids, json_lines};
use support::wav::decode_all;
use support::*;

struct Golden {
    bundle: PathBuf,
    wav: PathBuf,
    expect: Value,
}

fn golden_files() -> Option<Golden> {
    let bundle = tiny_bundle()?;
    let path = golden().join("tiny-bundle-expect.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{} next to the tiny bundle: {e}", path.display()));
    let expect: Value = serde_json::from_str(&text).unwrap();
    let wav = golden().join(expect["audio"].as_str().expect("audio"));
    Some(Golden {
        bundle,
        wav,
        expect,
    })
}

#[test]
fn features_memory_and_token_ids_match_onnxruntime() {
    let Some(g) = golden_files() else { return };
    let e = &g.expect;
    let model = Arc::new(Model::load(&g.bundle, &LoadOptions::default()).unwrap());
    let (_, audio) = decode_all(&g.wav);
    assert_eq!(model.sample_rate(), 16000, "the golden input is 16 kHz");
    let valid = audio.len();
    assert!(valid <= model.window_samples());
    let mut window = audio;
    window.resize(model.window_samples(), 0.0);

    // Front end: [n_mels][frames], compared where the golden file has values.
    let mut cap = Captioner::new(model.clone(), Some(1)).unwrap();
    let feats = cap.features(&window).unwrap();
    let shape = ids(&e["features_shape"]);
    assert_eq!(
        [feats.n_mels as i64, feats.frames as i64],
        [shape[1], shape[2]]
    );
    let row0: Vec<f64> = (0..5).map(|t| f64::from(feats.at(0, t))).collect();
    assert_close(
        "features[0, 0..5]",
        &row0,
        &floats(&e["features_first5"]),
        1e-4,
    );
    let col0: Vec<f64> = (0..5).map(|m| f64::from(feats.at(m, 0))).collect();
    assert_close(
        "features[0..5, 0]",
        &col0,
        &floats(&e["features_frame0_first5"]),
        1e-4,
    );
    let n = feats.data.len() as f64;
    let mean = feats.data.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
    let max = feats
        .data
        .iter()
        .fold(f64::MIN, |a, &x| a.max(f64::from(x)));
    assert_close(
        "features mean",
        &[mean],
        &[e["features_mean"].as_f64().unwrap()],
        1e-4,
    );
    assert_close(
        "features max",
        &[max],
        &[e["features_max"].as_f64().unwrap()],
        1e-4,
    );

    // Encoder (tract) on our features.
    let memory = model.backend().encode(&feats.data).unwrap();
    let mshape = ids(&e["memory_shape"]);
    assert_eq!(
        [memory.frames as i64, memory.dim as i64],
        [mshape[1], mshape[2]]
    );
    let m5: Vec<f64> = memory.data[..5].iter().map(|&x| f64::from(x)).collect();
    assert_close(
        "memory[0, 0, 0..5]",
        &m5,
        &floats(&e["memory_first5"]),
        1e-4,
    );
    let mmean = memory.data.iter().map(|&x| f64::from(x)).sum::<f64>() / memory.data.len() as f64;
    assert_close(
        "memory mean",
        &[mmean],
        &[e["memory_mean"].as_f64().unwrap()],
        1e-4,
    );

    // Decoder + search: exact token ids and captions, greedy and beam.
    let greedy = cap.caption(&window, valid).unwrap();
    assert_eq!(greedy.token_ids, ids(&e["greedy_ids"]), "greedy ids");
    assert_eq!(greedy.text, e["caption_greedy"].as_str().unwrap());
    let mut beam = Captioner::new(model, None).unwrap();
    let out = beam.caption(&window, valid).unwrap();
    assert_eq!(out.token_ids, ids(&e["beam_ids"]), "beam ids");
    assert_eq!(out.text, e["caption_beam"].as_str().unwrap());
}

#[test]
fn earshot_caption_prints_the_golden_captions() {
    let Some(g) = golden_files() else { return };
    let e = &g.expect;
    for (beam, key, ids_key) in [
        ("1", "caption_greedy", "greedy_ids"),
        ("3", "caption_beam", "beam_ids"),
    ] {
        let out = earshot()
            .arg("caption")
            .arg("--model")
            .arg(&g.bundle)
            .args(["--beam", beam, "--format", "jsonl", "--print-ids"])
            .arg(&g.wav)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "beam {beam}: {stderr}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let rows = json_lines(&stdout);
        assert_eq!(rows.len(), 1, "one window for a 3 s clip: {stdout}");
        assert_eq!(rows[0]["caption"], e[key], "beam {beam}");
        assert_eq!(ids(&rows[0]["token_ids"]), ids(&e[ids_key]), "beam {beam}");
    }
}
