//! Implementations of the CLI commands. Each returns the process exit status; errors that end
//! the whole command (no model) are returned as `Err` and mapped by `main`.

pub mod bench;
pub mod devices;
pub mod listen;

pub use bench::bench;
pub use devices::devices;
pub use listen::listen;

use crate::cli::{CaptionArgs, Format, InfoArgs};
use crate::model::resolve::{self, Origin};
use crate::model::{LoadOptions, Model};
use crate::output::{FormatOptions, JsonlSink, Sink, TextSink};
use crate::{caption_file, Captioner};
use anyhow::{anyhow, Context, Result};
use std::path::Path;
use std::sync::Arc;

/// Exit status: some inputs failed.
pub const EXIT_INPUT_FAILED: u8 = 1;
/// Exit status: the model could not be found or loaded.
pub const EXIT_MODEL: u8 = 3;

/// An error that ends the command, with its exit status.
#[derive(Debug)]
pub struct Fatal {
    pub code: u8,
    pub error: anyhow::Error,
}

/// One line of text for an error chain (`a: b: c`), without line breaks.
pub fn one_line(e: &anyhow::Error) -> String {
    let s = format!("{e:#}");
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn model_error(e: anyhow::Error) -> Fatal {
    Fatal {
        code: EXIT_MODEL,
        error: e,
    }
}

/// Resolves and loads the model.
pub fn load_model(flag: Option<&Path>, window: Option<f64>) -> Result<Arc<Model>, Fatal> {
    let (dir, origin) = resolve::resolve(flag).map_err(model_error)?;
    let what = match origin {
        Origin::Flag => "--model",
        Origin::Env => resolve::MODEL_ENV,
        Origin::Default => "default model",
    };
    let opts = LoadOptions {
        window_seconds: window,
        decoder_mode: None,
    };
    let model = Model::load(&dir, &opts)
        .with_context(|| format!("cannot load model ({what} {})", dir.display()))
        .map_err(model_error)?;
    Ok(Arc::new(model))
}

/// Runs `f`, turning a panic into an error so that one bad input cannot end the run.
fn guarded<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(anyhow!("internal error: {msg}"))
        }
    }
}

/// `earshot caption`.
pub fn caption(args: &CaptionArgs) -> Result<u8, Fatal> {
    let model = load_model(args.model.model.as_deref(), args.window)?;
    let hop_seconds = args.hop.unwrap_or(model.manifest.hop_seconds);
    let hop = model.manifest.samples_for_seconds(hop_seconds).max(1);
    let mut captioner =
        Captioner::new(model.clone(), args.beam.map(|b| b as usize)).map_err(model_error)?;
    let opts = FormatOptions {
        print_ids: args.print_ids,
        show_source: args.files.len() > 1,
    };
    let stdout = std::io::stdout().lock();
    let mut sink: Box<dyn Sink> = match args.format {
        Format::Text => Box::new(TextSink::new(stdout, opts)),
        Format::Jsonl => Box::new(JsonlSink::new(stdout, opts)),
    };
    let mut failed = 0usize;
    for file in &args.files {
        let t0 = std::time::Instant::now();
        let result = guarded(|| caption_file(file, &mut captioner, hop, |ev| sink.caption(&ev)));
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
    sink.flush().map_err(|e| Fatal {
        code: EXIT_INPUT_FAILED,
        error: e,
    })?;
    Ok(if failed > 0 { EXIT_INPUT_FAILED } else { 0 })
}

fn fmt_shape(s: &[usize]) -> String {
    let parts: Vec<String> = s.iter().map(|d| d.to_string()).collect();
    format!("[{}]", parts.join(", "))
}

fn fmt_params(n: u64) -> String {
    if n >= 1_000_000 {
        format!("{:.2} M", n as f64 / 1e6)
    } else {
        format!("{:.1} k", n as f64 / 1e3)
    }
}

/// `earshot info`.
pub fn info(args: &InfoArgs) -> Result<u8, Fatal> {
    let model = load_model(args.model.model.as_deref(), None)?;
    print!("{}", describe(&model));
    Ok(0)
}

/// The text `earshot info` prints.
pub fn describe(model: &Model) -> String {
    let m = &model.manifest;
    let s = model.summary();
    let f = &m.frontend;
    let mut out = String::new();
    let mut line = |k: &str, v: String| out.push_str(&format!("{k:<11}{v}\n"));
    line("model", model.dir.display().to_string());
    line("name", m.name.clone());
    line("format", format!("{} v{}", m.format, m.version));
    line(
        "engine",
        format!("{} (loaded and optimised in {:.0} ms)", s.engine, s.load_ms),
    );
    line(
        "window",
        format!("{} s, hop {} s", model.window_seconds(), m.hop_seconds),
    );
    let log = match f.log {
        crate::model::manifest::LogKind::Ln => format!("ln(x + {})", f.log_offset),
        crate::model::manifest::LogKind::Db => format!(
            "dB (amin {}, ref {}, top_db {})",
            f.amin,
            f.db_ref,
            f.top_db.map_or("none".into(), |t| t.to_string())
        ),
    };
    line(
        "front end",
        format!(
            "{} Hz, pre-emphasis {}, n_fft {}, window {:?} {}, hop {}, center {} ({:?}), power {}",
            f.sample_rate,
            f.preemphasis,
            f.n_fft,
            f.window,
            f.win_length,
            f.hop_length,
            f.center,
            f.pad_mode,
            f.power
        ),
    );
    line(
        "",
        format!(
            "{} mels {:?} {}–{} Hz (norm {:?}), log {}, (x + {}) / {}",
            f.n_mels,
            f.mel_scale,
            f.f_min,
            f.f_max_hz(),
            f.mel_norm,
            log,
            f.norm_add,
            f.norm_div
        ),
    );
    line(
        "encoder",
        format!(
            "{}: {} {} -> {} {}, memory_len {:?}, {} params",
            m.encoder.file,
            m.encoder.input,
            fmt_shape(&s.mel_shape),
            m.encoder.output,
            fmt_shape(&s.memory_shape),
            m.encoder.memory_len,
            fmt_params(s.encoder_params)
        ),
    );
    line(
        "decoder",
        format!(
            "{}: {} [B, L] int64 + {} [B, T, {}] -> {} [B, {}], {} params",
            m.decoder.file,
            m.decoder.input_tokens,
            m.decoder.input_memory,
            s.memory_shape[2],
            m.decoder.output,
            m.decoder.vocab_size,
            fmt_params(s.decoder_params)
        ),
    );
    line(
        "vocab",
        format!(
            "{} tokens (pad {}, start {}, end {}, unk {})",
            model.vocab.len(),
            m.tokens.pad,
            m.tokens.start,
            m.tokens.end,
            m.tokens.unk
        ),
    );
    line(
        "search",
        format!(
            "beam {}, max_len {}, length_norm {}, beam_mode {:?}",
            m.search.beam, m.search.max_len, m.search.length_norm, m.search.beam_mode
        ),
    );
    if !m.licences.is_empty() {
        line("licences", m.licences.join("; "));
    }
    if !m.provenance.is_null() {
        line("provenance", m.provenance.to_string());
    }
    out
}
