//! The paper's released effb2-trm student, converted by `python -m earshot_train convert`, run by the
//! Rust runtime and checked against the authors' outputs (`reference_outputs.json` of the shared
//! `reference/wsntxxn-effb2-trm` folder): log-mel statistics, encoder output, memory mask length,
//! decoder logits for the reference prefix, greedy and beam-3 token ids (library and CLI).
//!
//! Runs only when `EARSHOT_EFFB2_BUNDLE` names a converted bundle (scripts/test-all.sh converts the
//! random-init checkpoint with `--window 5.001`, the reference clip's exact length, when the shared
//! data exists); otherwise every test prints SKIP and passes.

mod support;

use earshot::model::bundle::{LoadOptions, Model};
use earshot::model::Captioner;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;
use support::json::{close, ids};
use support::wav::read_pcm16_mono;
use support::*;

struct Setup {
    bundle: PathBuf,
    reference: Value,
    wav: PathBuf,
    samples: Vec<f32>,
}

fn setup() -> Option<Setup> {
    let Some(bundle) = std::env::var_os("EARSHOT_EFFB2_BUNDLE").map(PathBuf::from) else {
        eprintln!(
            "SKIP: EARSHOT_EFFB2_BUNDLE is not set (convert the checkpoint with `python -m \
             earshot_train convert ... --window 5.001`, or run scripts/test-all.sh)"
        );
        return None;
    };
    let ref_dir = shared_dir().join("reference/wsntxxn-effb2-trm");
    let ref_json = ref_dir.join("reference_outputs.json");
    if !bundle.join("manifest.json").is_file() || !ref_json.is_file() {
        eprintln!(
            "SKIP: no bundle at {} or no {}",
            bundle.display(),
            ref_json.display()
        );
        return None;
    }
    let reference: Value =
        serde_json::from_str(&std::fs::read_to_string(&ref_json).unwrap()).unwrap();
    let wav = ref_dir.join("input_dog_16k.wav");
    let samples = read_pcm16_mono(&wav);
    Some(Setup {
        bundle,
        reference,
        wav,
        samples,
    })
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap()
}

fn load(s: &Setup) -> Arc<Model> {
    Arc::new(Model::load(&s.bundle, &LoadOptions::default()).unwrap())
}

/// True when the bundle's window is the reference clip itself (no zero padding): only then are
/// the front end's top_db floor and the encoder's squeeze-excitation means those of the reference.
fn exact_window(s: &Setup, model: &Model) -> bool {
    if model.window_samples() == s.samples.len() {
        return true;
    }
    eprintln!(
        "SKIP exact parity: the bundle's window has {} samples, the reference clip {} (convert with \
         --window 5.001)",
        model.window_samples(),
        s.samples.len()
    );
    false
}

