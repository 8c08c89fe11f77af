//! `[output]`, `[serial]` and `[mqtt]`: where captions go.

use super::rules::{bad, line_format, non_empty, positive, ranged_int};
use super::rules::{DEFAULT_HEALTH_SECONDS, DEFAULT_MQTT_PORT, DEFAULT_MQTT_TOPIC};
use crate::config::file::{RawMqtt, RawOutput, RawSerial};
use crate::config::settings::OutputSettings;
use crate::sink::format::LineFormat;
use crate::sink::mqtt::MqttSettings;
use crate::sink::serial::SerialSettings;
use anyhow::Result;

/// `[output]`.
pub(super) fn output(o: RawOutput) -> Result<OutputSettings> {
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
pub(super) fn serial(sr: RawSerial) -> Result<Option<SerialSettings>> {
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
pub(super) fn mqtt(m: RawMqtt) -> Result<Option<MqttSettings>> {
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
