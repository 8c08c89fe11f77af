//! `earshot info`: the bundle — manifest, tensor shapes, parameter counts, front end, search.

use super::{load_model, Fatal, ModelArgs};
use crate::model::frontend::spec::LogKind;
use crate::model::Model;
use clap::Args;

#[derive(Debug, Args)]
pub struct InfoArgs {
    #[command(flatten)]
    pub model: ModelArgs,
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
pub fn run(args: &InfoArgs) -> Result<u8, Fatal> {
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
        LogKind::Ln => format!("ln(x + {})", f.log_offset),
        LogKind::Db => format!(
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
    if m.search.no_repeat_ngram > 0 || !m.search.once_words.is_empty() {
        line(
            "repetition",
            format!(
                "no_repeat_ngram {}, once_words {} ({} in the vocabulary)",
                m.search.no_repeat_ngram,
                m.search.once_words.len(),
                m.search
                    .once_words
                    .iter()
                    .filter(|w| model.vocab.contains(w))
                    .count()
            ),
        );
    }
    if let Some(c) = &m.confidence {
        line(
            "confidence",
            format!(
                "{} a {} b {} (of the mean token log-probability)",
                c.method, c.a, c.b
            ),
        );
    }
    if let Some(t) = &m.tags {
        line(
            "tags",
            format!(
                "encoder output {:?}, {} labels ({}), top {} with {} >= {}",
                t.output,
                model.tag_labels.len(),
                t.labels,
                t.top_k,
                t.activation,
                t.min_score
            ),
        );
    }
    if !m.licences.is_empty() {
        line("licences", m.licences.join("; "));
    }
    if !m.provenance.is_null() {
        line("provenance", m.provenance.to_string());
    }
    out
}
