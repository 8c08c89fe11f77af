//! The optional model-v2 sections of docs/bundle-format.md ("Version-1 extensions for model v2")
//! on the tiny golden bundle, copied to a temporary directory with an edited manifest:
//! repetition control (`search.no_repeat_ngram`, `search.once_words`), `confidence` (Platt
//! mapping of the mean per-token log-probability) and `tags` (a second encoder output, here a
//! mean-pool + linear head added to the tiny encoder).

mod support;

use earshot::model::bundle::{LoadOptions, Model};
use earshot::model::captioner::{Caption, Captioner};
use earshot::model::search::log_softmax;
use prost::Message;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use support::json::ids;
use support::wav::decode_all;
use support::*;
use tract_onnx::pb;

fn golden_expect() -> Value {
    let text = std::fs::read_to_string(golden().join("tiny-bundle-expect.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The golden input as one zero-padded window, and its real length.
fn window(model: &Model) -> (Vec<f32>, usize) {
    let path = golden().join("tiny-input.wav");
    let (_, mut w) = decode_all(&path);
    let valid = w.len();
    w.resize(model.window_samples(), 0.0);
    (w, valid)
}

fn caption(model: &Arc<Model>, beam: usize) -> Caption {
    let (w, valid) = window(model);
    let mut c = Captioner::new(model.clone(), Some(beam)).unwrap();
    c.caption(&w, valid).unwrap()
}

fn repeated_ngram(ids: &[i64], n: usize) -> Option<&[i64]> {
    let grams: Vec<&[i64]> = ids.windows(n).collect();
    (0..grams.len())
        .find(|&i| grams[i + 1..].contains(&grams[i]))
        .map(|i| grams[i])
}

/// The decoder's log-softmax of each generated token, recomputed prefix by prefix (unmasked).
fn recomputed_logprobs(model: &Model, cap: &Caption) -> Vec<f32> {
    let (w, valid) = window(model);
    let mut c = Captioner::new(Arc::new(load(&model.dir)), Some(1)).unwrap();
    let feats = c.features(&w).unwrap();
    let memory = model.backend().encode(&feats.data).unwrap();
    let memory = memory.truncated(model.memory_len(valid));
    let mut prefix = vec![model.manifest.tokens.start];
    let mut lp = Vec::new();
    cap.token_ids
        .iter()
        .map(|&v| {
            let logits = model.backend().decode_step(&prefix, 1, &memory).unwrap();
            log_softmax(logits.row(0), &mut lp);
            prefix.push(v);
            lp[v as usize]
        })
        .collect()
}

fn load(dir: &Path) -> Model {
    Model::load(dir, &LoadOptions::default()).unwrap_or_else(|e| panic!("{e:#}"))
}

const A: f64 = 2.5;
const B: f64 = 4.0;

#[test]
fn repetition_control_and_confidence() {
    let e = golden_expect();
    // The golden captions repeat these ids (greedy 6, 17, 24; beam 24 three times, "24 39" twice).
    let vocab = std::fs::read_to_string(golden().join("tiny-bundle/vocab.txt")).unwrap();
    let vocab: Vec<&str> = vocab.lines().collect();
    let once: Vec<&str> = [6usize, 17, 24].iter().map(|&i| vocab[i]).collect();
    let Some((_tmp, dir)) = bundle_copy(|m| {
        m["search"]["no_repeat_ngram"] = json!(3);
        m["search"]["once_words"] = json!([once[0], once[1], once[2], "no-such-word"]);
        m["confidence"] = json!({"method": "platt", "a": A, "b": B,
                                 "fit": {"split": "val", "n": 1, "ece": 0.0}});
    }) else {
        return;
    };
    let model = Arc::new(load(&dir));
    for (beam, golden_ids) in [(1, "greedy_ids"), (3, "beam_ids")] {
        let cap = caption(&model, beam);
        let what = format!("beam {beam}: {:?}", cap.token_ids);
        assert_ne!(
            cap.token_ids,
            ids(&e[golden_ids]),
            "{what}: the rules change it"
        );
        assert_eq!(repeated_ngram(&cap.token_ids, 3), None, "{what}");
        for w in [6, 17, 24] {
            let n = cap.token_ids.iter().filter(|&&x| x == w).count();
            assert!(n <= 1, "{what}: id {w} {n} times");
        }
        let words: Vec<&str> = cap.text.split(' ').collect();
        for w in &once {
            assert!(
                words.iter().filter(|x| *x == w).count() <= 1,
                "{}",
                cap.text
            );
        }
        // Per-token log-probabilities: the unmasked log-softmax, one per id.
        assert_eq!(cap.token_logprobs.len(), cap.token_ids.len(), "{what}");
        let want = recomputed_logprobs(&model, &cap);
        for (g, w) in cap.token_logprobs.iter().zip(&want) {
            assert!(
                (g - w).abs() <= 1e-5,
                "{what}: {:?} vs {want:?}",
                cap.token_logprobs
            );
        }
        // score = mean log-probability; confidence = Platt of it.
        let n = cap.token_logprobs.len() as f64;
        let s = cap
            .token_logprobs
            .iter()
            .map(|&l| f64::from(l))
            .sum::<f64>()
            / n;
        assert!((cap.score - s).abs() < 1e-12, "{what}");
        let c = cap.confidence.expect("confidence");
        assert!(c > 0.0 && c < 1.0, "{what}: {c}");
        assert!(
            (c - 1.0 / (1.0 + (-(A * s + B)).exp())).abs() < 1e-12,
            "{what}"
        );
        assert_eq!(cap.tags, None);
    }
}

#[test]
fn bundles_without_the_sections_report_no_confidence() {
    let Some(dir) = tiny_bundle() else { return };
    let e = golden_expect();
    let model = Arc::new(load(&dir));
    for (beam, key) in [(1, "greedy_ids"), (3, "beam_ids")] {
        let cap = caption(&model, beam);
        assert_eq!(cap.token_ids, ids(&e[key]));
        assert_eq!(cap.confidence, None);
        assert_eq!(cap.tags, None);
        assert_eq!(cap.token_logprobs.len(), cap.token_ids.len());
        assert!(cap.score < 0.0);
    }
}

// ---- tags

const K: usize = 6;

fn tag_weight(d: usize, k: usize) -> f32 {
    ((d * 7 + k * 13) % 11) as f32 / 2.0 - 2.5
}

/// Adds `tags = ReduceMean(memory, axis 1) @ W` (`[1, K]`) as a second output of the encoder.
fn add_tags_output(encoder: &Path, dim: usize) {
    let bytes = std::fs::read(encoder).unwrap();
    let mut model = pb::ModelProto::decode(bytes.as_slice()).unwrap();
    let graph = model.graph.as_mut().unwrap();
    let memory = graph.output[0].name.clone();
    let ints = |name: &str, v: Vec<i64>| pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Ints as i32,
        ints: v,
        ..Default::default()
    };
    let int = |name: &str, v: i64| pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Int as i32,
        i: v,
        ..Default::default()
    };
    graph.node.push(pb::NodeProto {
        input: vec![memory],
        output: vec!["pooled".into()],
        name: "tags_pool".into(),
        op_type: "ReduceMean".into(),
        attribute: vec![ints("axes", vec![1]), int("keepdims", 0)],
        ..Default::default()
    });
    graph.node.push(pb::NodeProto {
        input: vec!["pooled".into(), "tags_w".into()],
        output: vec!["tags".into()],
        name: "tags_head".into(),
        op_type: "MatMul".into(),
        ..Default::default()
    });
    let w: Vec<f32> = (0..dim)
        .flat_map(|d| (0..K).map(move |k| tag_weight(d, k)))
        .collect();
    graph.initializer.push(pb::TensorProto {
        name: "tags_w".into(),
        dims: vec![dim as i64, K as i64],
        data_type: 1,
        float_data: w,
        ..Default::default()
    });
    let mut out = graph.output[0].clone();
    out.name = "tags".into();
    if let Some(pb::type_proto::Value::TensorType(t)) =
        out.r#type.as_mut().and_then(|t| t.value.as_mut())
    {
        let shape = t.shape.as_mut().unwrap();
        shape.dim.truncate(2);
        shape.dim[1].value = Some(pb::tensor_shape_proto::dimension::Value::DimValue(K as i64));
    }
    graph.output.push(out);
    std::fs::write(encoder, model.encode_to_vec()).unwrap();
}

const LABELS: [&str; K] = ["Speech", "Dog", "Rain", "Music", "Vehicle", "Silence"];

fn tags_bundle(section: Option<Value>, labels: &[&str]) -> Option<(tempfile::TempDir, PathBuf)> {
    let (tmp, dir) = bundle_copy(|m| {
        if let Some(s) = section {
            m["tags"] = s;
        }
    })?;
    add_tags_output(&dir.join("encoder.onnx"), 32);
    let mut text = labels.join("\n");
    text.push('\n');
    std::fs::write(dir.join("tags.txt"), text).unwrap();
    Some((tmp, dir))
}

fn tags_section(top_k: usize, min_score: f64) -> Value {
    json!({"output": "tags", "labels": "tags.txt", "activation": "sigmoid",
           "top_k": top_k, "min_score": min_score})
}

#[test]
fn tags_from_a_second_encoder_output() {
    let e = golden_expect();
    let Some((_tmp, dir)) = tags_bundle(Some(tags_section(3, 0.1)), &LABELS) else {
        return;
    };
    let model = Arc::new(load(&dir));
    assert_eq!(model.tag_labels, LABELS);
    let cap = caption(&model, 3);
    // The tags change nothing in the caption.
    assert_eq!(cap.token_ids, ids(&e["beam_ids"]));
    assert_eq!(cap.confidence, None);

    // Expected: sigmoid(mean_t(memory) @ W), the 3 best >= 0.1, highest first.
    let (w, _) = window(&model);
    let mut c = Captioner::new(model.clone(), Some(1)).unwrap();
    let feats = c.features(&w).unwrap();
    let (memory, logits) = model.backend().encode_tagged(&feats.data).unwrap();
    let logits = logits.expect("tags output");
    assert_eq!(logits.len(), K);
    let mut want: Vec<(usize, f64)> = (0..K)
        .map(|k| {
            let mut z = 0.0f64;
            for d in 0..memory.dim {
                let mean = (0..memory.frames)
                    .map(|t| f64::from(memory.data[t * memory.dim + d]))
                    .sum::<f64>()
                    / memory.frames as f64;
                z += mean * f64::from(tag_weight(d, k));
            }
            assert!((z - f64::from(logits[k])).abs() < 1e-4, "logit {k}");
            (k, 1.0 / (1.0 + (-z).exp()))
        })
        .filter(|&(_, s)| s >= 0.1)
        .collect();
    want.sort_by(|a, b| b.1.total_cmp(&a.1));
    want.truncate(3);
    assert!(
        !want.is_empty(),
        "the test head should give some tag >= 0.1"
    );
    let tags = cap.tags.clone().expect("tags");
    assert_eq!(tags.len(), want.len(), "{tags:?}");
    for ((name, score), (k, s)) in tags.iter().zip(&want) {
        assert_eq!(name, LABELS[*k]);
        assert!((f64::from(*score) - s).abs() < 1e-4, "{tags:?} vs {want:?}");
    }
    assert!(tags.windows(2).all(|p| p[0].1 >= p[1].1));

    // min_score above every tag: none reported.
    let Some((_tmp2, dir2)) = tags_bundle(Some(tags_section(3, 1.01)), &LABELS) else {
        return;
    };
    assert_eq!(caption(&Arc::new(load(&dir2)), 1).tags, Some(vec![]));
}

#[test]
fn a_two_output_encoder_without_a_tags_section_works_as_before() {
    let e = golden_expect();
    let Some((_tmp, dir)) = tags_bundle(None, &LABELS) else {
        return;
    };
    let model = Arc::new(load(&dir));
    assert!(model.tag_labels.is_empty());
    let cap = caption(&model, 1);
    assert_eq!(cap.token_ids, ids(&e["greedy_ids"]));
    assert_eq!(cap.tags, None);
    assert_eq!(caption(&model, 3).token_ids, ids(&e["beam_ids"]));
}

fn earshot_caption(dir: &Path) -> std::process::Output {
    earshot()
        .args(["caption", "--model"])
        .arg(dir)
        .arg(golden().join("tiny-input.wav"))
        .output()
        .unwrap()
}

#[test]
fn bad_tags_sections_are_model_errors() {
    // Wrong number of labels.
    let Some((_tmp, dir)) = tags_bundle(Some(tags_section(3, 0.1)), &LABELS[..K - 1]) else {
        return;
    };
    let err = format!(
        "{:#}",
        Model::load(&dir, &LoadOptions::default()).unwrap_err()
    );
    assert!(err.contains("5 labels") && err.contains("6 tags"), "{err}");
    let out = earshot_caption(&dir);
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("labels mismatch"), "{stderr}");

    // Labels file missing.
    std::fs::remove_file(dir.join("tags.txt")).unwrap();
    let out = earshot_caption(&dir);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("tags.txt"));

    // No such output in the encoder graph.
    let Some((_tmp, dir)) = tags_bundle(
        Some(json!({"output": "clip_tags", "labels": "tags.txt", "top_k": 3, "min_score": 0.1})),
        &LABELS,
    ) else {
        return;
    };
    let out = earshot_caption(&dir);
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("clip_tags"), "{stderr}");

    // A tags section on an encoder with one output.
    let Some((_tmp, dir)) = bundle_copy(|m| m["tags"] = tags_section(3, 0.1)) else {
        return;
    };
    std::fs::write(dir.join("tags.txt"), LABELS.join("\n")).unwrap();
    let out = earshot_caption(&dir);
    assert_eq!(out.status.code(), Some(3));

    // An unknown confidence method.
    let Some((_tmp, dir)) =
        bundle_copy(|m| m["confidence"] = json!({"method": "isotonic", "a": 1.0, "b": 0.0}))
    else {
        return;
    };
    let out = earshot_caption(&dir);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("isotonic"));
}

