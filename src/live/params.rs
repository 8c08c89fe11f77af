//! The parameters of one live run (what `earshot listen` derives from its settings and the
//! model; tests build them directly).

use super::filter::CaptionRules;
use crate::clips::ClipSettings;
use std::time::Duration;

/// Parameters of one live run.
#[derive(Debug, Clone)]
pub struct LiveParams {
    pub model_rate: u32,
    /// Window and hop in model samples (window ≤ the captioner's input length).
    pub window_samples: usize,
    pub hop_samples: usize,
    pub gate_dbfs: Option<f64>,
    pub holdoff_seconds: f64,
    pub similarity: f64,
    pub queue_windows: usize,
    pub ring_seconds: f64,
    pub health_every: Option<Duration>,
    /// Threshold, only/ignore lists and speech privacy ([`CaptionRules::none`]: none).
    pub rules: CaptionRules,
    /// Save the clip behind each caption (`None`: off).
    pub clips: Option<ClipSettings>,
}
