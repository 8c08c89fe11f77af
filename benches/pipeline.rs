//! Criterion benchmarks of the captioning stages: resampling, log-mel, encoder, one decoder
//! step, the decoder/search for one caption, and one whole window.
//!
//! Bundles: the tiny golden bundle (always), `models/default/` when it exists, and every
//! directory in `EARSHOT_BENCH_MODELS` (colon-separated, e.g. a converted effb2 bundle).
//!
//!     cargo bench --bench pipeline            # or: make bench
//!     cargo bench --bench pipeline -- encoder # one stage
//!
//! Sample counts are kept small so that a full run takes about a minute per bundle on a
//! loaded two-core machine; `earshot bench` gives the per-window medians for a whole run.

use criterion::{criterion_group, criterion_main, Criterion};
use earshot::audio::resample::Resampler;
use earshot::audio::synth::synthetic;
use earshot::model::frontend::LogMel;
use earshot::model::search::search;
use earshot::{Captioner, LoadOptions, Model};
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

fn bundles() -> Vec<(String, PathBuf)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = vec![("tiny".to_string(), root.join("tests/golden/tiny-bundle"))];
    let default = root.join("models/default");
    if default.join("manifest.json").is_file() {
        out.push(("default".to_string(), default));
    }
    if let Ok(extra) = std::env::var("EARSHOT_BENCH_MODELS") {
        for dir in extra.split(':').filter(|s| !s.is_empty()) {
            let p = PathBuf::from(dir);
            let name = p
                .file_name()
                .map_or_else(|| dir.to_string(), |n| n.to_string_lossy().into_owned());
            out.push((name, p));
        }
    }
    out
}

fn stages(c: &mut Criterion) {
    // Resampling a 10 s window from a 48 kHz microphone to 16 kHz (model independent).
    let input = synthetic(48_000, 480_000, 0);
    let mut rs = Resampler::new(48_000, 16_000).expect("resampler");
    let mut out = Vec::with_capacity(200_000);
    c.bench_function("resample/48k-16k/10s", |b| {
        b.iter(|| {
            out.clear();
            rs.push(black_box(&input), |o| out.extend_from_slice(o))
                .expect("resample");
            black_box(out.len())
        })
    });

    for (name, dir) in bundles() {
        let model = match Model::load(&dir, &LoadOptions::default()) {
            Ok(m) => Arc::new(m),
            Err(e) => {
                eprintln!("skipping {}: {e:#}", dir.display());
                continue;
            }
        };
        let rate = model.sample_rate();
        let n = model.window_samples();
        let window = synthetic(rate, n, 0);
        let mut mel = LogMel::new(&model.manifest.frontend).expect("front end");
        let feats = mel.compute(&window).expect("log-mel");
        let backend = model.backend();
        let memory = backend.encode(&feats.data).expect("encoder");
        let mut captioner = Captioner::new(model.clone(), None).expect("captioner");
        let params = captioner.params().clone();
        let mut g = c.benchmark_group(name.as_str());
        g.sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(3));
        g.bench_function("logmel", |b| {
            b.iter(|| mel.compute(black_box(&window)).expect("log-mel"))
        });
        g.bench_function("encoder", |b| {
            b.iter(|| backend.encode(black_box(&feats.data)).expect("encoder"))
        });
        // One decoder call, beam-sized batch, prefix of 10 tokens.
        let beam = params.beam.max(1);
        let tokens: Vec<i64> = (0..beam * 10)
            .map(|i| if i % 10 == 0 { params.start } else { 4 })
            .collect();
        g.bench_function(format!("decoder-step/b{beam}-len10"), |b| {
            b.iter(|| {
                backend
                    .decode_step(black_box(&tokens), beam, &memory)
                    .expect("decoder")
            })
        });
        g.bench_function(format!("decoder-caption/beam{beam}"), |b| {
            b.iter(|| search(backend, black_box(&memory), &params).expect("search"))
        });
        g.bench_function("caption-window", |b| {
            b.iter(|| captioner.caption(black_box(&window), n).expect("caption"))
        });
        g.finish();
    }
}

criterion_group!(benches, stages);
criterion_main!(benches);