// ---- outputs

fn run_ok(args: &[&str]) -> String {
    let out = earshot().args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?}: {stderr}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn caption_and_listen_outputs_carry_confidence_and_tags() {
    let Some(plain) = tiny_bundle() else { return };
    let wav = golden().join("tiny-input.wav");
    let w = wav.to_str().unwrap();
    let p = plain.to_str().unwrap();

    // Without the sections: JSON has "confidence": null and no "tags"; text is unchanged, also
    // with --show-confidence.
    let rows =
        support::json::json_lines(&run_ok(&["caption", "--model", p, w, "--format", "jsonl"]));
    assert_eq!(rows.len(), 1);
    let row = rows[0].as_object().unwrap();
    assert_eq!(row["confidence"], Value::Null);
    assert!(!row.contains_key("tags"));
    let text = run_ok(&["caption", "--model", p, w]);
    assert_eq!(
        run_ok(&["caption", "--model", p, w, "--show-confidence"]),
        text
    );
    assert!(!text.contains('('), "{text}");

    // With confidence and tags.
    let Some((_tmp, dir)) = tags_bundle(Some(tags_section(2, 0.0)), &LABELS) else {
        return;
    };
    let manifest = dir.join("manifest.json");
    let mut m: Value = serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    m["confidence"] = json!({"method": "platt", "a": A, "b": B});
    std::fs::write(&manifest, m.to_string()).unwrap();
    let d = dir.to_str().unwrap();
    let model = Arc::new(load(&dir));
    let cap = caption(&model, 3);
    let conf = cap.confidence.unwrap();

    let rows =
        support::json::json_lines(&run_ok(&["caption", "--model", d, w, "--format", "jsonl"]));
    let row = &rows[0];
    assert_eq!(row["caption"], cap.text.as_str());
    assert_eq!(
        row["confidence"].as_f64().unwrap(),
        (conf * 1000.0).round() / 1000.0
    );
    let tags = cap.tags.clone().unwrap();
    assert_eq!(tags.len(), 2);
    let want: Vec<Value> = tags
        .iter()
        .map(|(t, s)| json!({"tag": t, "score": (f64::from(*s) * 1000.0).round() / 1000.0}))
        .collect();
    assert_eq!(row["tags"], Value::Array(want.clone()));

    // Text: the caption line, then "(0.xx)" only with --show-confidence.
    let text = run_ok(&["caption", "--model", d, w]);
    assert!(text.trim_end().ends_with(&cap.text), "{text}");
    let shown = run_ok(&["caption", "--model", d, w, "--show-confidence"]);
    assert_eq!(shown.trim_end(), format!("{} ({conf:.2})", text.trim_end()));

    // listen's JSON events: the same fields (threshold off: this test is about the fields).
    let out = run_ok(&[
        "listen",
        "--file",
        w,
        "--fast",
        "--model",
        d,
        "--min-confidence",
        "0",
        "--gate-dbfs",
        "-inf",
        "--holdoff",
        "0",
        "--format",
        "jsonl",
    ]);
    let events: Vec<Value> = support::json::json_lines(&out)
        .into_iter()
        .filter(|e| e["event"] == "caption")
        .collect();
    assert!(!events.is_empty(), "{out}");
    assert_eq!(events[0]["caption"], cap.text.as_str());
    assert_eq!(events[0]["confidence"], row["confidence"]);
    assert_eq!(events[0]["tags"], Value::Array(want));
}

