//! The validated settings of `earshot listen` (what [`super::validate`] produces from the file
//! shape [`super::file::RawConfig`]). The settings of one stage are that stage's own types
//! (PCM formats from [`crate::audio::pcm`], line formats and sink settings from
//! [`crate::sink`]); this module gathers them.

use crate::audio::pcm::PcmFormat;
use crate::clips::ClipSettings;
use crate::live::filter::SpeechPrivacy;
use crate::sink::format::LineFormat;
use crate::sink::http::HttpSettings;
use crate::sink::mqtt::MqttSettings;
use crate::sink::serial::SerialSettings;
use crate::sink::webhook::WebhookSettings;
use std::path::PathBuf;

/// Where audio comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceSettings {
    /// A capture device: `device` is a case-insensitive substring of its name; `None` = default.
    /// `required` (`source.device_required`): a device missing at start ends `listen`;
    /// otherwise it is warned about and retried.
    Mic {
        device: Option<String>,
        required: bool,
    },
    /// PCM on standard input: a WAV stream (`arecord` without `-t raw`), whose header gives the
    /// format, or raw samples described by `format`, `rate` (required then) and `channels`.
    Stdin {
        format: PcmFormat,
        rate: Option<u32>,
        channels: u16,
    },
    /// An audio file, played at `speed` × real time (`None` = as fast as possible, lossless).
    File { path: PathBuf, speed: Option<f64> },
}

#[derive(Debug, Clone, PartialEq)]
pub struct CaptionSettings {
    /// `None`: the model's `window_seconds`.
    pub window_seconds: Option<f64>,
    /// `None`: the model's `hop_seconds`.
    pub hop_seconds: Option<f64>,
    /// Windows whose RMS level is below this (dBFS) are not captioned. `None`: gate off.
    pub gate_dbfs: Option<f64>,
    pub holdoff_seconds: f64,
    pub similarity: f64,
    pub queue_windows: usize,
    /// Captions with a lower confidence are not emitted (`uncertain`). `None`: no threshold.
    /// Captions of bundles without a confidence always pass.
    pub min_confidence: Option<f64>,
    /// When not empty, only captions matching one of these words are emitted.
    pub only: Vec<String>,
    /// Captions matching one of these words are not emitted.
    pub ignore: Vec<String>,
}

/// `[privacy]`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PrivacySettings {
    pub speech: SpeechPrivacy,
    /// Store clips of speech windows (only with `speech = "keep"`; default false).
    pub speech_clips: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OutputSettings {
    /// What goes to standard output (`None`: nothing).
    pub stdout: Option<LineFormat>,
    pub jsonl_file: Option<PathBuf>,
    pub text_file: Option<PathBuf>,
    /// Health report period; `None`: off.
    pub health_seconds: Option<f64>,
}

/// Validated settings of `earshot listen`.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Board profile applied (its defaults are already in the other fields).
    pub board: Option<String>,
    /// `None`: the default model location.
    pub bundle: Option<PathBuf>,
    /// Beam width (`None`: the model's `search.beam`; 1 = greedy).
    pub beam: Option<usize>,
    pub source: SourceSettings,
    pub ring_seconds: f64,
    pub watchdog_seconds: f64,
    pub captions: CaptionSettings,
    pub privacy: PrivacySettings,
    /// `[clips]`: `None` when `clips.dir` is not set.
    pub clips: Option<ClipSettings>,
    pub output: OutputSettings,
    pub serial: Option<SerialSettings>,
    pub mqtt: Option<MqttSettings>,
    /// Where `mqtt.password` came from (`mqtt.password_file /etc/earshot/mqtt.pw`,
    /// `$EARSHOT_MQTT_PASSWORD`, ...); the password itself prints as `<redacted>`.
    pub mqtt_password_from: Option<String>,
    /// `listen --http`: the live page, JSON API, SSE and metrics.
    pub http: Option<HttpSettings>,
    /// Where `http.token` came from (the token prints as `<redacted>`).
    pub http_token_from: Option<String>,
    pub webhook: Option<WebhookSettings>,
}
