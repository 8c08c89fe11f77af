//! `earshot caption`: a driver over the same stages and the same sinks as `listen --file
//! --fast`, without threads: decode ([`AudioDecoder`], which also applies the non-finite-sample
//! policy of [`crate::audio::pcm`]) → [`WindowStream`] → [`WindowCaptioner`] → an [`EventSink`]
//! ([`Event::FileCaption`], printed by [`crate::sink::format`] like every other caption line).
//! Captions are emitted as soon as each window is done, so they appear while a long file is
//! still being read; memory is bounded by one packet, one resampler chunk and one window.
//!
//! The silence gate (`--gate-dbfs`) and the caption rules of `listen` (`--min-confidence`,
//! `--only`, `--ignore`, `--privacy-speech`: [`crate::live::filter`], the one place they live)
//! apply here too, all off by default so that every window gets its line: a gated window
//! prints `(silence)` (JSON: `"caption": null, "gated": true`); a caption the rules leave out
//! prints nothing and is counted in the file's summary line on standard error.
//!
//! `-` reads standard input. A file that ends in a decode error still gets the captions of its
//! readable part, the last partial window included, before its error line. Output closed by its
//! reader (`| head -1`) ends the run quietly with status 0, as a Unix tool would; standard output
//! closed from the start (`>&-`) is an error.

use super::{guarded_input, load_model, one_line, Fatal, ModelArgs, EXIT_INPUT_FAILED};
use crate::audio::decode::{AudioDecoder, StreamInfo};
use crate::audio::stream::WindowStream;
use crate::audio::window::Window;
use crate::config::validate::hop_seconds;
use crate::config::validate::rules::{min_confidence, word_list};
use crate::config::CaptionSettings;
use crate::live::filter::{CaptionRules, SpeechPrivacy, Verdict};
use crate::live::gate;
use crate::model::{Captioner, WindowCaptioner};
use crate::sink::format::format_time;
use crate::sink::line::{output_gone, stdout_open};
use crate::sink::{
    CaptionEvent, Event, EventSink, FormatOptions, GatedWindow, LineFormat, LineSink,
};
use anyhow::{anyhow, bail, Context, Result};
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
    /// Audio files to caption (`-`: standard input)
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

    /// Silence gate: windows quieter than this RMS level print `(silence)` instead of a caption
    /// [default: off]
    #[arg(long, value_name = "DBFS", allow_hyphen_values = true, value_parser = gate_level)]
    pub gate_dbfs: Option<f64>,

    /// Print only captions at least this confident (0..1; bundles without a confidence pass)
    /// [default: off]
    #[arg(long, value_name = "0..1")]
    pub min_confidence: Option<f64>,

    /// Print only captions mentioning one of these words or tags (repeat, or comma-separated)
    #[arg(long, value_name = "WORDS", value_delimiter = ',')]
    pub only: Vec<String>,

    /// Leave out captions mentioning one of these words or tags (repeat, or comma-separated)
    #[arg(long, value_name = "WORDS", value_delimiter = ',')]
    pub ignore: Vec<String>,

    /// Speech windows: keep, mask (printed as "someone speaks") or drop (not printed)
    #[arg(long, value_name = "MODE", default_value = "keep", value_parser = speech_mode)]
    pub privacy_speech: SpeechPrivacy,
}

fn gate_level(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a level in dBFS"))?;
    if v.is_nan() || v > 0.0 {
        return Err(format!("{s} must be <= 0 dBFS"));
    }
    Ok(v)
}

fn speech_mode(s: &str) -> Result<SpeechPrivacy, String> {
    SpeechPrivacy::parse(s).ok_or_else(|| format!("{s:?} must be keep, mask or drop"))
}

/// What `earshot caption` does with a window besides captioning it: the silence gate and the
/// caption rules (both off in [`FileRules::default`]).
#[derive(Debug, Clone, Default)]
pub struct FileRules {
    /// Windows below this RMS level (dBFS) are not captioned. `None`: off.
    pub gate_dbfs: Option<f64>,
    pub rules: CaptionRules,
}

