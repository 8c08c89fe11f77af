//! `earshot caption`: a driver over the same stages and the same sinks as `listen --file
//! --fast`, without threads: decode ([`AudioDecoder`]) → reject non-finite samples
//! ([`check_finite`]) → [`WindowStream`] → [`WindowCaptioner`] → an [`EventSink`]
//! ([`Event::FileCaption`], printed by [`crate::sink::format`] like every other caption line).
//! Captions are emitted as soon as each window is done, so they appear while a long file is
//! still being read; memory is bounded by one packet, one resampler chunk and one window.

use super::{guarded_input, load_model, one_line, Fatal, ModelArgs, EXIT_INPUT_FAILED};
use crate::audio::decode::{AudioDecoder, StreamInfo};
use crate::audio::pcm::check_finite;
use crate::audio::stream::WindowStream;
use crate::audio::window::Window;
use crate::model::{Captioner, WindowCaptioner};
use crate::sink::format::format_time;
use crate::sink::{CaptionEvent, Event, EventSink, FormatOptions, LineFormat, LineSink};
use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use std::path::{Path, PathBuf};

/// Audio shorter than this (after decoding) is rejected as "too short to caption".
pub const MIN_AUDIO_SECONDS: f64 = 0.1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// `[00:00.0–00:10.0] a woman speaks` (prefixed with `FILE: ` for several files)
    Text,
    /// One JSON object per line: {"file","start","end","caption","confidence"[,"tags"][,"token_ids"]}
    Jsonl,
}

#[derive(Debug, Args)]
pub struct CaptionArgs {
    /// Audio files to caption
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,

    #[command(flatten)]
    pub model: ModelArgs,

    /// Window length in seconds [default: the model's window_seconds]. Models whose encoder
    /// has a fixed time axis accept only their own window.
    #[arg(long, value_name = "SECONDS", value_parser = positive_seconds)]
    pub window: Option<f64>,

    /// Time between window starts in seconds [default: the model's hop_seconds]
    #[arg(long, value_name = "SECONDS", value_parser = positive_seconds)]
    pub hop: Option<f64>,

    /// Beam width; 1 = greedy search [default: the model's search.beam]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
    pub beam: Option<u32>,

    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,

    /// Also print the generated token ids (for parity checks)
    #[arg(long)]
    pub print_ids: bool,

    /// Text output: print each caption's confidence after it, e.g. `a dog barks (0.82)`, for
    /// models whose bundle has a confidence section (JSON lines always carry "confidence")
    #[arg(long)]
    pub show_confidence: bool,
}

fn positive_seconds(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !v.is_finite() || v <= 0.0 || v > 3600.0 {
        return Err(format!("{s} must be > 0 and at most 3600 seconds"));
    }
    Ok(v)
}

/// What [`caption_file`] saw.
#[derive(Debug, Clone)]
pub struct FileReport {
    pub stream: StreamInfo,
    /// Decoded duration in seconds.
    pub duration: f64,
    pub windows: usize,
}

/// Decodes, resamples, windows and captions one file at the model rate `rate`; every caption
/// goes to `sink` as soon as its window is done.
pub fn caption_file(
    path: &Path,
    captioner: &mut dyn WindowCaptioner,
    rate: u32,
    hop_samples: usize,
    sink: &mut dyn EventSink,
) -> Result<FileReport> {
    let mut decoder = AudioDecoder::open(path)?;
    let info = decoder.info().clone();
    log::debug!("{}: {:?}", path.display(), info);
    let mut stream = WindowStream::new(
        info.sample_rate,
        rate,
        captioner.window_samples(),
        hop_samples,
    )?;
    let source = path.display().to_string();
    let mut windows = 0usize;
    let mut emit = |w: Window<'_>| -> Result<()> {
        let start = w.start as f64 / f64::from(rate);
        let end = w.end() as f64 / f64::from(rate);
        let caption = captioner
            .caption(w.samples, w.valid)
            .with_context(|| format!("captioning {}–{}", format_time(start), format_time(end)))?;
        log::debug!(
            "{source} [{:.1}-{:.1}] front end {:.1} ms, encoder {:.1} ms, decoder {:.1} ms ({} steps)",
            start,
            end,
            caption.timings.frontend_ms,
            caption.timings.encoder_ms,
            caption.timings.decoder_ms,
            caption.timings.decoder_steps
        );
        windows += 1;
        sink.emit(&Event::FileCaption(CaptionEvent {
            source: source.clone(),
            start,
            end,
            caption,
        }))
    };
    loop {
        let offset = decoder.frames_decoded();
        let Some(chunk) = decoder.next_chunk()? else {
            break;
        };
        check_finite(chunk, offset, info.sample_rate)?;
        stream.push(chunk, &mut emit)?;
    }
    let frames = decoder.frames_decoded();
    let duration = frames as f64 / f64::from(info.sample_rate);
    if frames == 0 {
        bail!("no audio: the file contains no samples");
    }
    if duration < MIN_AUDIO_SECONDS {
        bail!(
            "audio too short: {:.3} s (at least {MIN_AUDIO_SECONDS} s needed)",
            duration
        );
    }
    stream.finish(&mut emit)?;
    Ok(FileReport {
        stream: info,
        duration,
        windows,
    })
}

/// `earshot caption`.
pub fn run(args: &CaptionArgs) -> Result<u8, Fatal> {
    let model = load_model(args.model.model.as_deref(), args.window)?;
    let hop_seconds = args.hop.unwrap_or(model.manifest.hop_seconds);
    let hop = model.manifest.samples_for_seconds(hop_seconds).max(1);
    let mut captioner =
        Captioner::new(model.clone(), args.beam.map(|b| b as usize)).map_err(Fatal::model)?;
    let rate = model.sample_rate();
    let opts = FormatOptions {
        print_ids: args.print_ids,
        show_source: args.files.len() > 1,
        show_confidence: args.show_confidence,
    };
    let format = match args.format {
        Format::Text => LineFormat::Text,
        Format::Jsonl => LineFormat::Jsonl,
    };
    let mut sink = LineSink::new("stdout", std::io::stdout(), format).with_options(opts);
    let mut failed = 0usize;
    for file in &args.files {
        let t0 = std::time::Instant::now();
        let result = guarded_input(|| caption_file(file, &mut captioner, rate, hop, &mut sink));
        match result {
            Ok(report) => log::info!(
                "{}: {:.1} s of {} audio ({} Hz, {} ch), {} windows in {:.0} ms",
                file.display(),
                report.duration,
                report.stream.codec,
                report.stream.sample_rate,
                report.stream.channels,
                report.windows,
                t0.elapsed().as_secs_f64() * 1e3
            ),
            Err(e) => {
                failed += 1;
                eprintln!("earshot: error: {}: {}", file.display(), one_line(&e));
            }
        }
    }
    sink.flush().map_err(Fatal::input)?;
    Ok(if failed > 0 { EXIT_INPUT_FAILED } else { 0 })
}
