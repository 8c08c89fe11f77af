//! `manifest.json` of a model bundle (docs/bundle-format.md, version 1).
//!
//! Parsing is lenient about unknown keys (the spec says they are ignored) and strict about
//! everything the runtime relies on: [`Manifest::validate`] rejects an unknown format/version,
//! non-concrete shapes, and front-end parameters that cannot work.

pub use super::confidence::ConfidenceSpec;
pub use super::tags::TagsSpec;
use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

use super::cached::CachedSpec;
use super::frontend::spec::{FrontendSpec, LogKind};
use super::integrity::FileHashes;
use super::search::SearchSpec;

/// The only bundle format version this runtime understands.
pub const SUPPORTED_VERSION: u32 = 1;
/// Value of the `format` key.
pub const FORMAT_NAME: &str = "earshot-bundle";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    #[serde(default)]
    pub name: String,
    pub window_seconds: f64,
    pub hop_seconds: f64,
    pub frontend: FrontendSpec,
    pub encoder: EncoderSpec,
    pub decoder: DecoderSpec,
    pub tokens: SpecialTokens,
    #[serde(default = "default_vocab_file")]
    pub vocab: String,
    #[serde(default)]
    pub search: SearchSpec,
    /// Optional key/value-cached form of the decoder ([`super::cached`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decoder_cached: Option<CachedSpec>,
    /// Optional sha256 of each model file ([`super::integrity`]; bundles written before it
    /// have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<FileHashes>,
    /// Optional: per-caption confidence (issue 14).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<ConfidenceSpec>,
    /// Optional: clip-level tags from a second encoder output (issue 14).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<TagsSpec>,
    #[serde(default)]
    pub provenance: serde_json::Value,
    #[serde(default)]
    pub licences: Vec<String>,
}

