//! The raw, all-optional shape of the TOML config file. CLI flags fill the same structure, so a
//! file and command-line overrides are merged first and then validated by one code path
//! ([`super::validate`]).

use crate::sink::Secret;
use anyhow::{Context, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Board profile (`boards/<name>.toml`) whose defaults sit under everything else.
    pub board: Option<String>,
    #[serde(default)]
    pub model: RawModel,
    #[serde(default)]
    pub source: RawSource,
    #[serde(default)]
    pub captions: RawCaptions,
    #[serde(default)]
    pub privacy: RawPrivacy,
    #[serde(default)]
    pub clips: RawClips,
    #[serde(default)]
    pub output: RawOutput,
    #[serde(default)]
    pub serial: RawSerial,
    #[serde(default)]
    pub mqtt: RawMqtt,
    #[serde(default)]
    pub http: RawHttp,
    #[serde(default)]
    pub webhook: RawWebhook,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawModel {
    pub bundle: Option<PathBuf>,
    pub beam: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawSource {
    pub kind: Option<String>,
    pub device: Option<String>,
    pub file: Option<PathBuf>,
    pub realtime: Option<bool>,
    pub speed: Option<f64>,
    pub stdin_format: Option<String>,
    pub stdin_rate: Option<i64>,
    pub stdin_channels: Option<i64>,
    pub ring_seconds: Option<f64>,
    pub watchdog_seconds: Option<f64>,
    pub device_required: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawCaptions {
    pub window_seconds: Option<f64>,
    pub hop_seconds: Option<f64>,
    pub gate_dbfs: Option<f64>,
    pub holdoff_seconds: Option<f64>,
    pub similarity: Option<f64>,
    pub queue_windows: Option<i64>,
    pub min_confidence: Option<f64>,
    pub only: Option<Vec<String>>,
    pub ignore: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawPrivacy {
    pub speech: Option<String>,
    pub speech_clips: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawClips {
    pub dir: Option<PathBuf>,
    pub format: Option<String>,
    pub pre_seconds: Option<f64>,
    pub post_seconds: Option<f64>,
    pub max_files: Option<i64>,
    pub max_megabytes: Option<f64>,
    pub max_age_days: Option<f64>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawOutput {
    pub stdout: Option<String>,
    pub jsonl_file: Option<PathBuf>,
    pub text_file: Option<PathBuf>,
    pub health_seconds: Option<f64>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawSerial {
    pub device: Option<String>,
    pub baud: Option<i64>,
    pub format: Option<String>,
    pub required: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawMqtt {
    pub host: Option<String>,
    pub port: Option<i64>,
    pub topic: Option<String>,
    pub health_topic: Option<String>,
    pub qos: Option<i64>,
    pub retain: Option<bool>,
    pub client_id: Option<String>,
    pub keep_alive_seconds: Option<f64>,
    pub reconnect_seconds: Option<f64>,
    pub username: Option<String>,
    /// Never printed (a [`Secret`]); better kept out of the file: `password_file` or
    /// `password_env`.
    pub password: Option<Secret>,
    /// A file whose first line is the password.
    pub password_file: Option<PathBuf>,
    /// The environment variable holding the password.
    pub password_env: Option<String>,
    pub availability_topic: Option<String>,
    /// Home Assistant discovery (default on).
    pub discovery: Option<bool>,
    pub discovery_prefix: Option<String>,
    pub device_id: Option<String>,
    pub device_name: Option<String>,
    /// TLS (default: on when `ca_file` is set).
    pub tls: Option<bool>,
    pub ca_file: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawHttp {
    /// `ADDR:PORT` to serve on.
    pub listen: Option<String>,
    /// Never printed; better `token_file` or `token_env`.
    pub token: Option<Secret>,
    pub token_file: Option<PathBuf>,
    pub token_env: Option<String>,
    pub history: Option<i64>,
    pub clients: Option<i64>,
    pub client_buffer: Option<i64>,
    pub clips_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawWebhook {
    pub url: Option<String>,
    pub timeout_seconds: Option<f64>,
    pub retries: Option<i64>,
    pub backoff_seconds: Option<f64>,
    pub queue: Option<i64>,
}

/// 1-based line of byte `offset` and the dotted key written there (`section.key`), found from
/// the line's `key =` and the nearest `[section]` header above it.
fn locate(text: &str, offset: usize) -> Option<(usize, Option<String>)> {
    let offset = offset.min(text.len());
    let before = text.get(..offset)?;
    let line_no = before.matches('\n').count() + 1;
    let line = text.lines().nth(line_no - 1).unwrap_or("").trim();
    let header = |l: &str| {
        let l = l.trim();
        (l.starts_with('[') && !l.starts_with("[[")).then(|| {
            l.trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        })
    };
    if let Some(h) = header(line) {
        return Some((line_no, Some(h)));
    }
    let key = line
        .split_once('=')
        .map(|(k, _)| k.trim().trim_matches('"').to_string())
        .filter(|k| !k.is_empty() && !k.starts_with('#'));
    let above: Vec<&str> = text.lines().take(line_no - 1).collect();
    let section = above.into_iter().rev().find_map(header);
    let full = match (section, key) {
        (Some(s), Some(k)) => Some(format!("{s}.{k}")),
        (None, k) => k,
        (Some(_), None) => None,
    };
    Some((line_no, full))
}

impl RawConfig {
    /// Parses TOML text; unknown keys and wrong types are errors that name the key
    /// (`line 3: `mqtt.qos`: invalid type: string "high", expected i64`).
    pub fn parse(text: &str) -> Result<RawConfig> {
        toml::from_str(text).map_err(|e| {
            let msg = e.message().trim_end();
            match e.span().and_then(|span| locate(text, span.start)) {
                Some((line, Some(key))) => anyhow::anyhow!("line {line}: `{key}`: {msg}"),
                Some((line, None)) => anyhow::anyhow!("line {line}: {msg}"),
                None => anyhow::anyhow!("{msg}"),
            }
        })
    }

    pub fn load(path: &Path) -> Result<RawConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        RawConfig::parse(&text).with_context(|| format!("config file {}", path.display()))
    }

    /// Values set in `over` replace those in `self` (CLI flags over the file).
    pub fn merge(mut self, over: RawConfig) -> RawConfig {
        macro_rules! take {
            ($sec:ident: $($f:ident),*) => {
                $( if over.$sec.$f.is_some() { self.$sec.$f = over.$sec.$f; } )*
            };
        }
        if over.board.is_some() {
            self.board = over.board;
        }
        take!(model: bundle, beam);
        take!(source: kind, device, file, realtime, speed, stdin_format, stdin_rate,
              stdin_channels, ring_seconds, watchdog_seconds, device_required);
        take!(captions: window_seconds, hop_seconds, gate_dbfs, holdoff_seconds, similarity,
              queue_windows, min_confidence, only, ignore);
        take!(privacy: speech, speech_clips);
        take!(clips: dir, format, pre_seconds, post_seconds, max_files, max_megabytes,
              max_age_days);
        take!(output: stdout, jsonl_file, text_file, health_seconds);
        take!(serial: device, baud, format, required);
        take!(mqtt: host, port, topic, health_topic, qos, retain, client_id,
              keep_alive_seconds, reconnect_seconds, username, password, password_file,
              password_env, availability_topic, discovery, discovery_prefix, device_id,
              device_name, tls, ca_file, client_cert, client_key);
        take!(http: listen, token, token_file, token_env, history, clients, client_buffer,
              clips_dir);
        take!(webhook: url, timeout_seconds, retries, backoff_seconds, queue);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_key_is_named() {
        let err = RawConfig::parse("[mqtt]\nhots = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("hots"), "{err}");
        let err = RawConfig::parse("[nosuch]\n").unwrap_err().to_string();
        assert!(err.contains("nosuch"), "{err}");
    }

    #[test]
    fn wrong_type_is_named() {
        let err = RawConfig::parse("# c\n[mqtt]\nhost = \"h\"\nport = \"high\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("line 4: `mqtt.port`: invalid type"),
            "{err}"
        );
        let err = RawConfig::parse("[mqtt]\nhots = 1\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("line 2: `mqtt.hots`: unknown field"),
            "{err}"
        );
        let err = RawConfig::parse("board = 4\n").unwrap_err().to_string();
        assert!(err.starts_with("line 1: `board`"), "{err}");
        let err = RawConfig::parse("[mqtt\n").unwrap_err().to_string();
        assert!(err.starts_with("line 1"), "{err}");
    }

    #[test]
    fn a_wrong_password_value_is_not_echoed() {
        for toml in [
            "[mqtt]\npassword = 1234567\n",
            "[mqtt]\npassword = [\"1234567\"]\n",
        ] {
            let err = RawConfig::parse(toml).unwrap_err().to_string();
            assert!(
                err.contains("mqtt.password") && !err.contains("1234567"),
                "{err}"
            );
        }
        let c = RawConfig::parse("[mqtt]\npassword = \"1234567\"\n").unwrap();
        assert!(!format!("{c:?}").contains("1234567"));
    }

    #[test]
    fn merge_prefers_override() {
        let file = RawConfig::parse("[mqtt]\nhost = \"a\"\nport = 1\n").unwrap();
        let mut cli = RawConfig::default();
        cli.mqtt.port = Some(2);
        let m = file.merge(cli);
        assert_eq!(m.mqtt.host.as_deref(), Some("a"));
        assert_eq!(m.mqtt.port, Some(2));
    }
}
