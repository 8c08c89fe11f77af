//! Where `earshot listen` sends its events: several sinks at once behind one [`EventSink`] trait.
//!
//! Events are captions, periodic health reports and a final summary. Plain-text sinks write one
//! line per caption; JSON-lines sinks write every event as one JSON object per line (see
//! [`Event::to_json`]).

pub mod mqtt;
pub mod serial;

use anyhow::{Context, Result};
use serde_json::{json, Value};
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::LineFormat;
use crate::output::{jsonl, text, FormatOptions};
use crate::pipeline::CaptionEvent;

/// One caption of one window, with the live-run facts around it.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveCaption {
    /// Source name, window start/end (seconds of stream time since the source started; dropped
    /// audio included, so it tracks the wall clock of a live source) and the caption — the same
    /// event `earshot caption` prints, formatted by [`crate::output`].
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
    pub errors: u64,
    pub cpu_temp_c: Option<f64>,
    /// `vcgencmd get_throttled` value, e.g. "0x0".
    pub throttled: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Caption(LiveCaption),
    Health(HealthEvent),
    /// Totals at the end of the run (same fields as health).
    Summary(HealthEvent),
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

impl Event {
    /// The JSON-lines object of this event.
    pub fn to_json(&self) -> Value {
        match self {
            Event::Caption(c) => {
                // The fields of `earshot caption --format jsonl` (source, start, end, caption)
                // come from the shared formatter; the live facts are added to them.
                let base = jsonl::format_line(&c.event, &FormatOptions::default())
                    .ok()
                    .and_then(|l| serde_json::from_str::<Value>(&l).ok());
                let mut obj = match base {
                    Some(Value::Object(m)) => m,
                    _ => serde_json::Map::new(),
                };
                let extra = json!({
                    "event": "caption",
                    "timestamp": iso8601(c.timestamp),
                    "window_index": c.window_index,
                    "latency_ms": round3(c.latency_ms),
                    "inference_ms": round3(c.inference_ms),
                    "rtf": round3(c.rtf),
                    "level_dbfs": (c.level_dbfs * 10.0).round() / 10.0,
                    "dropped_samples": c.dropped_samples,
                    "dropped_windows": c.dropped_windows,
                });
                if let Value::Object(m) = extra {
                    obj.extend(m);
                }
                Value::Object(obj)
            }
            Event::Health(h) => health_json("health", h),
            Event::Summary(h) => health_json("summary", h),
        }
    }

    /// The plain-text line of this event.
    pub fn to_text(&self) -> String {
        match self {
            Event::Caption(c) => text::format_line(&c.event, &FormatOptions::default()),
            Event::Health(h) => format!("health: {}", health_text(h)),
            Event::Summary(h) => format!("summary: {}", health_text(h)),
        }
    }
}

fn health_json(kind: &str, h: &HealthEvent) -> Value {
    json!({
        "event": kind,
        "timestamp": iso8601(h.timestamp.unwrap_or_else(SystemTime::now)),
        "uptime_s": round3(h.uptime_s),
        "audio_s": round3(h.audio_s),
        "rtf": h.rtf.map(round3),
        "rss_bytes": h.rss_bytes,
        "dropped_samples": h.dropped_samples,
        "dropped_windows": h.dropped_windows,
        "windows": h.windows,
        "captions": h.captions,
        "gated": h.gated,
        "suppressed": h.suppressed,
        "errors": h.errors,
        "cpu_temp_c": h.cpu_temp_c.map(|t| (t * 10.0).round() / 10.0),
        "throttled": h.throttled,
    })
}

fn health_text(h: &HealthEvent) -> String {
    let mut s = format!(
        "uptime {:.0}s audio {:.1}s rtf {} rss {} windows {} captions {} gated {} suppressed {} dropped {} windows / {} samples errors {}",
        h.uptime_s,
        h.audio_s,
        h.rtf.map_or("-".to_string(), |r| format!("{r:.3}")),
        h.rss_bytes
            .map_or("-".to_string(), |b| format!("{:.1}MB", b as f64 / 1048576.0)),
        h.windows,
        h.captions,
        h.gated,
        h.suppressed,
        h.dropped_windows,
        h.dropped_samples,
        h.errors,
    );
    if let Some(t) = h.cpu_temp_c {
        s.push_str(&format!(" temp {t:.1}C"));
    }
    if let Some(t) = &h.throttled {
        s.push_str(&format!(" throttled {t}"));
    }
    s
}

