//! `earshot bench`: load a model, warm up, caption N windows and report per-stage medians,
//! the real-time factor, the model load time and the peak resident memory, as text or JSON.
//!
//! The stages are timed where the real pipeline runs them: the resampler (and, with
//! `--input`, the decoder of the audio file) here, log-mel / encoder / decoder+search by
//! [`Captioner`] itself ([`crate::model::Timings`]), so `bench` measures exactly what `caption` and
//! `listen` do. Speed targets are checked with this command, never with timed unit tests.

use super::bench_report::{format_text, BenchReport, Stages, Stat};
use super::{load_model, Fatal, ModelArgs};
use crate::audio::decode::AudioDecoder;
use crate::audio::resample::{resample_all, Resampler};
use crate::audio::synth::{synthetic, SYNTH_RATE};
use crate::live::health::proc_status_kb;
use crate::model::Captioner;
use anyhow::{ensure, Context, Result};
use clap::Args;
use std::path::PathBuf;
use std::time::Instant;

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
pub fn measure(args: &BenchArgs) -> Result<BenchReport, Fatal> {
    let multithread_build = set_threads(args.threads);
    let t = Instant::now();
    let model = load_model(args.model.model.as_deref(), None)?;
    let load_ms = t.elapsed().as_secs_f64() * 1e3;
    let mut captioner =
        Captioner::new(model.clone(), args.beam.map(|b| b as usize)).map_err(Fatal::model)?;
    let beam = captioner.params().beam;
    let n = captioner.window_samples();
    let rate = model.sample_rate();
    let fail = Fatal::input;
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
        peak_rss_mb: proc_status_kb("VmHWM").map(|kb| kb as f64 / 1024.0),
        rss_mb: proc_status_kb("VmRSS").map(|kb| kb as f64 / 1024.0),
        last_caption,
    })
}

/// `earshot bench`.
pub fn run(args: &BenchArgs) -> Result<u8, Fatal> {
    let report = measure(args)?;
    if args.json {
        let json = serde_json::to_string_pretty(&report).map_err(|e| Fatal::input(e.into()))?;
        println!("{json}");
    } else {
        print!("{}", format_text(&report));
    }
    Ok(0)
}
