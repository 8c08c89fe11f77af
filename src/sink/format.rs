//! Every line shape earshot prints, each made by one function, for `earshot caption` and
//! `earshot listen` alike:
//!
//! - a caption as text: `[00:00.0–00:10.0] a woman speaks`; with several sources the line starts
//!   with `SOURCE: `, with `print_ids` the generated token ids follow in brackets:
//!   `[00:00.0–00:10.0] a woman speaks  [ids 4 17 9 2]` ([`caption_text`]);
//!   with `show_confidence` the caption's confidence follows it: `a woman speaks (0.82)`;
//! - a caption as JSON:
//!   `{"file":"a.wav","start":0.0,"end":10.0,"caption":"a woman speaks","confidence":0.823}`
//!   (`confidence` always, `null` when the bundle has none), `"tags":[{"tag":"Speech",
//!   "score":0.912},...]` when the bundle has tags, and `"token_ids":[...]` with `print_ids`
//!   ([`caption_json`]; times, confidence and scores with 3 decimals); `listen` adds its live
//!   facts to the same fields ([`event_json`]);
//!   with a saved clip (`[clips]`) `listen` adds `"clip":"/var/lib/earshot/clips/….flac"`;
//! - a window `earshot caption --gate-dbfs` skipped: `[00:00.0–00:10.0] (silence)` in text,
//!   `{"file":…,"start":…,"end":…,"caption":null,"confidence":null,"gated":true,"level_dbfs":-71.2}`
//!   in JSON ([`gated_text`], [`gated_json`]);
//! - health and summary reports as text and JSON ([`event_text`], [`event_json`]);
//! - times `mm:ss.s` / `h:mm:ss.s` ([`format_time`]) and ISO-8601 timestamps ([`iso8601`]).

use serde::Serialize;
use serde_json::{json, Value};
use std::time::{SystemTime, UNIX_EPOCH};

use super::event::{CaptionEvent, Event, GatedWindow, HealthEvent};

/// Line format of a text-stream sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineFormat {
    Text,
    Jsonl,
}

/// What the caption lines include.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FormatOptions {
    /// Include the generated token ids.
    pub print_ids: bool,
    /// Prefix text lines with the source (when several files are captioned).
    pub show_source: bool,
    /// Text lines: the caption's confidence after it, `(0.82)` (bundles with `confidence`).
    pub show_confidence: bool,
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// `mm:ss.s`, or `h:mm:ss.s` from one hour on.
pub fn format_time(seconds: f64) -> String {
    let tenths = (seconds.max(0.0) * 10.0).round() as u64;
    let (h, rem) = (tenths / 36000, tenths % 36000);
    let (m, rem) = (rem / 600, rem % 600);
    let (s, t) = (rem / 10, rem % 10);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}.{t}")
    } else {
        format!("{m:02}:{s:02}.{t}")
    }
}

/// The text line of one caption (no newline).
pub fn caption_text(event: &CaptionEvent, opts: &FormatOptions) -> String {
    let mut line = window_prefix(&event.source, event.start, event.end, opts);
    if event.caption.text.is_empty() {
        line.push_str("(empty caption)");
    } else {
        line.push_str(&event.caption.text);
    }
    if let (true, Some(c)) = (opts.show_confidence, event.caption.confidence) {
        line.push_str(&format!(" ({c:.2})"));
    }
    if opts.print_ids {
        let ids: Vec<String> = event
            .caption
            .token_ids
            .iter()
            .map(|i| i.to_string())
            .collect();
        line.push_str(&format!("  [ids {}]", ids.join(" ")));
    }
    line
}

/// The text line of a window skipped by the silence gate (no newline).
pub fn gated_text(g: &GatedWindow, opts: &FormatOptions) -> String {
    window_prefix(&g.source, g.start, g.end, opts) + "(silence)"
}

/// `source: [start–end] ` (the source only with `show_source`): how every text line begins.
fn window_prefix(source: &str, start: f64, end: f64, opts: &FormatOptions) -> String {
    let times = format!("[{}–{}] ", format_time(start), format_time(end));
    if opts.show_source {
        format!("{source}: {times}")
    } else {
        times
    }
}

/// The JSON fields of a window skipped by the silence gate, in this order.
#[derive(Debug, Serialize)]
pub struct GatedJson<'a> {
    file: &'a str,
    start: f64,
    end: f64,
    /// Always `null`: no caption was made.
    caption: Option<&'a str>,
    confidence: Option<f64>,
    gated: bool,
    level_dbfs: Option<f64>,
}