/// ISO-8601 UTC timestamp with milliseconds, e.g. `2026-11-27T04:05:06.123Z`.
pub fn iso8601(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let ms = d.subsec_millis();
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, day) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

/// Gregorian (year, month, day) of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    // Shift the epoch to 0000-03-01 so leap days fall at the end of a 400-year era.
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of era, 0..=146096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // 0..=399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // 0..=365
    let mp = (5 * doy + 2) / 153; // March = 0
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// A destination for events.
pub trait EventSink: Send {
    /// Short name for log messages.
    fn name(&self) -> String;
    fn emit(&mut self, event: &Event) -> Result<()>;
    /// Pushes everything out (called at shutdown and after each event by line sinks).
    fn flush(&mut self) -> Result<()>;
}

/// Text or JSON lines to any writer (stdout, a file, a serial port).
pub struct LineSink<W: Write + Send> {
    name: String,
    out: W,
    format: LineFormat,
}

impl<W: Write + Send> LineSink<W> {
    pub fn new(name: impl Into<String>, out: W, format: LineFormat) -> LineSink<W> {
        LineSink {
            name: name.into(),
            out,
            format,
        }
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

/// The line a [`LineSink`] of `format` writes for `event`, if any (text sinks carry captions
/// only; health goes to the log).
pub fn format_line(event: &Event, format: LineFormat) -> Option<String> {
    match (format, event) {
        (LineFormat::Jsonl, e) => Some(e.to_json().to_string()),
        (LineFormat::Text, Event::Caption(_)) => Some(event.to_text()),
        (LineFormat::Text, _) => None,
    }
}

impl<W: Write + Send> EventSink for LineSink<W> {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn emit(&mut self, event: &Event) -> Result<()> {
        if let Some(line) = format_line(event, self.format) {
            writeln!(self.out, "{line}").with_context(|| format!("writing to {}", self.name))?;
            self.out.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.out
            .flush()
            .with_context(|| format!("flushing {}", self.name))
    }
}

/// Opens a file for appending lines.
pub fn file_sink(path: &std::path::Path, format: LineFormat) -> Result<Box<dyn EventSink>> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open output file {}", path.display()))?;
    Ok(Box::new(LineSink::new(
        path.display().to_string(),
        std::io::LineWriter::new(f),
        format,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn iso8601_known_dates() {
        assert_eq!(iso8601(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(951_782_400_000 + 1); // leap day 2000
        assert_eq!(iso8601(t), "2000-02-29T00:00:00.001Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_795_752_306); // 2026-11-27T04:05:06Z
        assert_eq!(iso8601(t), "2026-11-27T04:05:06.000Z");
        let t = UNIX_EPOCH + Duration::from_secs(4_107_542_399); // 2100-02-28T23:59:59Z
        assert_eq!(iso8601(t), "2100-02-28T23:59:59.000Z");
    }

    #[test]
    fn line_sink_formats() {
        let ev = Event::Caption(LiveCaption {
            event: CaptionEvent {
                source: "mic".into(),
                start: 5.0,
                end: 15.0,
                caption: crate::Caption {
                    text: "a dog barks".into(),
                    token_ids: vec![4, 2],
                    timings: Default::default(),
                    ..Default::default()
                },
            },
            timestamp: UNIX_EPOCH,
            window_index: 3,
            latency_ms: 12.5,
            inference_ms: 10.0,
            rtf: 0.002,
            dropped_samples: 7,
            dropped_windows: 1,
            level_dbfs: -20.04,
        });
        let mut s = LineSink::new("mem", Vec::new(), LineFormat::Jsonl);
        s.emit(&ev).unwrap();
        s.emit(&Event::Health(HealthEvent::default())).unwrap();
        let text = String::from_utf8(s.into_inner()).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["caption"], "a dog barks");
        assert_eq!(lines[0]["end"], 15.0);
        assert_eq!(lines[0]["start"], 5.0);
        assert_eq!(lines[0]["file"], "mic");
        assert_eq!(lines[0]["rtf"], 0.002);
        assert_eq!(lines[0]["dropped_samples"], 7);
        assert_eq!(lines[0]["timestamp"], "1970-01-01T00:00:00.000Z");
        assert_eq!(lines[1]["event"], "health");
        let mut t = LineSink::new("mem", Vec::new(), LineFormat::Text);
        t.emit(&ev).unwrap();
        t.emit(&Event::Health(HealthEvent::default())).unwrap();
        let text = String::from_utf8(t.into_inner()).unwrap();
        assert_eq!(text.lines().count(), 1);
        assert_eq!(text, "[00:05.0–00:15.0] a dog barks\n");
    }
}
