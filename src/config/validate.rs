//! The one validation path for `earshot listen` settings (file and CLI alike): [`validate`]
//! applies the board layer and calls one function per section; each error names its key.

use super::file::{RawCaptions, RawConfig, RawMqtt, RawOutput, RawSerial, RawSource};
use super::settings::*;
use crate::audio::pcm::PcmFormat;
use crate::sink::format::LineFormat;
use crate::sink::mqtt::MqttSettings;
use crate::sink::serial::SerialSettings;
use anyhow::{bail, Result};

pub const DEFAULT_GATE_DBFS: f64 = -60.0;
pub const DEFAULT_HOLDOFF_SECONDS: f64 = 30.0;
pub const DEFAULT_SIMILARITY: f64 = 0.8;
pub const DEFAULT_QUEUE_WINDOWS: usize = 2;
pub const DEFAULT_RING_SECONDS: f64 = 4.0;
pub const DEFAULT_WATCHDOG_SECONDS: f64 = 5.0;
pub const DEFAULT_HEALTH_SECONDS: f64 = 60.0;
pub const DEFAULT_MQTT_PORT: u16 = 1883;
pub const DEFAULT_MQTT_TOPIC: &str = "earshot/captions";

fn bad(key: &str, msg: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("invalid setting `{key}`: {msg}")
}

fn positive(key: &str, v: Option<f64>, default: f64) -> Result<f64> {
    let v = v.unwrap_or(default);
    if !v.is_finite() || v <= 0.0 {
        return Err(bad(key, format!("must be a number > 0 (got {v})")));
    }
    Ok(v)
}

fn ranged_int(key: &str, v: Option<i64>, lo: i64, hi: i64) -> Result<Option<i64>> {
    match v {
        Some(x) if x < lo || x > hi => Err(bad(key, format!("must be {lo}..={hi} (got {x})"))),
        other => Ok(other),
    }
}

