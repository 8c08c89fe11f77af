//! `earshot bench`: load a model, warm up, caption N windows and report per-stage medians,
//! the real-time factor, the model load time and the peak resident memory, as text or JSON.
//!
//! The stages are timed where the real pipeline runs them: the resampler (and, with
//! `--input`, the decoder of the audio file) here, log-mel / encoder / decoder+search by
//! [`Captioner`] itself ([`crate::Timings`]), so `bench` measures exactly what `caption` and
//! `listen` do. Speed targets are checked with this command, never with timed unit tests.

use super::{load_model, model_error, Fatal};
use crate::audio::decode::AudioDecoder;
use crate::audio::resample::{resample_all, Resampler};
use crate::cli::ModelArgs;
use crate::Captioner;
use anyhow::{ensure, Context, Result};
use clap::Args;
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;

/// Sample rate of the synthetic input (a typical USB microphone), so that the resampler is
/// part of every measured window as it is when listening.
pub const SYNTH_RATE: u32 = 48_000;

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub model: ModelArgs,

    /// Measured windows (after the warm-up)
    #[arg(long, value_name = "N", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub windows: u32,

    /// Warm-up windows, not counted
    #[arg(long, value_name = "N", default_value_t = 2,
          value_parser = clap::value_parser!(u32).range(0..=1000))]
    pub warmup: u32,

    /// Threads for tract's matrix products (needs a build with the `multithread` feature;
    /// 1 = single-threaded, the default)
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=256))]
    pub threads: u32,

    /// Beam width; 1 = greedy [default: the model's search.beam]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
    pub beam: Option<u32>,

    /// Audio file to use instead of the synthetic signal (decoded, resampled, cut into
    /// non-overlapping windows, reused in a loop when it is shorter than the run)
    #[arg(long, value_name = "FILE")]
    pub input: Option<PathBuf>,

    /// Print one JSON object instead of text
    #[arg(long)]
    pub json: bool,
}

/// Median / min / max of one stage over the measured windows, in milliseconds.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Stat {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Stat {
    pub fn of(values: &[f64]) -> Stat {
        if values.is_empty() {
            return Stat {
                median: 0.0,
                min: 0.0,
                max: 0.0,
            };
        }
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            0.5 * (v[n / 2 - 1] + v[n / 2])
        };
        Stat {
            median,
            min: v[0],
            max: v[n - 1],
        }
    }
}

/// Per-stage statistics (milliseconds per window).
#[derive(Debug, Clone, Serialize)]
pub struct Stages {
    /// Decoding the input file (with `--input`, prorated per window) and resampling to the
    /// model rate.
    pub decode_resample: Stat,
    pub frontend: Stat,
    pub encoder: Stat,
    /// Decoder and search for one caption (all steps).
    pub decoder: Stat,
    /// Sum of the stages above, per window.
    pub total: Stat,
    /// Decoder calls per caption.
    pub decoder_steps: Stat,
}

/// What `earshot bench --json` prints.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub earshot_version: &'static str,
    pub model: String,
    pub model_name: String,
    pub engine: &'static str,
    pub threads: u32,
    /// Whether this build can run tract on several threads.
    pub multithread_build: bool,
    pub beam: usize,
    pub input: String,
    pub window_seconds: f64,
    pub warmup: u32,
    pub windows: u32,
    /// Wall time of resolving + loading + optimising the model (what start-up costs).
    pub load_ms: f64,
    /// The first (cold) window, all stages.
    pub first_window_ms: f64,
    pub stages_ms: Stages,
    /// Median total / window length.
    pub real_time_factor: f64,
    /// Median decoder time per decoder call.
    pub decoder_ms_per_step: f64,
    /// VmHWM: peak resident memory of the process.
    pub peak_rss_mb: Option<f64>,
    /// VmRSS at the end of the run.
    pub rss_mb: Option<f64>,
    /// Caption of the last window (nonsense for untrained bundles).
    pub last_caption: String,
}