fn default_vocab_file() -> String {
    "vocab.txt".to_string()
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EncoderSpec {
    pub file: String,
    pub input: String,
    pub input_shape: Vec<i64>,
    pub output: String,
    pub output_shape: Vec<i64>,
    #[serde(default)]
    pub memory_len: MemoryLen,
}

/// How much of the encoder output the decoder attends to.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum MemoryLen {
    /// All T frames.
    #[default]
    Full,
    /// The paper's released student: `floor((floor(samples/hop_length) + 1) / 32)` frames.
    Effb2,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DecoderSpec {
    pub file: String,
    pub input_tokens: String,
    pub input_memory: String,
    pub output: String,
    pub vocab_size: usize,
    pub max_len: usize,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct SpecialTokens {
    pub pad: i64,
    pub start: i64,
    pub end: i64,
    pub unk: i64,
}

impl Manifest {
    /// Reads and validates `path` (a `manifest.json`).
    pub fn load(path: &Path) -> Result<Manifest> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        Self::from_json(&text).with_context(|| format!("invalid manifest {}", path.display()))
    }

    /// Parses and validates manifest JSON text.
    pub fn from_json(text: &str) -> Result<Manifest> {
        // A UTF-8 byte-order mark (some Windows editors write one) is not JSON, but it is not
        // an error in the file either.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        // Check format/version first so that a future version with a different layout gets
        // the clear "unsupported version" message rather than a missing-field error.
        let raw: serde_json::Value = serde_json::from_str(text).context("not valid JSON")?;
        let format = raw.get("format").and_then(|v| v.as_str());
        ensure!(
            format == Some(FORMAT_NAME),
            "unknown bundle format {:?} (expected \"{FORMAT_NAME}\")",
            format.unwrap_or("<missing>")
        );
        if let Some(v) = raw.get("version").filter(|v| !v.is_number()) {
            bail!(
                "bundle version must be a number, like \"version\": {SUPPORTED_VERSION} (got {v})"
            );
        }
        let version = raw.get("version").and_then(|v| v.as_u64());
        ensure!(
            version == Some(u64::from(SUPPORTED_VERSION)),
            "unsupported bundle version {} (this earshot reads version {SUPPORTED_VERSION})",
            raw.get("version")
                .map(|v| v.to_string())
                .unwrap_or_else(|| "<missing>".into())
        );
        let m: Manifest = serde_json::from_value(raw).context("manifest fields")?;
        m.validate()?;
        Ok(m)
    }

    /// Checks everything the runtime relies on.
    pub fn validate(&self) -> Result<()> {
        let f = &self.frontend;
        ensure!(f.sample_rate > 0, "frontend.sample_rate must be > 0");
        ensure!(
            f.n_fft >= 2 && f.win_length >= 1 && f.win_length <= f.n_fft,
            "frontend: need 1 <= win_length <= n_fft and n_fft >= 2 (got win_length {}, n_fft {})",
            f.win_length,
            f.n_fft
        );
        ensure!(f.hop_length > 0, "frontend.hop_length must be > 0");
        ensure!(f.n_mels > 0, "frontend.n_mels must be > 0");
        ensure!(f.power > 0.0, "frontend.power must be > 0");
        ensure!(
            (0.0..1.0).contains(&f.preemphasis),
            "frontend.preemphasis must be in [0, 1)"
        );
        let nyquist = f64::from(f.sample_rate) / 2.0;
        let f_max = f.f_max.unwrap_or(nyquist);
        ensure!(
            f.f_min >= 0.0 && f.f_min < f_max && f_max <= nyquist + 1e-9,
            "frontend: need 0 <= f_min < f_max <= sample_rate/2 (got {} .. {})",
            f.f_min,
            f_max
        );
        ensure!(f.norm_div != 0.0, "frontend.norm_div must not be 0");
        if f.log == LogKind::Db {
            ensure!(f.amin > 0.0, "frontend.amin must be > 0 for log \"db\"");
        } else {
            ensure!(
                f.log_offset > 0.0,
                "frontend.log_offset must be > 0 for log \"ln\""
            );
        }
        ensure!(
            self.window_seconds > 0.0 && self.window_seconds.is_finite(),
            "window_seconds must be > 0"
        );
        ensure!(
            self.hop_seconds > 0.0 && self.hop_seconds.is_finite(),
            "hop_seconds must be > 0"
        );

        let e = &self.encoder;
        ensure!(
            e.input_shape.len() == 3,
            "encoder.input_shape must have 3 dims [1, n_mels, frames], got {:?}",
            e.input_shape
        );
        ensure!(
            e.input_shape.iter().all(|&d| d > 0),
            "encoder.input_shape must be concrete (all dims > 0), got {:?}",
            e.input_shape
        );
        ensure!(
            e.input_shape[0] == 1 && e.input_shape[1] == f.n_mels as i64,
            "encoder.input_shape {:?} does not match [1, n_mels={}, frames]",
            e.input_shape,
            f.n_mels
        );
        let frames = self.frames_for_seconds(self.window_seconds);
        ensure!(
            e.input_shape[2] == frames as i64,
            "encoder.input_shape {:?} has {} frames, but a {} s window at {} Hz with hop {} gives {}",
            e.input_shape,
            e.input_shape[2],
            self.window_seconds,
            f.sample_rate,
            f.hop_length,
            frames
        );
        ensure!(
            e.output_shape.len() == 3 && e.output_shape.iter().all(|&d| d > 0),
            "encoder.output_shape must be concrete [1, T, D], got {:?}",
            e.output_shape
        );
        let d = &self.decoder;
        ensure!(d.vocab_size > 0, "decoder.vocab_size must be > 0");
        ensure!(d.max_len > 0, "decoder.max_len must be > 0");
        for (name, id) in [
            ("pad", self.tokens.pad),
            ("start", self.tokens.start),
            ("end", self.tokens.end),
            ("unk", self.tokens.unk),
        ] {
            ensure!(
                id >= 0 && (id as usize) < d.vocab_size,
                "tokens.{name} = {id} is outside the vocabulary (size {})",
                d.vocab_size
            );
        }
        ensure!(self.search.beam >= 1, "search.beam must be >= 1");
        ensure!(self.search.max_len >= 1, "search.max_len must be >= 1");
        if self.search.max_len > d.max_len {
            bail!(
                "search.max_len {} exceeds decoder.max_len {}",
                self.search.max_len,
                d.max_len
            );
        }
        if let Some(c) = &self.decoder_cached {
            c.validate(self.search.max_len)?;
        }
        if let Some(files) = &self.files {
            super::integrity::validate_section(files)?;
        }
        if let Some(c) = &self.confidence {
            c.validate()?;
        }
        if let Some(t) = &self.tags {
            t.validate()?;
        }
        Ok(())
    }

    /// Number of samples in `seconds` at the model rate (rounded to the nearest sample).
    pub fn samples_for_seconds(&self, seconds: f64) -> usize {
        (seconds * f64::from(self.frontend.sample_rate)).round() as usize
    }

    /// Number of feature frames the front end produces for `seconds` of audio.
    pub fn frames_for_seconds(&self, seconds: f64) -> usize {
        self.frontend
            .frames_for_len(self.samples_for_seconds(seconds))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::frontend::spec::MelScale;
    use crate::model::search::BeamMode;

    /// The example manifest of docs/bundle-format.md (with a small vocab).
    pub(crate) fn example_json() -> serde_json::Value {
        serde_json::json!({
            "format": "earshot-bundle",
            "version": 1,
            "name": "test",
            "window_seconds": 10.0,
            "hop_seconds": 5.0,
            "frontend": {
                "sample_rate": 16000, "preemphasis": 0.0, "n_fft": 512, "win_length": 512,
                "hop_length": 160, "window": "hann_periodic", "center": true, "pad_mode": "reflect",
                "power": 2.0, "n_mels": 64, "f_min": 0.0, "f_max": 8000.0, "mel_scale": "htk",
                "mel_norm": "none", "log": "db", "log_offset": 1e-5, "amin": 1e-10, "db_ref": 1.0,
                "top_db": 120.0, "norm_add": 0.0, "norm_div": 1.0
            },
            "encoder": {"file": "encoder.onnx", "input": "mel", "input_shape": [1, 64, 1001],
                        "output": "memory", "output_shape": [1, 32, 256], "memory_len": "full"},
            "decoder": {"file": "decoder.onnx", "input_tokens": "tokens", "input_memory": "memory",
                        "output": "logits", "vocab_size": 1234, "max_len": 20},
            "tokens": {"pad": 0, "start": 1, "end": 2, "unk": 3},
            "vocab": "vocab.txt",
            "search": {"beam": 3, "max_len": 20, "length_norm": 1.0},
            "provenance": {"x": 1},
            "licences": ["a"],
            "some_future_key": [1, 2, 3]
        })
    }

    #[test]
    fn parses_the_documented_example() {
        let m = Manifest::from_json(&example_json().to_string()).unwrap();
        assert_eq!(m.frontend.mel_scale, MelScale::Htk);
        assert_eq!(m.frontend.log, LogKind::Db);
        assert_eq!(m.frontend.top_db, Some(120.0));
        assert_eq!(m.encoder.memory_len, MemoryLen::Full);
        assert_eq!(m.frames_for_seconds(10.0), 1001);
    }

    #[test]
    fn rejects_unknown_version_and_format() {
        let mut j = example_json();
        j["version"] = 2.into();
        let err = format!("{:#}", Manifest::from_json(&j.to_string()).unwrap_err());
        assert!(err.contains("unsupported bundle version 2"), "{err}");
        let mut j = example_json();
        j["format"] = "something-else".into();
        let err = format!("{:#}", Manifest::from_json(&j.to_string()).unwrap_err());
        assert!(err.contains("unknown bundle format"), "{err}");
    }

    #[test]
    fn rejects_inconsistent_shapes() {
        let mut j = example_json();
        j["encoder"]["input_shape"] = serde_json::json!([1, 64, 1000]);
        let err = format!("{:#}", Manifest::from_json(&j.to_string()).unwrap_err());
        assert!(err.contains("1001"), "{err}");
        let mut j = example_json();
        j["encoder"]["input_shape"] = serde_json::json!([1, -1, 1001]);
        assert!(Manifest::from_json(&j.to_string()).is_err());
        let mut j = example_json();
        j["tokens"]["end"] = 5000.into();
        assert!(Manifest::from_json(&j.to_string()).is_err());
    }

    #[test]
    fn effb2_and_kaldi_variants_parse() {
        let mut j = example_json();
        j["encoder"]["memory_len"] = "effb2".into();
        j["frontend"]["mel_scale"] = "kaldi".into();
        j["frontend"]["log"] = "ln".into();
        j["frontend"]["top_db"] = serde_json::Value::Null;
        let m = Manifest::from_json(&j.to_string()).unwrap();
        assert_eq!(m.encoder.memory_len, MemoryLen::Effb2);
        assert_eq!(m.frontend.top_db, None);
    }

    #[test]
    fn beam_mode_defaults_to_shrinking_and_parses_constant() {
        let mut j = example_json();
        j["search"].as_object_mut().unwrap().remove("beam_mode");
        let m = Manifest::from_json(&j.to_string()).unwrap();
        assert_eq!(m.search.beam_mode, BeamMode::Shrinking);
        j["search"]["beam_mode"] = "constant".into();
        let m = Manifest::from_json(&j.to_string()).unwrap();
        assert_eq!(m.search.beam_mode, BeamMode::Constant);
        j["search"]["beam_mode"] = "wide".into();
        assert!(Manifest::from_json(&j.to_string()).is_err());
    }

    #[test]
    fn v2_sections_parse_and_default_to_off() {
        let m = Manifest::from_json(&example_json().to_string()).unwrap();
        assert_eq!(m.search.no_repeat_ngram, 0);
        assert!(m.search.once_words.is_empty());
        assert!(m.confidence.is_none() && m.tags.is_none());
        let mut j = example_json();
        j["search"]["no_repeat_ngram"] = 3.into();
        j["search"]["once_words"] = serde_json::json!(["dog", "car"]);
        j["confidence"] = serde_json::json!({"method": "platt", "a": 3.1, "b": 2.4,
            "fit": {"split": "val", "n": 640, "ece": 0.031}});
        j["tags"] = serde_json::json!({"output": "tags", "labels": "tags.txt",
            "activation": "sigmoid", "top_k": 5, "min_score": 0.2});
        let m = Manifest::from_json(&j.to_string()).unwrap();
        assert_eq!(m.search.no_repeat_ngram, 3);
        assert_eq!(m.search.once_words, ["dog", "car"]);
        assert_eq!(m.confidence.as_ref().unwrap().a, 3.1);
        assert_eq!(m.tags.as_ref().unwrap().top_k, 5);
        let mut bad = j.clone();
        bad["confidence"]["method"] = "isotonic".into();
        let e = format!("{:#}", Manifest::from_json(&bad.to_string()).unwrap_err());
        assert!(e.contains("isotonic"), "{e}");
        let mut bad = j.clone();
        bad["tags"].as_object_mut().unwrap().remove("labels");
        assert!(Manifest::from_json(&bad.to_string()).is_err());
        let mut bad = j;
        bad["search"]["no_repeat_ngram"] = (-1).into();
        assert!(Manifest::from_json(&bad.to_string()).is_err());
    }

    #[test]
    fn frame_counts() {
        let m = Manifest::from_json(&example_json().to_string()).unwrap();
        let mut f = m.frontend.clone();
        assert_eq!(f.frames_for_len(160000), 1001);
        f.preemphasis = 0.97;
        f.hop_length = 320;
        assert_eq!(f.frames_for_len(320000), 1000);
        f.center = false;
        f.preemphasis = 0.0;
        f.n_fft = 1024;
        assert_eq!(f.frames_for_len(1024), 1);
        assert_eq!(f.frames_for_len(1000), 0);
    }
}
