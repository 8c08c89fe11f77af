//! `[source]` and `[captions]`: where audio comes from and how it is cut and filtered.

use super::rules::DEFAULT_MIN_CONFIDENCE;
use super::rules::{bad, min_confidence, positive, ranged_int, word_list};
use super::rules::{DEFAULT_GATE_DBFS, DEFAULT_HOLDOFF_SECONDS, DEFAULT_QUEUE_WINDOWS};
use super::rules::{DEFAULT_RING_SECONDS, DEFAULT_SIMILARITY, DEFAULT_WATCHDOG_SECONDS};
use crate::audio::pcm::PcmFormat;
use crate::config::file::{RawCaptions, RawSource};
use crate::config::settings::{CaptionSettings, SourceSettings};
use anyhow::Result;

/// `[source]`: the source, `ring_seconds` and `watchdog_seconds`.
pub(super) fn source(s: RawSource) -> Result<(SourceSettings, f64, f64)> {
    let kind = match s.kind.as_deref().map(|k| k.trim().to_ascii_lowercase()) {
        None => {
            if s.file.is_some() {
                "file".to_string()
            } else {
                "mic".to_string()
            }
        }
        Some(k) => k,
    };
    if s.device_required.is_some() && kind != "mic" {
        return Err(bad(
            "source.device_required",
            format!("has no meaning with source.kind = \"{kind}\""),
        ));
    }
    let source = match kind.as_str() {
        "mic" => SourceSettings::Mic {
            device: s.device.filter(|d| !d.trim().is_empty()),
            required: s.device_required.unwrap_or(false),
        },
        "stdin" => {
            let format = match s
                .stdin_format
                .as_deref()
                .map(str::to_ascii_lowercase)
                .as_deref()
            {
                None | Some("s16le") | Some("s16_le") => PcmFormat::S16Le,
                Some("s32le") | Some("s32_le") => PcmFormat::S32Le,
                Some("f32le") | Some("float_le") | Some("f32_le") => PcmFormat::F32Le,
                Some(other) => {
                    return Err(bad(
                        "source.stdin_format",
                        format!("must be \"s16le\", \"s32le\" or \"f32le\" (got \"{other}\")"),
                    ))
                }
            };
            // Optional: a WAV header on stdin gives it; raw PCM without it is refused at start.
            let rate =
                ranged_int("source.stdin_rate", s.stdin_rate, 1000, 768_000)?.map(|r| r as u32);
            let channels =
                ranged_int("source.stdin_channels", s.stdin_channels, 1, 64)?.unwrap_or(1) as u16;
            SourceSettings::Stdin {
                format,
                rate,
                channels,
            }
        }
        "file" => {
            let path = s
                .file
                .ok_or_else(|| bad("source.file", "is required when source.kind = \"file\""))?;
            let realtime = s.realtime.unwrap_or(true);
            let speed = if realtime {
                Some(positive("source.speed", s.speed, 1.0)?)
            } else {
                if s.speed.is_some() {
                    return Err(bad("source.speed", "has no meaning with realtime = false"));
                }
                None
            };
            SourceSettings::File { path, speed }
        }
        other => {
            return Err(bad(
                "source.kind",
                format!("must be \"mic\", \"stdin\" or \"file\" (got \"{other}\")"),
            ))
        }
    };
    let ring_seconds = positive("source.ring_seconds", s.ring_seconds, DEFAULT_RING_SECONDS)?;
    if ring_seconds > 600.0 {
        return Err(bad("source.ring_seconds", "must be at most 600"));
    }
    let watchdog_seconds = positive(
        "source.watchdog_seconds",
        s.watchdog_seconds,
        DEFAULT_WATCHDOG_SECONDS,
    )?;
    Ok((source, ring_seconds, watchdog_seconds))
}

/// `[captions]`.
pub(super) fn captions(c: RawCaptions) -> Result<CaptionSettings> {
    let window_seconds = match c.window_seconds {
        None => None,
        Some(_) => Some(positive("captions.window_seconds", c.window_seconds, 0.0)?),
    };
    let hop_seconds = match c.hop_seconds {
        None => None,
        Some(_) => Some(positive("captions.hop_seconds", c.hop_seconds, 0.0)?),
    };
    if let (Some(w), Some(h)) = (window_seconds, hop_seconds) {
        if h > w {
            return Err(bad(
                "captions.hop_seconds",
                format!("must not exceed captions.window_seconds ({h} > {w})"),
            ));
        }
    }
    let gate_dbfs = match c.gate_dbfs {
        None => Some(DEFAULT_GATE_DBFS),
        Some(g) if g.is_nan() || g > 0.0 => {
            return Err(bad(
                "captions.gate_dbfs",
                format!("must be <= 0 dBFS (got {g}); use -inf or a very low value to disable"),
            ))
        }
        Some(g) if g == f64::NEG_INFINITY || g <= -200.0 => None,
        Some(g) => Some(g),
    };
    let holdoff_seconds = match c.holdoff_seconds {
        None => DEFAULT_HOLDOFF_SECONDS,
        Some(h) if h.is_finite() && h >= 0.0 => h,
        Some(h) => {
            return Err(bad(
                "captions.holdoff_seconds",
                format!("must be >= 0 (got {h})"),
            ))
        }
    };
    let similarity = match c.similarity {
        None => DEFAULT_SIMILARITY,
        Some(x) if (0.0..=1.0).contains(&x) => x,
        Some(x) => {
            return Err(bad(
                "captions.similarity",
                format!("must be 0..=1 (got {x})"),
            ))
        }
    };
    let queue_windows = ranged_int("captions.queue_windows", c.queue_windows, 1, 64)?
        .map_or(DEFAULT_QUEUE_WINDOWS, |q| q as usize);
    Ok(CaptionSettings {
        window_seconds,
        hop_seconds,
        gate_dbfs,
        holdoff_seconds,
        similarity,
        queue_windows,
        min_confidence: min_confidence(
            "captions.min_confidence",
            c.min_confidence,
            Some(DEFAULT_MIN_CONFIDENCE),
        )?,
        only: word_list("captions.only", c.only)?,
        ignore: word_list("captions.ignore", c.ignore)?,
    })
}
