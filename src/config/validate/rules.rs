//! The defaults of `earshot listen` and the field rules every section uses: each failure is one
//! error that names its key (``invalid setting `mqtt.qos`: must be 0..=2 (got 3)``).

use crate::sink::format::LineFormat;
use anyhow::Result;

pub const DEFAULT_GATE_DBFS: f64 = -60.0;
pub const DEFAULT_HOLDOFF_SECONDS: f64 = 30.0;
/// `captions.min_confidence` of `listen`: the shipped model's fitted threshold
/// (`models/default/manifest.json`, `confidence.fit.threshold`, written by
/// `python -m earshot_train.calibrate --v2`): the lowest confidence at which at most 10 % of the
/// captions kept on its validation split (957 windows of corpus v2) name a wrong source (9.4 %,
/// 6.7 % of the captions kept). `tests/monitoring.rs` fails when a new model's threshold differs.
/// README, "Trusting captions", says what it trades.
pub const DEFAULT_MIN_CONFIDENCE: f64 = 0.71;
/// Entries of `captions.only` / `captions.ignore` at most, and bytes per entry.
pub const MAX_WORD_LIST: usize = 256;
pub const MAX_WORD_BYTES: usize = 100;
pub const DEFAULT_CLIP_PRE_SECONDS: f64 = 2.0;
pub const DEFAULT_CLIP_POST_SECONDS: f64 = 2.0;
/// `clips.pre_seconds` / `clips.post_seconds` at most (they size a RAM ring).
pub const MAX_CLIP_PAD_SECONDS: f64 = 30.0;
pub const DEFAULT_CLIP_MAX_FILES: u64 = 1000;
pub const DEFAULT_CLIP_MAX_MEGABYTES: f64 = 500.0;
pub const DEFAULT_CLIP_MAX_AGE_DAYS: f64 = 30.0;
pub const DEFAULT_SIMILARITY: f64 = 0.8;
pub const DEFAULT_QUEUE_WINDOWS: usize = 2;
pub const DEFAULT_RING_SECONDS: f64 = 4.0;
pub const DEFAULT_WATCHDOG_SECONDS: f64 = 5.0;
pub const DEFAULT_HEALTH_SECONDS: f64 = 60.0;
pub const DEFAULT_MQTT_PORT: u16 = 1883;
pub const DEFAULT_MQTT_TOPIC: &str = "earshot/captions";
/// The MQTT port with TLS (`mqtt.tls`).
pub const DEFAULT_MQTTS_PORT: u16 = 8883;
pub const DEFAULT_DISCOVERY_PREFIX: &str = "homeassistant";
/// `http.listen` when only a port (or nothing but `--http`) is given: loopback.
pub const DEFAULT_HTTP_HOST: &str = "127.0.0.1";
pub const DEFAULT_HTTP_HISTORY: i64 = 100;
pub const DEFAULT_HTTP_CLIENTS: i64 = 8;
pub const DEFAULT_HTTP_CLIENT_BUFFER: i64 = 64;
/// The environment variable read for the HTTP token when no `http.token*` key is set.
pub const HTTP_TOKEN_ENV: &str = "EARSHOT_HTTP_TOKEN";
pub const DEFAULT_WEBHOOK_TIMEOUT_SECONDS: f64 = 10.0;
pub const DEFAULT_WEBHOOK_RETRIES: i64 = 5;
pub const DEFAULT_WEBHOOK_BACKOFF_SECONDS: f64 = 1.0;
pub const DEFAULT_WEBHOOK_QUEUE: i64 = 64;
/// The environment variable read for the MQTT password when no `mqtt.password*` key is set.
pub const MQTT_PASSWORD_ENV: &str = "EARSHOT_MQTT_PASSWORD";
/// A password file is one line; anything longer than this is not one.
pub const MAX_PASSWORD_FILE_BYTES: u64 = 64 * 1024;

/// How validation reads an environment variable. The environment is read only by the commands
/// (`commands::env_var`); tests pass a closure.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

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

/// A confidence threshold: 0..=1; 0 turns it off (`None`).
pub fn min_confidence(key: &str, v: Option<f64>, default: Option<f64>) -> Result<Option<f64>> {
    match v {
        None => Ok(default),
        Some(0.0) => Ok(None),
        Some(x) if (0.0..=1.0).contains(&x) => Ok(Some(x)),
        Some(x) => Err(bad(key, format!("must be 0..=1, 0 = off (got {x})"))),
    }
}

/// A list of words to match captions against: each entry has a word, at most
/// [`MAX_WORD_LIST`] entries of at most [`MAX_WORD_BYTES`] bytes.
pub fn word_list(key: &str, v: Option<Vec<String>>) -> Result<Vec<String>> {
    let list = v.unwrap_or_default();
    if list.len() > MAX_WORD_LIST {
        return Err(bad(
            key,
            format!("at most {MAX_WORD_LIST} entries (got {})", list.len()),
        ));
    }
    for w in &list {
        if w.len() > MAX_WORD_BYTES {
            return Err(bad(
                key,
                format!("an entry longer than {MAX_WORD_BYTES} bytes"),
            ));
        }
        if crate::live::filter::Pattern::new(w).is_none() {
            return Err(bad(key, format!("{w:?} has no word to match")));
        }
    }
    Ok(list.into_iter().map(|w| w.trim().to_string()).collect())
}

/// This machine's host name (`localhost` when it cannot be read).
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most that much.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    match (rc, std::str::from_utf8(&buf[..end])) {
        (0, Ok(h)) if !h.is_empty() => h.to_string(),
        _ => "localhost".to_string(),
    }
}
