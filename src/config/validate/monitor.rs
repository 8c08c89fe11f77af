//! `[privacy]` and `[clips]`: what may leave the device about a window of speech, and where the
//! audio behind a caption is kept and for how long.

use super::rules::{bad, ranged_int};
use super::rules::{DEFAULT_CLIP_MAX_AGE_DAYS, DEFAULT_CLIP_MAX_FILES, DEFAULT_CLIP_MAX_MEGABYTES};
use super::rules::{DEFAULT_CLIP_POST_SECONDS, DEFAULT_CLIP_PRE_SECONDS, MAX_CLIP_PAD_SECONDS};
use crate::clips::{ClipFormat, ClipSettings, Retention};
use crate::config::file::{RawClips, RawPrivacy};
use crate::config::settings::PrivacySettings;
use crate::live::filter::SpeechPrivacy;
use anyhow::Result;

/// `[privacy]`.
pub(super) fn privacy(p: RawPrivacy) -> Result<PrivacySettings> {
    let speech = match p.speech.as_deref() {
        None => SpeechPrivacy::Keep,
        Some(s) => SpeechPrivacy::parse(s).ok_or_else(|| {
            bad(
                "privacy.speech",
                format!("must be \"keep\", \"mask\" or \"drop\" (got {s:?})"),
            )
        })?,
    };
    let speech_clips = p.speech_clips.unwrap_or(false);
    if speech_clips && speech != SpeechPrivacy::Keep {
        return Err(bad(
            "privacy.speech_clips",
            format!(
                "clips of speech are never stored with privacy.speech = \"{}\"",
                speech.name()
            ),
        ));
    }
    Ok(PrivacySettings {
        speech,
        speech_clips,
    })
}

/// `clips.pre_seconds` / `clips.post_seconds`: 0..=[`MAX_CLIP_PAD_SECONDS`].
fn pad(key: &str, v: Option<f64>, default: f64) -> Result<f64> {
    match v {
        None => Ok(default),
        Some(x) if (0.0..=MAX_CLIP_PAD_SECONDS).contains(&x) => Ok(x),
        Some(x) => Err(bad(
            key,
            format!("must be 0..={MAX_CLIP_PAD_SECONDS} seconds (got {x})"),
        )),
    }
}

/// A retention limit: > 0, or 0 for no limit (`None`).
fn limit(key: &str, v: Option<f64>, default: f64) -> Result<Option<f64>> {
    match v.unwrap_or(default) {
        0.0 => Ok(None),
        x if x.is_finite() && x > 0.0 => Ok(Some(x)),
        x => Err(bad(
            key,
            format!("must be > 0, or 0 for no limit (got {x})"),
        )),
    }
}

/// `[clips]` (`None`: `clips.dir` not set, no clips).
pub(super) fn clips(c: RawClips) -> Result<Option<ClipSettings>> {
    let Some(dir) = c.dir else {
        let others = c.format.is_some()
            || c.pre_seconds.is_some()
            || c.post_seconds.is_some()
            || c.max_files.is_some()
            || c.max_megabytes.is_some()
            || c.max_age_days.is_some();
        if others {
            return Err(bad(
                "clips.dir",
                "is required when other [clips] keys are set",
            ));
        }
        return Ok(None);
    };
    if dir.as_os_str().is_empty() {
        return Err(bad("clips.dir", "must not be empty"));
    }
    let format = match c.format.as_deref() {
        None => ClipFormat::Flac,
        Some(f) => ClipFormat::parse(f).ok_or_else(|| {
            bad(
                "clips.format",
                format!("must be \"flac\" or \"wav\" (got {f:?})"),
            )
        })?,
    };
    let max_files = ranged_int("clips.max_files", c.max_files, 0, 10_000_000)?
        .map_or(DEFAULT_CLIP_MAX_FILES, |n| n as u64);
    Ok(Some(ClipSettings {
        dir,
        format,
        pre_seconds: pad("clips.pre_seconds", c.pre_seconds, DEFAULT_CLIP_PRE_SECONDS)?,
        post_seconds: pad(
            "clips.post_seconds",
            c.post_seconds,
            DEFAULT_CLIP_POST_SECONDS,
        )?,
        retention: Retention {
            max_files: (max_files > 0).then_some(max_files),
            max_megabytes: limit(
                "clips.max_megabytes",
                c.max_megabytes,
                DEFAULT_CLIP_MAX_MEGABYTES,
            )?,
            max_age_days: limit(
                "clips.max_age_days",
                c.max_age_days,
                DEFAULT_CLIP_MAX_AGE_DAYS,
            )?,
        },
    }))
}
