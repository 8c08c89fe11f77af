//! The defaults of `earshot listen` and the field rules every section uses: each failure is one
//! error that names its key (``invalid setting `mqtt.qos`: must be 0..=2 (got 3)``).

use crate::sink::format::LineFormat;
use anyhow::Result;

pub const DEFAULT_GATE_DBFS: f64 = -60.0;
pub const DEFAULT_HOLDOFF_SECONDS: f64 = 30.0;
pub const DEFAULT_SIMILARITY: f64 = 0.8;
pub const DEFAULT_QUEUE_WINDOWS: usize = 2;
pub const DEFAULT_RING_SECONDS: f64 = 4.0;
pub const DEFAULT_WATCHDOG_SECONDS: f64 = 5.0;
pub const DEFAULT_HEALTH_SECONDS: f64 = 60.0;
pub const DEFAULT_MQTT_PORT: u16 = 1883;
pub const DEFAULT_MQTT_TOPIC: &str = "earshot/captions";

pub fn bad(key: &str, msg: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("invalid setting `{key}`: {msg}")
}

pub fn positive(key: &str, v: Option<f64>, default: f64) -> Result<f64> {
    let v = v.unwrap_or(default);
    if !v.is_finite() || v <= 0.0 {
        return Err(bad(key, format!("must be a number > 0 (got {v})")));
    }
    Ok(v)
}

pub fn ranged_int(key: &str, v: Option<i64>, lo: i64, hi: i64) -> Result<Option<i64>> {
    match v {
        Some(x) if x < lo || x > hi => Err(bad(key, format!("must be {lo}..={hi} (got {x})"))),
        other => Ok(other),
    }
}

pub fn line_format(key: &str, v: Option<&str>, default: LineFormat) -> Result<LineFormat> {
    match v.map(|s| s.trim().to_ascii_lowercase()).as_deref() {
        None => Ok(default),
        Some("text") => Ok(LineFormat::Text),
        Some("jsonl") | Some("json") => Ok(LineFormat::Jsonl),
        Some(other) => Err(bad(
            key,
            format!("must be \"text\" or \"jsonl\" (got \"{other}\")"),
        )),
    }
}

pub fn non_empty(key: &str, v: Option<String>) -> Result<Option<String>> {
    match v {
        Some(s) if s.trim().is_empty() => Err(bad(key, "must not be empty")),
        other => Ok(other),
    }
}
