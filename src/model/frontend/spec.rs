//! The front-end half of the bundle contract: the log-mel parameters of `manifest.json`'s
//! `frontend` section (field meanings: docs/bundle-format.md, "Front end"). Parsed with the
//! manifest, validated by [`crate::model::manifest::Manifest::validate`], computed by
//! [`super::LogMel`].

use serde::{Deserialize, Serialize};

/// Log-mel front end parameters. Field meanings: docs/bundle-format.md, "Front end".
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FrontendSpec {
    pub sample_rate: u32,
    #[serde(default)]
    pub preemphasis: f64,
    pub n_fft: usize,
    pub win_length: usize,
    pub hop_length: usize,
    pub window: WindowKind,
    pub center: bool,
    #[serde(default)]
    pub pad_mode: PadMode,
    #[serde(default = "default_power")]
    pub power: f64,
    pub n_mels: usize,
    #[serde(default)]
    pub f_min: f64,
    /// `None` means Nyquist.
    #[serde(default)]
    pub f_max: Option<f64>,
    pub mel_scale: MelScale,
    #[serde(default)]
    pub mel_norm: MelNorm,
    pub log: LogKind,
    #[serde(default = "default_log_offset")]
    pub log_offset: f64,
    #[serde(default = "default_amin")]
    pub amin: f64,
    #[serde(default = "default_db_ref")]
    pub db_ref: f64,
    #[serde(default)]
    pub top_db: Option<f64>,
    #[serde(default)]
    pub norm_add: f64,
    #[serde(default = "default_norm_div")]
    pub norm_div: f64,
}

fn default_power() -> f64 {
    2.0
}
fn default_log_offset() -> f64 {
    1e-5
}
fn default_amin() -> f64 {
    1e-10
}
fn default_db_ref() -> f64 {
    1.0
}
fn default_norm_div() -> f64 {
    1.0
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum WindowKind {
    HannPeriodic,
    HannSymmetric,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum PadMode {
    #[default]
    Reflect,
    Constant,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum MelScale {
    Htk,
    Slaney,
    Kaldi,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum MelNorm {
    #[default]
    None,
    Slaney,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LogKind {
    Ln,
    Db,
}

impl FrontendSpec {
    /// Number of feature frames for `len` input samples (before pre-emphasis).
    pub fn frames_for_len(&self, len: usize) -> usize {
        let len = if self.preemphasis > 0.0 {
            len.saturating_sub(1)
        } else {
            len
        };
        if self.center {
            1 + len / self.hop_length
        } else if len >= self.n_fft {
            1 + (len - self.n_fft) / self.hop_length
        } else {
            0
        }
    }

    /// Upper mel band edge in Hz (`f_max`, or Nyquist when absent).
    pub fn f_max_hz(&self) -> f64 {
        self.f_max.unwrap_or(f64::from(self.sample_rate) / 2.0)
    }
}