/// A `/proc/self/status` field (`VmHWM`, `VmRSS`) in MiB.
pub fn proc_status_mb(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_status_kb(&status, field).map(|kb| kb as f64 / 1024.0)
}

/// `VmHWM:   12345 kB` → 12345.
pub fn parse_status_kb(status: &str, field: &str) -> Option<u64> {
    let line = status
        .lines()
        .find(|l| l.split(':').next() == Some(field))?;
    line.split(':')
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Deterministic test signal at `rate`: two tones, a slow chirp and seeded noise, peak < 0.8.
/// `offset` (samples) makes consecutive windows differ.
pub fn synthetic(rate: u32, len: usize, offset: u64) -> Vec<f32> {
    let r = f64::from(rate);
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15 ^ offset;
    (0..len)
        .map(|i| {
            let t = (offset + i as u64) as f64 / r;
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let noise = ((state >> 40) as f64 / (1u64 << 24) as f64) - 0.5;
            let chirp = (2.0 * std::f64::consts::PI * (200.0 + 40.0 * (t % 10.0)) * t).sin();
            (0.25 * (2.0 * std::f64::consts::PI * 440.0 * t).sin()
                + 0.15 * (2.0 * std::f64::consts::PI * 1250.0 * t).sin()
                + 0.2 * chirp
                + 0.2 * noise) as f32
        })
        .collect()
}

/// Where the windows come from.
enum Feed {
    /// Synthetic audio at [`SYNTH_RATE`], resampled per window as a live stream would be.
    Synthetic {
        resampler: Box<Resampler>,
        offset: u64,
        pending: Vec<f32>,
    },
    /// A decoded, resampled file cut into windows; the decode+resample cost is prorated.
    File {
        audio: Vec<f32>,
        next: usize,
        per_window_ms: f64,
    },
}

impl Feed {
    /// Fills `window` (model rate), returns (decode/resample ms, valid samples).
    fn next(&mut self, window: &mut [f32]) -> Result<(f64, usize)> {
        let n = window.len();
        match self {
            Feed::Synthetic {
                resampler,
                offset,
                pending,
            } => {
                let in_rate = resampler.in_rate();
                let out_rate = resampler.out_rate();
                let in_len = (n as u64 * u64::from(in_rate)).div_ceil(u64::from(out_rate)) as usize;
                let input = synthetic(in_rate, in_len, *offset);
                *offset += in_len as u64;
                let t = Instant::now();
                resampler.push(&input, |out| pending.extend_from_slice(out))?;
                let ms = t.elapsed().as_secs_f64() * 1e3;
                // The resampler has a start-up delay: the first windows may come up short.
                let take = pending.len().min(n);
                window[..take].copy_from_slice(&pending[..take]);
                window[take..].fill(0.0);
                pending.drain(..take);
                Ok((ms, n))
            }
            Feed::File {
                audio,
                next,
                per_window_ms,
            } => {
                if *next >= audio.len() {
                    *next = 0;
                }
                let take = (audio.len() - *next).min(n);
                window[..take].copy_from_slice(&audio[*next..*next + take]);
                window[take..].fill(0.0);
                *next += n;
                Ok((*per_window_ms, take))
            }
        }
    }
}

fn open_feed(input: Option<&PathBuf>, rate: u32, window: usize) -> Result<(Feed, String)> {
    let Some(path) = input else {
        let feed = Feed::Synthetic {
            resampler: Box::new(Resampler::new(SYNTH_RATE, rate)?),
            offset: 0,
            pending: Vec::with_capacity(2 * window),
        };
        return Ok((
            feed,
            format!("synthetic (tones, chirp, noise) at {SYNTH_RATE} Hz"),
        ));
    };
    let t = Instant::now();
    let mut decoder = AudioDecoder::open(path)?;
    let info = decoder.info().clone();
    let mut raw = Vec::new();
    while let Some(chunk) = decoder.next_chunk()? {
        raw.extend_from_slice(chunk);
    }
    ensure!(!raw.is_empty(), "{}: no audio", path.display());
    let audio = resample_all(&raw, info.sample_rate, rate)?;
    let ms = t.elapsed().as_secs_f64() * 1e3;
    let per_window_ms = ms * window as f64 / audio.len().max(1) as f64;
    let desc = format!(
        "{} ({}, {} Hz, {:.1} s)",
        path.display(),
        info.codec,
        info.sample_rate,
        raw.len() as f64 / f64::from(info.sample_rate)
    );
    Ok((
        Feed::File {
            audio,
            next: 0,
            per_window_ms,
        },
        desc,
    ))
}

/// Sets tract's matrix-product executor. Returns whether this build can use several threads.
pub fn set_threads(threads: u32) -> bool {
    #[cfg(feature = "multithread")]
    {
        use tract_linalg::multithread::{set_default_executor, Executor};
        if threads > 1 {
            set_default_executor(Executor::multithread(threads as usize));
        } else {
            set_default_executor(Executor::SingleThread);
        }
        true
    }
    #[cfg(not(feature = "multithread"))]
    {
        if threads > 1 {
            log::warn!(
                "this earshot was built without the `multithread` feature: running on 1 thread \
                 (cargo build --release --features multithread)"
            );
        }
        false
    }
}

/// Runs the benchmark (what `earshot bench` prints, as a value).
pub fn run(args: &BenchArgs) -> Result<BenchReport, Fatal> {
    let multithread_build = set_threads(args.threads);
    let t = Instant::now();
    let model = load_model(args.model.model.as_deref(), None)?;
    let load_ms = t.elapsed().as_secs_f64() * 1e3;
    let mut captioner =
        Captioner::new(model.clone(), args.beam.map(|b| b as usize)).map_err(model_error)?;
    let beam = captioner.params().beam;
    let n = captioner.window_samples();
    let rate = model.sample_rate();
    let fail = |e: anyhow::Error| Fatal {
        code: super::EXIT_INPUT_FAILED,
        error: e,
    };
    let (mut feed, input) = open_feed(args.input.as_ref(), rate, n).map_err(fail)?;
    let mut window = vec![0.0f32; n];
    let mut rows: Vec<[f64; 6]> = Vec::with_capacity(args.windows as usize);
    let mut first_window_ms = 0.0;
    let mut last_caption = String::new();
    for i in 0..args.warmup + args.windows {
        let (dr_ms, valid) = feed.next(&mut window).map_err(fail)?;
        let t = Instant::now();
        let cap = captioner
            .caption(&window, valid)
            .with_context(|| format!("window {i}"))
            .map_err(fail)?;
        let wall = t.elapsed().as_secs_f64() * 1e3;
        if i == 0 {
            first_window_ms = dr_ms + wall;
        }
        if i >= args.warmup {
            let tm = cap.timings;
            rows.push([
                dr_ms,
                tm.frontend_ms,
                tm.encoder_ms,
                tm.decoder_ms,
                dr_ms + tm.total_ms(),
                tm.decoder_steps as f64,
            ]);
        }
        last_caption = cap.text;
    }
    let col = |k: usize| Stat::of(&rows.iter().map(|r| r[k]).collect::<Vec<_>>());
    let stages = Stages {
        decode_resample: col(0),
        frontend: col(1),
        encoder: col(2),
        decoder: col(3),
        total: col(4),
        decoder_steps: col(5),
    };
    let per_step: Vec<f64> = rows
        .iter()
        .filter(|r| r[5] > 0.0)
        .map(|r| r[3] / r[5])
        .collect();
    let window_seconds = model.window_seconds();
    Ok(BenchReport {
        earshot_version: env!("CARGO_PKG_VERSION"),
        model: model.dir.display().to_string(),
        model_name: model.manifest.name.clone(),
        engine: model.summary().engine,
        threads: if multithread_build { args.threads } else { 1 },
        multithread_build,
        beam,
        input,
        window_seconds,
        warmup: args.warmup,
        windows: args.windows,
        load_ms,
        first_window_ms,
        real_time_factor: stages.total.median / (window_seconds * 1e3),
        decoder_ms_per_step: Stat::of(&per_step).median,
        stages_ms: stages,
        peak_rss_mb: proc_status_mb("VmHWM"),
        rss_mb: proc_status_mb("VmRSS"),
        last_caption,
    })
}

/// The text report.
pub fn format_text(r: &BenchReport) -> String {
    let mut s = String::new();
    let mut line = |k: &str, v: String| s.push_str(&format!("{k:<18}{v}\n"));
    line("model", format!("{} ({})", r.model, r.model_name));
    line(
        "engine",
        format!(
            "{}, {} thread(s){}, beam {}",
            r.engine,
            r.threads,
            if r.multithread_build {
                ""
            } else {
                " (single-thread build)"
            },
            r.beam
        ),
    );
    line("input", r.input.clone());
    line(
        "windows",
        format!(
            "{} × {} s measured after {} warm-up",
            r.windows, r.window_seconds, r.warmup
        ),
    );
    line("model load", format!("{:.1} ms", r.load_ms));
    line("first window", format!("{:.1} ms", r.first_window_ms));
    s.push_str("stage (ms/window)      median       min       max\n");
    let st = &r.stages_ms;
    for (name, v) in [
        ("decode/resample", st.decode_resample),
        ("log-mel", st.frontend),
        ("encoder", st.encoder),
        ("decoder/caption", st.decoder),
        ("total", st.total),
    ] {
        s.push_str(&format!(
            "  {name:<18}{:>10.2}{:>10.2}{:>10.2}\n",
            v.median, v.min, v.max
        ));
    }
    let mut line = |k: &str, v: String| s.push_str(&format!("{k:<18}{v}\n"));
    line(
        "decoder steps",
        format!(
            "{:.0} per caption, {:.2} ms per step",
            st.decoder_steps.median, r.decoder_ms_per_step
        ),
    );
    line(
        "real-time factor",
        format!(
            "{:.4} (median total / {} s window)",
            r.real_time_factor, r.window_seconds
        ),
    );
    let mb = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.1} MiB"));
    line(
        "memory",
        format!("peak RSS {}, RSS now {}", mb(r.peak_rss_mb), mb(r.rss_mb)),
    );
    line("last caption", format!("{:?}", r.last_caption));
    s
}