impl FileRules {
    /// The flags of `args`, checked like the config keys of `listen` (a bad value is a usage
    /// error naming the flag).
    pub fn from_args(args: &CaptionArgs) -> Result<FileRules> {
        let flag = |e: anyhow::Error, name: &str, key: &str| {
            anyhow!("{}", e.to_string().replace(&format!("`{key}`"), name))
        };
        let min = min_confidence("captions.min_confidence", args.min_confidence, None)
            .map_err(|e| flag(e, "--min-confidence", "captions.min_confidence"))?;
        let list = |v: &[String], name: &str, key: &str| {
            word_list(key, (!v.is_empty()).then(|| v.to_vec())).map_err(|e| flag(e, name, key))
        };
        let only = list(&args.only, "--only", "captions.only")?;
        let ignore = list(&args.ignore, "--ignore", "captions.ignore")?;
        Ok(FileRules {
            gate_dbfs: args.gate_dbfs.filter(|g| g.is_finite()),
            rules: CaptionRules {
                min_confidence: min,
                only: CaptionRules::patterns(&only),
                ignore: CaptionRules::patterns(&ignore),
                speech: args.privacy_speech,
                speech_clips: false,
            },
        })
    }

    fn is_active(&self) -> bool {
        self.gate_dbfs.is_some() || self.rules.is_active()
    }
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
    /// Windows that got a caption line.
    pub captions: usize,
    /// Windows below `--gate-dbfs` (printed as `(silence)`).
    pub gated: usize,
    /// Captions left out by `--min-confidence`.
    pub uncertain: usize,
    /// Captions left out by `--only` / `--ignore`.
    pub filtered: usize,
    /// Speech windows left out by `--privacy-speech drop`.
    pub privacy_dropped: usize,
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
    caption_file_with(
        path,
        captioner,
        rate,
        hop_samples,
        &FileRules::default(),
        sink,
    )
}

/// [`caption_file`] with the silence gate and the caption rules of `rules`: a gated window goes
/// to `sink` as [`Event::FileGated`]; a caption the rules leave out is only counted.
pub fn caption_file_with(
    path: &Path,
    captioner: &mut dyn WindowCaptioner,
    rate: u32,
    hop_samples: usize,
    rules: &FileRules,
    sink: &mut dyn EventSink,
) -> Result<FileReport> {
    let mut decoder = match path.as_os_str() == "-" {
        true => AudioDecoder::open_stdin()?,
        false => AudioDecoder::open(path)?,
    };
    let info = decoder.info().clone();
    log::debug!("{}: {:?}", path.display(), info);
    let mut stream = WindowStream::new(
        info.sample_rate,
        rate,
        captioner.window_samples(),
        hop_samples,
    )?;
    let source = match path.as_os_str() == "-" {
        true => "stdin".to_string(),
        false => path.display().to_string(),
    };
    let mut counts = FileReport {
        stream: info.clone(),
        duration: 0.0,
        windows: 0,
        captions: 0,
        gated: 0,
        uncertain: 0,
        filtered: 0,
        privacy_dropped: 0,
    };
    let mut emit = |w: Window<'_>| -> Result<()> {
        let start = w.start as f64 / f64::from(rate);
        let end = w.end() as f64 / f64::from(rate);
        counts.windows += 1;
        if rules.gate_dbfs.is_some() {
            let level = gate::level_dbfs(&w.samples[..w.valid.min(w.samples.len())]);
            if !gate::passes(level, rules.gate_dbfs) {
                counts.gated += 1;
                return sink.emit(&Event::FileGated(GatedWindow {
                    source: source.clone(),
                    start,
                    end,
                    level_dbfs: level,
                }));
            }
        }
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
        let caption = match rules.rules.judge(caption) {
            Verdict::Emit { caption, .. } => caption,
            Verdict::Uncertain => {
                counts.uncertain += 1;
                return Ok(());
            }
            Verdict::Filtered => {
                counts.filtered += 1;
                return Ok(());
            }
            Verdict::PrivacyDropped => {
                counts.privacy_dropped += 1;
                return Ok(());
            }
        };
        counts.captions += 1;
        sink.emit(&Event::FileCaption(CaptionEvent {
            source: source.clone(),
            start,
            end,
            caption,
        }))
    };
    // A decode error ends the file, but the part read before it is still captioned (the last,
    // partial window too); the error is returned after that.
    let mut failure = None;
    loop {
        let chunk = match decoder.next_chunk() {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(e) => {
                failure = Some(e);
                break;
            }
        };
        stream.push(chunk, &mut emit)?;
    }
    let frames = decoder.frames_decoded();
    let duration = frames as f64 / f64::from(info.sample_rate);
    if let Some(e) = failure {
        if duration >= MIN_AUDIO_SECONDS {
            stream.finish(&mut emit)?;
        }
        return Err(e);
    }
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
    Ok(FileReport { duration, ..counts })
}

