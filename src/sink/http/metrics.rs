//! `/metrics`: the Prometheus text format (version 0.0.4) of the last health report — every
//! number of the health event's JSON, by the table [`HEALTH`] (a unit test holds the table to
//! the JSON's keys) — plus the HTTP sink's own figures. A field that is unknown (`null`: no
//! temperature sensor, nothing captioned yet) has no sample rather than a made-up value.

use crate::sink::event::{Event, HealthEvent};
use serde_json::Value;
use std::fmt::Write;

/// `(health JSON key, metric name, type, help)`.
pub const HEALTH: &[(&str, &str, &str, &str)] = &[
    (
        "uptime_s",
        "earshot_uptime_seconds",
        "gauge",
        "Seconds since listen started",
    ),
    (
        "audio_s",
        "earshot_audio_seconds_total",
        "counter",
        "Seconds of audio received (dropped audio included)",
    ),
    (
        "rtf",
        "earshot_rtf",
        "gauge",
        "Mean real-time factor of the last health period (inference time / hop)",
    ),
    (
        "rss_bytes",
        "earshot_rss_bytes",
        "gauge",
        "Resident memory of the process",
    ),
    (
        "dropped_samples",
        "earshot_dropped_samples_total",
        "counter",
        "Source audio frames lost to capture overruns",
    ),
    (
        "dropped_windows",
        "earshot_dropped_windows_total",
        "counter",
        "Windows dropped because the model fell behind",
    ),
    (
        "windows",
        "earshot_windows_total",
        "counter",
        "Windows cut from the stream",
    ),
    (
        "captions",
        "earshot_captions_total",
        "counter",
        "Captions emitted",
    ),
    (
        "gated",
        "earshot_gated_total",
        "counter",
        "Windows skipped by the silence gate",
    ),
    (
        "suppressed",
        "earshot_suppressed_total",
        "counter",
        "Captions suppressed as repeats or empty",
    ),
    (
        "uncertain",
        "earshot_uncertain_total",
        "counter",
        "Captions below captions.min_confidence (not emitted)",
    ),
    (
        "filtered",
        "earshot_filtered_total",
        "counter",
        "Captions left out by captions.only / captions.ignore",
    ),
    (
        "privacy_dropped",
        "earshot_privacy_dropped_total",
        "counter",
        "Speech windows dropped by privacy.speech = drop",
    ),
    (
        "clips_written",
        "earshot_clips_written_total",
        "counter",
        "Audio clips written",
    ),
    (
        "clips_pruned",
        "earshot_clips_pruned_total",
        "counter",
        "Audio clips deleted by retention",
    ),
    (
        "clips_failed",
        "earshot_clips_failed_total",
        "counter",
        "Audio clips that could not be written",
    ),
    (
        "errors",
        "earshot_errors_total",
        "counter",
        "Captioning and output errors",
    ),
    (
        "dropped_messages",
        "earshot_dropped_messages_total",
        "counter",
        "Messages the outputs dropped (MQTT outbox, webhook queue)",
    ),
    (
        "cpu_temp_c",
        "earshot_cpu_temperature_celsius",
        "gauge",
        "CPU temperature",
    ),
    (
        "throttled",
        "earshot_throttled_flags",
        "gauge",
        "vcgencmd get_throttled bits (Raspberry Pi)",
    ),
];

/// The HTTP sink's own figures.
#[derive(Debug, Clone, Default)]
pub struct HttpStats {
    pub clients: u64,
    pub dropped_clients: u64,
    pub captions: u64,
    pub last_caption_unix: Option<f64>,
    pub connections: u64,
    pub uptime_s: f64,
}

fn metric(out: &mut String, name: &str, kind: &str, help: &str, value: f64) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    let _ = writeln!(out, "{name} {value}");
}

/// A JSON number, or a `0x…` hex string (the throttling flags), as a sample value.
fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => {
            let hex = s.strip_prefix("0x")?;
            u64::from_str_radix(hex, 16).ok().map(|x| x as f64)
        }
        _ => None,
    }
}

/// The whole `/metrics` text.
pub fn render(health: Option<&HealthEvent>, http: &HttpStats) -> String {
    let mut out = String::new();
    metric(
        &mut out,
        "earshot_up",
        "gauge",
        "1 while earshot listen runs",
        1.0,
    );
    if let Some(h) = health {
        let json = Event::Health(h.clone()).to_json();
        for (key, name, kind, help) in HEALTH {
            if let Some(v) = json.get(*key).and_then(number) {
                metric(&mut out, name, kind, help, v);
            }
        }
        if let Some(t) = h.timestamp {
            let s = t
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64();
            metric(
                &mut out,
                "earshot_last_health_timestamp_seconds",
                "gauge",
                "When the last health report was made (Unix time)",
                s,
            );
        }
    }
    metric(
        &mut out,
        "earshot_http_uptime_seconds",
        "gauge",
        "Seconds since the HTTP server started",
        http.uptime_s,
    );
    metric(
        &mut out,
        "earshot_http_event_streams",
        "gauge",
        "Open /api/events streams",
        http.clients as f64,
    );
    metric(
        &mut out,
        "earshot_http_connections",
        "gauge",
        "Open HTTP connections",
        http.connections as f64,
    );
    metric(
        &mut out,
        "earshot_http_dropped_clients_total",
        "counter",
        "Event-stream clients dropped for falling behind",
        http.dropped_clients as f64,
    );
    metric(
        &mut out,
        "earshot_http_captions_total",
        "counter",
        "Captions seen by the HTTP server",
        http.captions as f64,
    );
    if let Some(t) = http.last_caption_unix {
        metric(
            &mut out,
            "earshot_last_caption_timestamp_seconds",
            "gauge",
            "When the last caption was made (Unix time)",
            t,
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_number_of_the_health_event_is_a_metric() {
        let h = HealthEvent {
            rtf: Some(0.5),
            rss_bytes: Some(1),
            cpu_temp_c: Some(50.0),
            throttled: Some("0x50005".into()),
            ..Default::default()
        };
        let json = Event::Health(h.clone()).to_json();
        let keys: Vec<&str> = HEALTH.iter().map(|r| r.0).collect();
        for (k, v) in json.as_object().unwrap() {
            if k == "event" || k == "timestamp" {
                continue;
            }
            assert!(keys.contains(&k.as_str()), "{k} = {v} has no metric");
        }
        let text = render(Some(&h), &HttpStats::default());
        for (_, name, _, _) in HEALTH {
            assert!(text.contains(&format!("\n{name} ")), "{name} in\n{text}");
        }
        assert!(text.contains("earshot_throttled_flags 327685\n"), "{text}");
        // Unknown values have no sample.
        let text = render(Some(&HealthEvent::default()), &HttpStats::default());
        assert!(!text.contains("\nearshot_rtf "), "{text}");
    }
}
