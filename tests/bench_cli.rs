//! `earshot bench` end to end on the tiny golden bundle: the JSON report has every stage and
//! plausible values. (Speed targets are checked with the benchmark itself, never here.)

mod support;

use assert_cmd::prelude::*;
use support::{earshot, golden};

#[test]
fn bench_json_reports_every_stage() {
    let bundle = golden().join("tiny-bundle");
    let out = earshot()
        .arg("bench")
        .arg("--model")
        .arg(&bundle)
        .args(["--windows", "2", "--warmup", "0", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for stage in ["decode_resample", "frontend", "encoder", "decoder", "total"] {
        let s = &r["stages_ms"][stage];
        assert!(s["median"].as_f64().unwrap() >= 0.0, "{stage}: {s}");
        assert!(s["min"].as_f64().unwrap() <= s["max"].as_f64().unwrap());
    }
    assert_eq!(r["windows"], 2);
    assert_eq!(r["beam"], 3);
    assert!(r["stages_ms"]["decoder_steps"]["median"].as_f64().unwrap() >= 1.0);
    assert!(r["real_time_factor"].as_f64().unwrap() > 0.0);
    assert!(r["load_ms"].as_f64().unwrap() > 0.0);
    assert!(r["peak_rss_mb"].as_f64().unwrap() > 1.0);
}

#[test]
fn bench_text_and_bad_model() {
    let bundle = golden().join("tiny-bundle");
    let out = earshot()
        .arg("bench")
        .arg("--model")
        .arg(&bundle)
        .args(["--windows", "1", "--warmup", "0", "--beam", "1"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("real-time factor"), "{text}");
    assert!(text.contains("peak RSS"), "{text}");
    earshot()
        .args(["bench", "--model", "/nonexistent/bundle"])
        .assert()
        .code(3);
}