#[test]
fn caption_line_shapes_with_confidence_and_tags() {
    use earshot::sink::format::{caption_text, event_json, event_line};
    use earshot::sink::{CaptionEvent, Event, FormatOptions, LineFormat};
    let mut e = CaptionEvent {
        source: "a.wav".into(),
        start: 5.0,
        end: 12.34,
        caption: Caption {
            text: "a dog barks".into(),
            token_ids: vec![7, 8, 9, 2],
            confidence: Some(0.823_56),
            ..Default::default()
        },
    };
    let json_line = |e: &CaptionEvent, o: &FormatOptions| {
        event_line(&Event::FileCaption(e.clone()), LineFormat::Jsonl, o).unwrap()
    };
    let o = FormatOptions::default();
    // Text: unchanged by default, `(0.82)` after the caption with show_confidence.
    assert_eq!(caption_text(&e, &o), "[00:05.0–00:12.3] a dog barks");
    let shown = FormatOptions {
        show_confidence: true,
        print_ids: true,
        ..o
    };
    assert_eq!(
        caption_text(&e, &shown),
        "[00:05.0–00:12.3] a dog barks (0.82)  [ids 7 8 9 2]"
    );
    assert_eq!(
        json_line(&e, &o),
        r#"{"file":"a.wav","start":5.0,"end":12.34,"caption":"a dog barks","confidence":0.824}"#
    );
    // Tags when the bundle has them (an empty list when none reached min_score).
    e.caption.tags = Some(vec![("Dog".into(), 0.912_34), ("Bark".into(), 0.5)]);
    let v: Value = serde_json::from_str(&json_line(&e, &o)).unwrap();
    assert_eq!(
        v["tags"],
        json!([{"tag": "Dog", "score": 0.912}, {"tag": "Bark", "score": 0.5}])
    );
    e.caption.tags = Some(vec![]);
    let v: Value = serde_json::from_str(&json_line(&e, &o)).unwrap();
    assert_eq!(v["tags"], json!([]));
    // No confidence section: nothing in text even when asked, null in JSON.
    e.caption.confidence = None;
    assert_eq!(
        caption_text(&e, &shown),
        "[00:05.0–00:12.3] a dog barks  [ids 7 8 9 2]"
    );
    let v: Value = serde_json::from_str(&json_line(&e, &o)).unwrap();
    assert!(v.as_object().unwrap().contains_key("confidence"));
    assert_eq!(v["confidence"], Value::Null);
    // listen's events carry the same fields.
    let live = event_json(&Event::FileCaption(e));
    assert_eq!(live["confidence"], Value::Null);
    assert_eq!(live["tags"], json!([]));
}