/// `earshot bench`.
pub fn bench(args: &BenchArgs) -> Result<u8, Fatal> {
    let report = run(args)?;
    if args.json {
        let json = serde_json::to_string_pretty(&report).map_err(|e| Fatal {
            code: super::EXIT_INPUT_FAILED,
            error: e.into(),
        })?;
        println!("{json}");
    } else {
        print!("{}", format_text(&report));
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(Stat::of(&[3.0, 1.0, 2.0]).median, 2.0);
        let s = Stat::of(&[4.0, 1.0, 3.0, 2.0]);
        assert_eq!((s.median, s.min, s.max), (2.5, 1.0, 4.0));
        assert_eq!(Stat::of(&[]).median, 0.0);
    }

    #[test]
    fn parses_proc_status() {
        let s = "Name:\tearshot\nVmHWM:\t   51234 kB\nVmRSS:\t   40000 kB\n";
        assert_eq!(parse_status_kb(s, "VmHWM"), Some(51234));
        assert_eq!(parse_status_kb(s, "VmRSS"), Some(40000));
        assert_eq!(parse_status_kb(s, "VmSwap"), None);
        assert!(proc_status_mb("VmHWM").is_some_and(|v| v > 0.0));
    }

    #[test]
    fn synthetic_is_deterministic_and_bounded() {
        let a = synthetic(48_000, 4800, 0);
        assert_eq!(a, synthetic(48_000, 4800, 0));
        assert_ne!(a, synthetic(48_000, 4800, 4800));
        assert!(a.iter().all(|x| x.abs() < 0.9));
    }
}