/// The JSON object of a gated window (`level_dbfs` is `null` for digital silence).
pub fn gated_json(g: &GatedWindow) -> GatedJson<'_> {
    GatedJson {
        file: &g.source,
        start: round3(g.start),
        end: round3(g.end),
        caption: None,
        confidence: None,
        gated: true,
        level_dbfs: g
            .level_dbfs
            .is_finite()
            .then(|| (g.level_dbfs * 10.0).round() / 10.0),
    }
}

/// The JSON fields of one caption, in this order (serialised directly by `earshot caption`).
#[derive(Debug, Serialize)]
pub struct CaptionJson<'a> {
    file: &'a str,
    start: f64,
    end: f64,
    caption: &'a str,
    /// Always present: `null` when the bundle has no `confidence` section.
    confidence: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tags: Option<Vec<TagJson<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_ids: Option<&'a [i64]>,
}

/// One tag of a caption's `tags`.
#[derive(Debug, Serialize)]
pub struct TagJson<'a> {
    tag: &'a str,
    score: f64,
}

/// The JSON object of one caption.
pub fn caption_json<'a>(event: &'a CaptionEvent, opts: &FormatOptions) -> CaptionJson<'a> {
    CaptionJson {
        file: &event.source,
        start: round3(event.start),
        end: round3(event.end),
        caption: &event.caption.text,
        confidence: event.caption.confidence.map(round3),
        tags: event.caption.tags.as_ref().map(|tags| {
            tags.iter()
                .map(|(tag, score)| TagJson {
                    tag,
                    score: round3(f64::from(*score)),
                })
                .collect()
        }),
        token_ids: opts.print_ids.then_some(event.caption.token_ids.as_slice()),
    }
}

impl Event {
    /// The JSON-lines object of this event ([`event_json`]).
    pub fn to_json(&self) -> Value {
        event_json(self)
    }

    /// The plain-text line of this event ([`event_text`]).
    pub fn to_text(&self) -> String {
        event_text(self)
    }
}