/// The caption rules of issue 15 on a bundle with tags: `--only` / `--ignore` match tag names,
/// and a "Speech" tag makes the window speech for `--privacy-speech`, whatever the caption says.
#[test]
fn lists_and_privacy_match_tag_names() {
    let Some((_tmp, dir)) = tags_bundle(Some(tags_section(LABELS.len(), 0.0)), &LABELS) else {
        return;
    };
    let d = dir.to_str().unwrap();
    let wav = golden().join("tiny-input.wav");
    let w = wav.to_str().unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec!["caption", "--model", d, w, "--format", "jsonl"];
        args.extend_from_slice(extra);
        let out = earshot().args(&args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        (
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let (plain, _) = run(&[]);
    let caption = serde_json::from_str::<Value>(plain.lines().next().unwrap()).unwrap();
    let text = caption["caption"].as_str().unwrap().to_lowercase();
    // Every label is reported (min_score 0), none of them is in the caption's words.
    assert_eq!(caption["tags"].as_array().unwrap().len(), LABELS.len());
    assert!(
        !text.contains("music") && !text.contains("vehicle"),
        "{text}"
    );
    let (out, _) = run(&["--only", "MUSIC"]);
    assert_eq!(out, plain, "a tag name matches `only`");
    let (out, err) = run(&["--ignore", "vehicle"]);
    assert_eq!(out, "");
    assert!(err.contains("1 filtered"), "{err}");
    let (out, err) = run(&["--privacy-speech", "drop"]);
    assert_eq!(out, "", "the Speech tag makes it a speech window");
    assert!(err.contains("1 privacy-dropped"), "{err}");
    let (out, _) = run(&["--privacy-speech", "mask"]);
    let row: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(row["caption"], "someone speaks");
}