fn line_format(key: &str, v: Option<&str>, default: LineFormat) -> Result<LineFormat> {
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

fn non_empty(key: &str, v: Option<String>) -> Result<Option<String>> {
    match v {
        Some(s) if s.trim().is_empty() => Err(bad(key, "must not be empty")),
        other => Ok(other),
    }
}

/// Validates merged raw settings (config file with the command line over it). A `board`
/// profile supplies defaults for whatever neither of them set.
pub fn validate(raw: RawConfig) -> Result<Settings> {
    let board = non_empty("board", raw.board.clone())?;
    let raw = match &board {
        Some(name) => super::board::BoardProfile::by_name(name)
            .map_err(|e| bad("board", format!("{e:#}")))?
            .config_layer()
            .merge(raw),
        None => raw,
    };
    let (source, ring_seconds, watchdog_seconds) = source(raw.source)?;
    let captions = captions(raw.captions)?;
    let output = output(raw.output)?;
    let serial = serial(raw.serial)?;
    let mqtt = mqtt(raw.mqtt)?;
    if output.stdout.is_none()
        && output.jsonl_file.is_none()
        && output.text_file.is_none()
        && serial.is_none()
        && mqtt.is_none()
    {
        bail!(
            "no output: output.stdout is \"none\" and no file, serial or MQTT sink is configured"
        );
    }

    Ok(Settings {
        board,
        bundle: raw.model.bundle,
        beam: ranged_int("model.beam", raw.model.beam, 1, 64)?.map(|b| b as usize),
        source,
        ring_seconds,
        watchdog_seconds,
        captions,
        output,
        serial,
        mqtt,
    })
}

/// `[source]`: the source, `ring_seconds` and `watchdog_seconds`.
fn source(s: RawSource) -> Result<(SourceSettings, f64, f64)> {
    let kind = match s.kind.as_deref().map(|k| k.trim().to_ascii_lowercase()) {
        None => {
            if s.file.is_some() {
                "file".to_string()
            } else {
                "mic".to_string()
            }
        }
        Some(k) => k,
    };
    let source = match kind.as_str() {
        "mic" => SourceSettings::Mic {
            device: s.device.filter(|d| !d.trim().is_empty()),
        },
        "stdin" => {
            let format = match s
                .stdin_format
                .as_deref()
                .map(str::to_ascii_lowercase)
                .as_deref()
            {
                None | Some("s16le") | Some("s16_le") => PcmFormat::S16Le,
                Some("s32le") | Some("s32_le") => PcmFormat::S32Le,
                Some("f32le") | Some("float_le") | Some("f32_le") => PcmFormat::F32Le,
                Some(other) => {
                    return Err(bad(
                        "source.stdin_format",
                        format!("must be \"s16le\", \"s32le\" or \"f32le\" (got \"{other}\")"),
                    ))
                }
            };
            // Optional: a WAV header on stdin gives it; raw PCM without it is refused at start.
            let rate =
                ranged_int("source.stdin_rate", s.stdin_rate, 1000, 768_000)?.map(|r| r as u32);
            let channels =
                ranged_int("source.stdin_channels", s.stdin_channels, 1, 64)?.unwrap_or(1) as u16;
            SourceSettings::Stdin {
                format,
                rate,
                channels,
            }
        }
        "file" => {
            let path = s
                .file
                .ok_or_else(|| bad("source.file", "is required when source.kind = \"file\""))?;
            let realtime = s.realtime.unwrap_or(true);
            let speed = if realtime {
                Some(positive("source.speed", s.speed, 1.0)?)
            } else {
                if s.speed.is_some() {
                    return Err(bad("source.speed", "has no meaning with realtime = false"));
                }
                None
            };
            SourceSettings::File { path, speed }
        }
        other => {
            return Err(bad(
                "source.kind",
                format!("must be \"mic\", \"stdin\" or \"file\" (got \"{other}\")"),
            ))
        }
    };
    let ring_seconds = positive("source.ring_seconds", s.ring_seconds, DEFAULT_RING_SECONDS)?;
    if ring_seconds > 600.0 {
        return Err(bad("source.ring_seconds", "must be at most 600"));
    }
    let watchdog_seconds = positive(
        "source.watchdog_seconds",
        s.watchdog_seconds,
        DEFAULT_WATCHDOG_SECONDS,
    )?;
    Ok((source, ring_seconds, watchdog_seconds))
}

/// `[captions]`.
fn captions(c: RawCaptions) -> Result<CaptionSettings> {
    let window_seconds = match c.window_seconds {
        None => None,
        Some(_) => Some(positive("captions.window_seconds", c.window_seconds, 0.0)?),
    };
    let hop_seconds = match c.hop_seconds {
        None => None,
        Some(_) => Some(positive("captions.hop_seconds", c.hop_seconds, 0.0)?),
    };
    if let (Some(w), Some(h)) = (window_seconds, hop_seconds) {
        if h > w {
            return Err(bad(
                "captions.hop_seconds",
                format!("must not exceed captions.window_seconds ({h} > {w})"),
            ));
        }
    }
    let gate_dbfs = match c.gate_dbfs {
        None => Some(DEFAULT_GATE_DBFS),
        Some(g) if g.is_nan() || g > 0.0 => {
            return Err(bad(
                "captions.gate_dbfs",
                format!("must be <= 0 dBFS (got {g}); use -inf or a very low value to disable"),
            ))
        }
        Some(g) if g == f64::NEG_INFINITY || g <= -200.0 => None,
        Some(g) => Some(g),
    };
    let holdoff_seconds = match c.holdoff_seconds {
        None => DEFAULT_HOLDOFF_SECONDS,
        Some(h) if h.is_finite() && h >= 0.0 => h,
        Some(h) => {
            return Err(bad(
                "captions.holdoff_seconds",
                format!("must be >= 0 (got {h})"),
            ))
        }
    };
    let similarity = match c.similarity {
        None => DEFAULT_SIMILARITY,
        Some(x) if (0.0..=1.0).contains(&x) => x,
        Some(x) => {
            return Err(bad(
                "captions.similarity",
                format!("must be 0..=1 (got {x})"),
            ))
        }
    };
    let queue_windows = ranged_int("captions.queue_windows", c.queue_windows, 1, 64)?
        .map_or(DEFAULT_QUEUE_WINDOWS, |q| q as usize);
    Ok(CaptionSettings {
        window_seconds,
        hop_seconds,
        gate_dbfs,
        holdoff_seconds,
        similarity,
        queue_windows,
    })
}

/// `[output]`.
fn output(o: RawOutput) -> Result<OutputSettings> {
    let stdout = match o
        .stdout
        .as_deref()
        .map(|s| s.trim().to_ascii_lowercase())
        .as_deref()
    {
        Some("none") | Some("off") => None,
        other => Some(
            line_format("output.stdout", other, LineFormat::Text).map_err(|_| {
                bad(
                    "output.stdout",
                    format!(
                        "must be \"text\", \"jsonl\" or \"none\" (got \"{}\")",
                        other.unwrap_or_default()
                    ),
                )
            })?,
        ),
    };
    let health_seconds = match o.health_seconds {
        None => Some(DEFAULT_HEALTH_SECONDS),
        Some(0.0) => None,
        Some(h) if h.is_finite() && h > 0.0 => Some(h),
        Some(h) => {
            return Err(bad(
                "output.health_seconds",
                format!("must be > 0, or 0 to turn health reports off (got {h})"),
            ))
        }
    };
    Ok(OutputSettings {
        stdout,
        jsonl_file: o.jsonl_file,
        text_file: o.text_file,
        health_seconds,
    })
}

/// `[serial]` (`None`: no serial sink).
fn serial(sr: RawSerial) -> Result<Option<SerialSettings>> {
    Ok(match non_empty("serial.device", sr.device)? {
        None => {
            if sr.baud.is_some() || sr.format.is_some() {
                return Err(bad(
                    "serial.device",
                    "is required when other [serial] keys are set",
                ));
            }
            None
        }
        Some(device) => Some(SerialSettings {
            device,
            baud: ranged_int("serial.baud", sr.baud, 50, 4_000_000)?.unwrap_or(115_200) as u32,
            format: line_format("serial.format", sr.format.as_deref(), LineFormat::Text)?,
        }),
    })
}

/// `[mqtt]` (`None`: no MQTT sink).
fn mqtt(m: RawMqtt) -> Result<Option<MqttSettings>> {
    Ok(match non_empty("mqtt.host", m.host)? {
        None => {
            let set = m.port.is_some()
                || m.topic.is_some()
                || m.qos.is_some()
                || m.retain.is_some()
                || m.client_id.is_some();
            if set {
                return Err(bad(
                    "mqtt.host",
                    "is required when other [mqtt] keys are set",
                ));
            }
            None
        }
        Some(host) => {
            let topic =
                non_empty("mqtt.topic", m.topic)?.unwrap_or_else(|| DEFAULT_MQTT_TOPIC.to_string());
            for (key, t) in [
                ("mqtt.topic", Some(&topic)),
                ("mqtt.health_topic", m.health_topic.as_ref()),
            ] {
                if let Some(t) = t {
                    if t.contains('+') || t.contains('#') || t.is_empty() {
                        return Err(bad(
                            key,
                            format!("must be a topic name without wildcards (got \"{t}\")"),
                        ));
                    }
                }
            }
            let client_id = non_empty("mqtt.client_id", m.client_id)?
                .unwrap_or_else(|| format!("earshot-{}", std::process::id()));
            if client_id.len() > 23 {
                log::debug!("mqtt.client_id is longer than 23 bytes; some brokers reject that");
            }
            if m.password.is_some() && m.username.is_none() {
                return Err(bad("mqtt.password", "needs mqtt.username"));
            }
            let keep_alive_seconds =
                positive("mqtt.keep_alive_seconds", m.keep_alive_seconds, 30.0)?;
            if keep_alive_seconds < 5.0 {
                return Err(bad("mqtt.keep_alive_seconds", "must be at least 5"));
            }
            Some(MqttSettings {
                host,
                port: ranged_int("mqtt.port", m.port, 1, 65535)?
                    .map_or(DEFAULT_MQTT_PORT, |p| p as u16),
                topic,
                health_topic: m.health_topic,
                qos: ranged_int("mqtt.qos", m.qos, 0, 2)?.unwrap_or(0) as u8,
                retain: m.retain.unwrap_or(false),
                client_id,
                keep_alive_seconds,
                reconnect_seconds: positive("mqtt.reconnect_seconds", m.reconnect_seconds, 5.0)?,
                username: m.username,
                password: m.password,
            })
        }
    })
}

/// Hop in seconds: the setting, or the model's `hop_seconds` (at most the window). `window` is
/// the window the model was loaded with (`captions.window_seconds` or the model's own).
pub fn hop_seconds(c: &CaptionSettings, window: f64, model_hop: f64) -> Result<f64> {
    let hop = c.hop_seconds.unwrap_or(model_hop.min(window));
    if hop > window + 1e-9 {
        return Err(bad(
            "captions.hop_seconds",
            format!("must not exceed the window ({hop} > {window} s)"),
        ));
    }
    Ok(hop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(toml: &str) -> Result<Settings> {
        validate(RawConfig::parse(toml)?)
    }

    #[test]
    fn defaults_are_valid() {
        let s = v("").unwrap();
        assert_eq!(s.source, SourceSettings::Mic { device: None });
        assert_eq!(s.output.stdout, Some(LineFormat::Text));
        assert_eq!(s.captions.gate_dbfs, Some(DEFAULT_GATE_DBFS));
        assert!(s.mqtt.is_none() && s.serial.is_none());
    }

    #[test]
    fn errors_name_the_key() {
        for (toml, key) in [
            ("[mqtt]\nhost = \"h\"\nqos = 3", "mqtt.qos"),
            ("[mqtt]\nhost = \"h\"\nport = 70000", "mqtt.port"),
            ("[mqtt]\nport = 1883", "mqtt.host"),
            ("[mqtt]\nhost = \"h\"\ntopic = \"a/#\"", "mqtt.topic"),
            ("[serial]\nbaud = 9600", "serial.device"),
            (
                "[serial]\ndevice = \"/dev/x\"\nformat = \"xml\"",
                "serial.format",
            ),
            ("[captions]\nhop_seconds = 0", "captions.hop_seconds"),
            (
                "[captions]\nwindow_seconds = 2\nhop_seconds = 3",
                "captions.hop_seconds",
            ),
            ("[captions]\ngate_dbfs = 3", "captions.gate_dbfs"),
            ("[captions]\nsimilarity = 1.5", "captions.similarity"),
            ("[captions]\nqueue_windows = 0", "captions.queue_windows"),
            ("[source]\nkind = \"radio\"", "source.kind"),
            (
                "[source]\nkind = \"stdin\"\nstdin_rate = 100",
                "source.stdin_rate",
            ),
            (
                "[source]\nkind = \"stdin\"\nstdin_rate = 16000\nstdin_format = \"u8\"",
                "source.stdin_format",
            ),
            ("[source]\nkind = \"file\"", "source.file"),
            ("[output]\nstdout = \"xml\"", "output.stdout"),
            ("[output]\nhealth_seconds = -1", "output.health_seconds"),
        ] {
            let err = v(toml).unwrap_err().to_string();
            assert!(err.contains(key), "{toml:?}: {err}");
        }
    }

    #[test]
    fn full_config_parses() {
        let s = v(r#"
            [source]
            kind = "stdin"
            stdin_rate = 48000
            stdin_channels = 2
            stdin_format = "f32le"
            [captions]
            window_seconds = 5
            hop_seconds = 2.5
            gate_dbfs = -45
            [output]
            stdout = "jsonl"
            health_seconds = 0
            [serial]
            device = "/dev/ttyUSB0"
            baud = 9600
            [mqtt]
            host = "broker"
            qos = 1
            retain = true
            client_id = "pi"
        "#)
        .unwrap();
        assert_eq!(
            s.source,
            SourceSettings::Stdin {
                format: PcmFormat::F32Le,
                rate: Some(48000),
                channels: 2
            }
        );
        assert_eq!(s.output.health_seconds, None);
        let m = s.mqtt.unwrap();
        assert_eq!(
            (m.qos, m.retain, m.port, m.client_id.as_str()),
            (1, true, 1883, "pi")
        );
        assert_eq!(s.serial.unwrap().baud, 9600);
        assert_eq!(hop_seconds(&s.captions, 5.0, 5.0).unwrap(), 2.5);
    }

    #[test]
    fn hop_defaults_and_limits() {
        let s = v("").unwrap();
        assert_eq!(hop_seconds(&s.captions, 10.0, 5.0).unwrap(), 5.0);
        assert_eq!(hop_seconds(&s.captions, 4.0, 5.0).unwrap(), 4.0);
        let s = v("[captions]\nhop_seconds = 8").unwrap();
        let err = hop_seconds(&s.captions, 5.0, 5.0).unwrap_err().to_string();
        assert!(err.contains("captions.hop_seconds"), "{err}");
        assert!(v("[model]\nbeam = 0")
            .unwrap_err()
            .to_string()
            .contains("model.beam"));
    }

    #[test]
    fn board_defaults_yield_to_explicit_settings() {
        let s = v("board = \"pi-zero-2w\"").unwrap();
        let p = crate::config::board::BoardProfile::by_name("pi-zero-2w").unwrap();
        assert_eq!(s.captions.window_seconds, Some(p.runtime.window_seconds));
        assert_eq!(s.captions.hop_seconds, Some(p.runtime.hop_seconds));
        let s = v("board = \"pi4\"\n[captions]\nhop_seconds = 1.5").unwrap();
        assert_eq!(s.captions.hop_seconds, Some(1.5));
        let err = v("board = \"pi2\"").unwrap_err().to_string();
        assert!(err.contains("`board`") && err.contains("pi4"), "{err}");
    }

    #[test]
    fn no_output_is_refused() {
        assert!(v("[output]\nstdout = \"none\"").is_err());
    }
}
