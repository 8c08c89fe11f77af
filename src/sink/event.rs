//! The one event family and the one sink trait, for `earshot caption` and `earshot listen`.
//!
//! A captioned window is a [`CaptionEvent`] (source, start, end, caption). `caption` sends it as
//! [`Event::FileCaption`]; `listen` wraps it in a [`LiveCaption`] with the live-run facts and adds
//! periodic [`Event::Health`] reports and a final [`Event::Summary`]. Every output — stdout and
//! file lines, a serial port, MQTT — is an [`EventSink`]; the line shapes, and
//! `Event::to_json` / `Event::to_text`, are in [`super::format`] (this module imports nothing from
//! the sinks).

use anyhow::Result;
use std::time::SystemTime;

use crate::model::Caption;

/// A caption with its place in the stream.
#[derive(Debug, Clone, PartialEq)]
pub struct CaptionEvent {
    /// File path or source name.
    pub source: String,
    /// Window start, seconds from the start of the stream.
    pub start: f64,
    /// End of the real audio in the window, seconds.
    pub end: f64,
    pub caption: Caption,
}

/// One caption of one window, with the live-run facts around it.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveCaption {
    /// Source name, window start/end (seconds of stream time since the source started; dropped
    /// audio included, so it tracks the wall clock of a live source) and the caption — the same
    /// event `earshot caption` prints, formatted by [`super::format`].
    pub event: CaptionEvent,
    /// Wall-clock time when the caption was produced.
    pub timestamp: SystemTime,
    /// Running number of the window (gaps: gated or dropped windows).
    pub window_index: u64,
    /// From the moment the window's last sample arrived to the caption being ready.
    pub latency_ms: f64,
    /// Time spent in the model for this window.
    pub inference_ms: f64,
    /// Real-time factor: inference time / hop (the new audio each window brings). Above 1 the
    /// model cannot keep up and whole windows get dropped.
    pub rtf: f64,
    /// Source audio frames (samples per channel) lost to capture overruns so far.
    pub dropped_samples: u64,
    /// Whole windows dropped so far because the model fell behind.
    pub dropped_windows: u64,
    /// RMS level of the window in dBFS.
    pub level_dbfs: f64,
    /// Where the clip of this caption is being written (`[clips]`); `None`: no clip.
    pub clip: Option<String>,
}

/// A window of a file that `earshot caption --gate-dbfs` did not caption: too quiet.
#[derive(Debug, Clone, PartialEq)]
pub struct GatedWindow {
    /// File path or source name.
    pub source: String,
    pub start: f64,
    pub end: f64,
    /// RMS level of the window in dBFS.
    pub level_dbfs: f64,
}

/// Periodic health report (also used for the final summary).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HealthEvent {
    pub timestamp: Option<SystemTime>,
    pub uptime_s: f64,
    /// Stream seconds of audio received so far.
    pub audio_s: f64,
    /// Mean real-time factor over the report period (None: nothing was captioned).
    pub rtf: Option<f64>,
    pub rss_bytes: Option<u64>,
    pub dropped_samples: u64,
    pub dropped_windows: u64,
    pub windows: u64,
    pub captions: u64,
    pub gated: u64,
    pub suppressed: u64,
    /// Captions below `captions.min_confidence` (not emitted).
    pub uncertain: u64,
    /// Captions left out by `captions.only` / `captions.ignore`.
    pub filtered: u64,
    /// Speech windows dropped by `privacy.speech = "drop"`.
    pub privacy_dropped: u64,
    /// Clips written, deleted by retention, and failed (`[clips]`).
    pub clips_written: u64,
    pub clips_pruned: u64,
    pub clips_failed: u64,
    pub errors: u64,
    /// Messages dropped by an output's own queue (MQTT while the broker is away).
    pub dropped_messages: u64,
    pub cpu_temp_c: Option<f64>,
    /// `vcgencmd get_throttled` value, e.g. "0x0".
    pub throttled: Option<String>,
}

/// Everything a sink receives, from `earshot caption` and `earshot listen` alike.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A window of a file captioned by `earshot caption`: only its place in the file.
    FileCaption(CaptionEvent),
    /// A window of a file below `earshot caption --gate-dbfs`: printed as `(silence)`.
    FileGated(GatedWindow),
    /// A caption of `earshot listen`, with the live-run facts.
    Caption(LiveCaption),
    Health(HealthEvent),
    /// Totals at the end of the run (same fields as health).
    Summary(HealthEvent),
}

/// A destination for events: the one output trait of earshot.
pub trait EventSink: Send {
    /// Short name for log messages.
    fn name(&self) -> String;
    fn emit(&mut self, event: &Event) -> Result<()>;
    /// Pushes everything out (called at shutdown and after each event by line sinks).
    fn flush(&mut self) -> Result<()>;
    /// Messages this sink dropped on its own (the MQTT outbox when full); reported as
    /// `dropped_messages` in health reports and the summary.
    fn dropped(&self) -> u64 {
        0
    }
    /// Deliveries that failed in the sink's own background thread so far (a webhook POST
    /// answered 500); added to `errors` in health reports and the summary.
    fn failures(&self) -> u64 {
        0
    }
    /// True for a sink that reopens its device by itself (a serial port whose reader went away
    /// comes back when the adapter is plugged in again): a broken pipe is then an outage to ride
    /// out, never a reason to stop writing to it.
    fn reopens(&self) -> bool {
        false
    }
}