/// The JSON-lines object of any event: a caption's fields ([`caption_json`]), for `listen`
/// with the live facts added; health and summary reports.
pub fn event_json(event: &Event) -> Value {
    match event {
        Event::FileCaption(c) => caption_value(c),
        Event::FileGated(g) => serde_json::to_value(gated_json(g)).expect("gated fields serialise"),
        Event::Caption(c) => {
            let mut obj = match caption_value(&c.event) {
                Value::Object(m) => m,
                _ => serde_json::Map::new(),
            };
            let live = json!({
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
            if let Value::Object(m) = live {
                obj.extend(m);
            }
            if let Some(clip) = &c.clip {
                obj.insert("clip".into(), Value::String(clip.clone()));
            }
            Value::Object(obj)
        }
        Event::Health(h) => health_json("health", h),
        Event::Summary(h) => health_json("summary", h),
    }
}

fn caption_value(event: &CaptionEvent) -> Value {
    serde_json::to_value(caption_json(event, &FormatOptions::default()))
        .expect("caption fields serialise")
}

/// The plain-text line of any event (captions with default options).
pub fn event_text(event: &Event) -> String {
    match event {
        Event::FileCaption(c) => caption_text(c, &FormatOptions::default()),
        Event::FileGated(g) => gated_text(g, &FormatOptions::default()),
        Event::Caption(c) => caption_text(&c.event, &FormatOptions::default()),
        Event::Health(h) => format!("health: {}", health_text(h)),
        Event::Summary(h) => format!("summary: {}", health_text(h)),
    }
}

/// The line a line sink of `format` writes for `event`, if any (text lines carry captions
/// only; health goes to the log). `opts` applies to captions.
pub fn event_line(event: &Event, format: LineFormat, opts: &FormatOptions) -> Option<String> {
    match (format, event) {
        (LineFormat::Jsonl, Event::FileCaption(c)) => {
            // Serialised from the struct so that the keys keep their documented order.
            Some(serde_json::to_string(&caption_json(c, opts)).expect("caption fields serialise"))
        }
        (LineFormat::Jsonl, Event::FileGated(g)) => {
            Some(serde_json::to_string(&gated_json(g)).expect("gated fields serialise"))
        }
        (LineFormat::Jsonl, e) => Some(event_json(e).to_string()),
        (LineFormat::Text, Event::FileCaption(c)) => Some(caption_text(c, opts)),
        (LineFormat::Text, Event::FileGated(g)) => Some(gated_text(g, opts)),
        (LineFormat::Text, Event::Caption(c)) => Some(caption_text(&c.event, opts)),
        (LineFormat::Text, _) => None,
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
        "uncertain": h.uncertain,
        "filtered": h.filtered,
        "privacy_dropped": h.privacy_dropped,
        "clips_written": h.clips_written,
        "clips_pruned": h.clips_pruned,
        "clips_failed": h.clips_failed,
        "errors": h.errors,
        "dropped_messages": h.dropped_messages,
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
    if h.uncertain + h.filtered + h.privacy_dropped > 0 {
        s.push_str(&format!(
            " uncertain {} filtered {} privacy_dropped {}",
            h.uncertain, h.filtered, h.privacy_dropped
        ));
    }
    if h.clips_written + h.clips_pruned + h.clips_failed > 0 {
        s.push_str(&format!(
            " clips written {} pruned {} failed {}",
            h.clips_written, h.clips_pruned, h.clips_failed
        ));
    }
    if h.dropped_messages > 0 {
        s.push_str(&format!(" dropped_messages {}", h.dropped_messages));
    }
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::{Caption, Timings};
    use std::time::Duration;

    pub(crate) fn event() -> CaptionEvent {
        CaptionEvent {
            source: "a.wav".into(),
            start: 5.0,
            end: 12.34,
            caption: Caption {
                text: "a dog barks".into(),
                token_ids: vec![7, 8, 9, 2],
                timings: Timings::default(),
                ..Default::default()
            },
        }
    }

    fn json_line(e: &CaptionEvent, o: &FormatOptions) -> String {
        event_line(&Event::FileCaption(e.clone()), LineFormat::Jsonl, o).unwrap()
    }

    #[test]
    fn plain_and_with_ids() {
        let e = event();
        assert_eq!(
            caption_text(&e, &FormatOptions::default()),
            "[00:05.0–00:12.3] a dog barks"
        );
        let o = FormatOptions {
            print_ids: true,
            show_source: true,
            ..Default::default()
        };
        assert_eq!(
            caption_text(&e, &o),
            "a.wav: [00:05.0–00:12.3] a dog barks  [ids 7 8 9 2]"
        );
    }

    #[test]
    fn fields() {
        let e = event();
        let s = json_line(&e, &FormatOptions::default());
        assert_eq!(
            s,
            r#"{"file":"a.wav","start":5.0,"end":12.34,"caption":"a dog barks","confidence":null}"#
        );
        let o = FormatOptions {
            print_ids: true,
            show_source: false,
            ..Default::default()
        };
        let v: serde_json::Value = serde_json::from_str(&json_line(&e, &o)).unwrap();
        assert_eq!(v["token_ids"], serde_json::json!([7, 8, 9, 2]));
    }

    #[test]
    fn gated_lines_and_the_clip_path() {
        let g = GatedWindow {
            source: "a.wav".into(),
            start: 0.0,
            end: 10.0,
            level_dbfs: f64::NEG_INFINITY,
        };
        let o = FormatOptions::default();
        let ev = Event::FileGated(g);
        assert_eq!(
            event_line(&ev, LineFormat::Text, &o).unwrap(),
            "[00:00.0–00:10.0] (silence)"
        );
        assert_eq!(
            event_line(&ev, LineFormat::Jsonl, &o).unwrap(),
            r#"{"file":"a.wav","start":0.0,"end":10.0,"caption":null,"confidence":null,"gated":true,"level_dbfs":null}"#
        );
        let live = crate::sink::LiveCaption {
            event: event(),
            timestamp: UNIX_EPOCH,
            window_index: 0,
            latency_ms: 0.0,
            inference_ms: 0.0,
            rtf: 0.0,
            dropped_samples: 0,
            dropped_windows: 0,
            level_dbfs: -20.0,
            clip: Some("/c/x.flac".into()),
        };
        let v = Event::Caption(live.clone()).to_json();
        assert_eq!(v["clip"], "/c/x.flac");
        let v = Event::Caption(crate::sink::LiveCaption { clip: None, ..live }).to_json();
        assert!(v.get("clip").is_none());
    }

    #[test]
    fn time_format() {
        assert_eq!(format_time(0.0), "00:00.0");
        assert_eq!(format_time(10.04), "00:10.0");
        assert_eq!(format_time(65.25), "01:05.3");
        assert_eq!(format_time(3600.0), "1:00:00.0");
        assert_eq!(format_time(3725.5), "1:02:05.5");
    }

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
}