/// `earshot caption`.
pub fn run(args: &CaptionArgs) -> Result<u8, Fatal> {
    if !stdout_open() {
        return Err(Fatal::input(anyhow!(
            "standard output (stdout) is closed: nowhere to write the captions"
        )));
    }
    let model = load_model(args.model.model.as_deref(), args.window)
        .map_err(|f| f.window_named("--window"))?;
    let mut captioner =
        Captioner::new(model.clone(), args.beam.map(|b| b as usize)).map_err(Fatal::model)?;
    let rate = model.sample_rate();
    let hop = caption_hop(
        args,
        captioner.window_samples(),
        rate,
        model.manifest.hop_seconds,
    )?;
    let hop = model.manifest.samples_for_seconds(hop).max(1);
    let opts = FormatOptions {
        print_ids: args.print_ids,
        show_source: args.files.len() > 1,
        show_confidence: args.show_confidence,
    };
    let format = match args.format {
        Format::Text => LineFormat::Text,
        Format::Jsonl => LineFormat::Jsonl,
    };
    let rules = FileRules::from_args(args).map_err(Fatal::usage)?;
    let mut sink = LineSink::new("stdout", std::io::stdout(), format).with_options(opts);
    let mut failed = 0usize;
    for file in &args.files {
        let t0 = std::time::Instant::now();
        let result =
            guarded_input(|| caption_file_with(file, &mut captioner, rate, hop, &rules, &mut sink));
        match result {
            Err(e) if output_gone(&e) => {
                log::debug!("stdout closed by its reader: {e:#}");
                return Ok(0);
            }
            Ok(report) if rules.is_active() => {
                // Windows without a line are never lost silently: one count line per file.
                eprintln!(
                    "earshot: {}: {} windows: {} captions, {} silence, {} uncertain, \
                     {} filtered, {} privacy-dropped",
                    file.display(),
                    report.windows,
                    report.captions,
                    report.gated,
                    report.uncertain,
                    report.filtered,
                    report.privacy_dropped
                );
            }
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
    match sink.flush() {
        Err(e) if !output_gone(&e) => return Err(Fatal::input(e)),
        _ => {}
    }
    Ok(if failed > 0 { EXIT_INPUT_FAILED } else { 0 })
}

/// The hop in seconds: `--hop`, else the model's; `listen`'s rule (the hop must not exceed the
/// window, [`hop_seconds`]) applies, a violation is a usage error naming `--hop`.
fn caption_hop(args: &CaptionArgs, window: usize, rate: u32, model_hop: f64) -> Result<f64, Fatal> {
    let window_s = window as f64 / f64::from(rate);
    let asked = CaptionSettings {
        window_seconds: args.window,
        hop_seconds: args.hop,
        gate_dbfs: None,
        holdoff_seconds: 0.0,
        similarity: 1.0,
        queue_windows: 1,
        min_confidence: None,
        only: Vec::new(),
        ignore: Vec::new(),
    };
    hop_seconds(&asked, window_s, model_hop).map_err(|_| {
        Fatal::usage(anyhow!(
            "invalid --hop: {} s is longer than the window ({window_s} s); windows would skip audio",
            args.hop.unwrap_or(model_hop)
        ))
    })
}
