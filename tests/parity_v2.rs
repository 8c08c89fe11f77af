//! Parity of the model-v2 decoding between train/ and the runtime: tests/golden/parity-v2/
//! (written by `python -m earshot_train golden --parity-v2`, regenerated identically by
//! train/tests/test_parity_v2.py) holds, for the tiny bundle under several manifest variants of
//! `search.no_repeat_ngram`, `search.once_words` and `confidence`, the greedy and beam ids,
//! per-token log-probabilities, scores and confidences that `earshot_train.search` computes with
//! onnxruntime. The runtime must give the same ids exactly and the numbers within 1e-4.

mod support;

use earshot::model::bundle::{LoadOptions, Model};
use earshot::model::captioner::{Caption, Captioner};
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;
use support::json::{close, floats, ids};
use support::wav::decode_all;
use support::*;

const TOL: f64 = 1e-4;

fn parity_doc() -> Option<Value> {
    let path = golden().join("parity-v2/parity-v2.json");
    if !path.is_file() {
        eprintln!("SKIP: {} is not committed yet", path.display());
        return None;
    }
    Some(serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap())
}

fn load(dir: &Path) -> Arc<Model> {
    Arc::new(Model::load(dir, &LoadOptions::default()).unwrap_or_else(|e| panic!("{e:#}")))
}

fn caption(model: &Arc<Model>, audio: &Path, beam: usize) -> Caption {
    let (_, mut w) = decode_all(audio);
    let valid = w.len().min(model.window_samples());
    w.resize(model.window_samples(), 0.0);
    let mut c = Captioner::new(model.clone(), Some(beam)).unwrap();
    c.caption(&w, valid).unwrap()
}

#[test]
fn runtime_decodes_as_train_does() {
    let Some(doc) = parity_doc() else { return };
    let Some(plain_dir) = tiny_bundle() else {
        return;
    };
    let plain = load(&plain_dir);
    let cases = doc["cases"].as_array().unwrap();
    assert!(cases.len() >= 5, "{} cases", cases.len());
    let mut changed = 0;
    for (i, case) in cases.iter().enumerate() {
        let audio = golden()
            .join("parity-v2")
            .join(case["audio"].as_str().unwrap());
        let sections = case["manifest"].as_object().unwrap().clone();
        let (_tmp, dir) = bundle_copy(|m| {
            for (k, v) in sections {
                m[k] = v;
            }
        })
        .unwrap();
        let model = load(&dir);
        for (name, beam) in [("greedy", 1), ("beam", 3)] {
            let want = &case[name];
            let what = format!("case {i} ({}, {name})", case["audio"]);
            let cap = caption(&model, &audio, beam);
            assert_eq!(cap.token_ids, ids(&want["ids"]), "{what}");
            let want_lp = floats(&want["logprobs"]);
            assert_eq!(cap.token_logprobs.len(), want_lp.len(), "{what}");
            for (g, w) in cap.token_logprobs.iter().zip(&want_lp) {
                close(&what, f64::from(*g), *w, TOL);
            }
            close(&what, cap.score, want["score"].as_f64().unwrap(), TOL);
            let c = cap.confidence.expect("confidence");
            close(&what, c, want["confidence"].as_f64().unwrap(), TOL);
            // Without the rules both sides also agree (and the rules matter in the golden).
            let base = caption(&plain, &audio, beam);
            assert_eq!(base.token_ids, ids(&want["ids_without_rules"]), "{what}");
            assert_eq!(base.confidence, None, "{what}");
            changed += usize::from(base.token_ids != cap.token_ids);
        }
    }
    assert!(
        changed >= cases.len(),
        "the rules change only {changed} captions"
    );
}