#[test]
fn every_stage_matches_the_reference() {
    let Some(s) = setup() else { return };
    let model = load(&s);
    if !exact_window(&s, &model) {
        return;
    }
    let r = &s.reference;
    let mut cap = Captioner::new(model.clone(), None).unwrap();

    // Front end: [64, 501] dB log-mel.
    let feats = cap.features(&s.samples).unwrap();
    let shape = ids(&r["logmel_db_shape"]);
    assert_eq!([1, feats.n_mels as i64, feats.frames as i64], shape[..]);
    let n = feats.data.len() as f64;
    let mean = feats.data.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
    let max = feats.data.iter().copied().fold(f32::MIN, f32::max);
    let min = feats.data.iter().copied().fold(f32::MAX, f32::min);
    close("log-mel mean", mean, f(&r["logmel_db_mean"]), 1e-3);
    close("log-mel max", f64::from(max), f(&r["logmel_db_max"]), 1e-3);
    close("log-mel min", f64::from(min), f(&r["logmel_db_min"]), 1e-3);
    for (m, want) in r["logmel_db_frame0_first5"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        close("log-mel frame 0", f64::from(feats.at(m, 0)), f(want), 1e-3);
    }

    // Encoder: [1, 16, 1408]; the decoder attends to 15 frames.
    let backend = model.backend();
    let memory = backend.encode(&feats.data).unwrap();
    let es = ids(&r["attn_emb_shape"]);
    assert_eq!([1, memory.frames as i64, memory.dim as i64], es[..]);
    let n = memory.data.len() as f64;
    let mean = memory.data.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
    let var = memory
        .data
        .iter()
        .map(|&x| (f64::from(x) - mean).powi(2))
        .sum::<f64>()
        / (n - 1.0);
    close("encoder mean", mean, f(&r["attn_emb_mean"]), 1e-5);
    close("encoder std", var.sqrt(), f(&r["attn_emb_std"]), 1e-4);
    for (d, want) in r["attn_emb_t0_first5"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        close("encoder t0", f64::from(memory.data[d]), f(want), 1e-4);
    }
    let len = model.memory_len(s.samples.len());
    assert_eq!(vec![len as i64], ids(&r["attn_emb_len"]));
    let memory = memory.truncated(len);

    // fc_emb = mean of the attended frames.
    for (d, want) in r["fc_emb_first5"].as_array().unwrap().iter().enumerate() {
        let m = (0..len)
            .map(|t| f64::from(memory.data[t * memory.dim + d]))
            .sum::<f64>()
            / len as f64;
        close("fc_emb", m, f(want), 1e-4);
    }

    // Decoder logits for each prefix position: top-5 ids and values, mean.
    let prefix = ids(&r["decoder_prefix_token_ids"]);
    for (i, pos) in r["decoder_prefix_logits_per_position"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        let logits = backend.decode_step(&prefix[..=i], 1, &memory).unwrap();
        let row = logits.row(0);
        let mut order: Vec<usize> = (0..row.len()).collect();
        order.sort_by(|&a, &b| row[b].partial_cmp(&row[a]).unwrap().then(a.cmp(&b)));
        let top: Vec<i64> = order[..5].iter().map(|&k| k as i64).collect();
        assert_eq!(top, ids(&pos["top5_ids"]), "prefix position {i}");
        for (k, want) in pos["top5_logits"].as_array().unwrap().iter().enumerate() {
            close(
                &format!("position {i} top{k}"),
                f64::from(row[order[k]]),
                f(want),
                1e-4,
            );
        }
        let mean = row.iter().map(|&x| f64::from(x)).sum::<f64>() / row.len() as f64;
        close(
            &format!("position {i} mean"),
            mean,
            f(&pos["logit_mean"]),
            1e-5,
        );
    }

    // Whole captioner: beam 3 (the manifest's constant-width beam) and greedy.
    let out = cap.caption(&s.samples, s.samples.len()).unwrap();
    assert_eq!(out.token_ids, ids(&r["beam3_token_ids"]));
    let mut greedy = Captioner::new(model.clone(), Some(1)).unwrap();
    let out = greedy.caption(&s.samples, s.samples.len()).unwrap();
    assert_eq!(out.token_ids, ids(&r["greedy_token_ids"]));
}

fn cli_ids(s: &Setup, extra: &[&str]) -> Vec<i64> {
    let out = earshot()
        .arg("caption")
        .arg("--model")
        .arg(&s.bundle)
        .arg(&s.wav)
        .args(["--print-ids", "--format", "jsonl"])
        .args(extra)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "earshot caption failed: {stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one window expected: {stdout}");
    let v: Value = serde_json::from_str(lines[0]).unwrap();
    ids(&v["token_ids"])
}

#[test]
fn cli_prints_the_reference_token_ids() {
    let Some(s) = setup() else { return };
    let model = load(&s);
    if !exact_window(&s, &model) {
        return;
    }
    assert_eq!(cli_ids(&s, &[]), ids(&s.reference["beam3_token_ids"]));
    assert_eq!(
        cli_ids(&s, &["--beam", "1"]),
        ids(&s.reference["greedy_token_ids"])
    );
}

#[test]
fn too_short_clips_are_a_clear_error() {
    let Some(s) = setup() else { return };
    let dir = tempfile::tempdir().unwrap();
    let short = dir.path().join("short.wav");
    // 0.25 s: more than the runtime's general minimum, less than this model's 0.31 s.
    write_wav(&short, 16000, 1, WavKind::Pcm16, &signal(16000, 0.25));
    let out = earshot()
        .arg("caption")
        .arg("--model")
        .arg(&s.bundle)
        .arg(&short)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a 0.25 s clip must fail");
    assert!(stderr.contains("too short"), "{stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.to_lowercase().contains("nan"),
        "{stderr}"
    );

    // The library path: memory_len 0 below 4960 samples, 1 from there on.
    let model = load(&s);
    assert_eq!(model.min_valid_samples(), 4960);
    assert_eq!(model.memory_len(4959), 0);
    assert_eq!(model.memory_len(4960), 1);
    let mut cap = Captioner::new(model.clone(), Some(1)).unwrap();
    let mut window = vec![0.0f32; model.window_samples()];
    let sig = signal(16000, 0.31);
    window[..sig.len()].copy_from_slice(&sig);
    let err = cap.caption(&window, 4959).unwrap_err();
    assert!(format!("{err:#}").contains("too short"), "{err:#}");
    let ok = cap.caption(&window, 4960).unwrap();
    assert!(!ok.token_ids.is_empty());
}
