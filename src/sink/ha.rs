//! Home Assistant MQTT discovery for the MQTT sink: the retained `config` messages that make
//! one device ("earshot (<host>)") with a "Last caption" sensor — its state the caption text,
//! its attributes the confidence, tags, time and saved clip of the caption JSON — and health
//! sensors read from the health topic: real-time factor, resident memory, CPU temperature and
//! dropped audio (samples and windows). Every entity shares the availability topic, whose
//! retained `online` the sink publishes on each connect and whose `offline` is the MQTT last
//! will (and the last message of a clean shutdown). The messages are pure data built once at
//! start; nothing here talks to the broker.

use serde_json::{json, Value};

/// `mqtt.discovery*` and `mqtt.device_*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovery {
    /// Topic prefix Home Assistant listens on (`homeassistant`).
    pub prefix: String,
    /// Stable id of the device (object ids and `unique_id`s derive from it).
    pub device_id: String,
    pub device_name: String,
}

/// What the availability topic carries.
pub const ONLINE: &str = "online";
pub const OFFLINE: &str = "offline";

/// `[A-Za-z0-9_-]` only (what discovery topics and object ids allow); other characters become
/// `_`, and an empty result is `earshot`.
pub fn sanitize_id(s: &str) -> String {
    let id: String = s
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '_' | '-' => c,
            _ => '_',
        })
        .collect();
    if id.is_empty() {
        "earshot".into()
    } else {
        id
    }
}

/// One sensor of the device.
struct Sensor {
    object: &'static str,
    name: &'static str,
    /// True: from the health topic; false: from the caption topic.
    health: bool,
    template: &'static str,
    extra: Value,
}

fn sensors() -> Vec<Sensor> {
    vec![
        Sensor {
            object: "last_caption",
            name: "Last caption",
            health: false,
            // A state is at most 255 characters in Home Assistant.
            template: "{{ value_json.caption[:255] }}",
            extra: json!({
                "icon": "mdi:ear-hearing",
                "json_attributes_template":
                    "{{ {'confidence': value_json.get('confidence'), 'tags': value_json.get('tags'), \
                     'time': value_json.get('timestamp'), 'clip': value_json.get('clip')} | tojson }}",
            }),
        },
        Sensor {
            object: "rtf",
            name: "Real-time factor",
            health: true,
            template: "{{ value_json.rtf }}",
            extra: json!({"state_class": "measurement", "icon": "mdi:speedometer",
                          "entity_category": "diagnostic"}),
        },
        Sensor {
            object: "rss",
            name: "Memory",
            health: true,
            template: "{{ value_json.rss_bytes }}",
            extra: json!({"state_class": "measurement", "device_class": "data_size",
                          "unit_of_measurement": "B", "entity_category": "diagnostic"}),
        },
        Sensor {
            object: "cpu_temperature",
            name: "CPU temperature",
            health: true,
            template: "{{ value_json.cpu_temp_c }}",
            extra: json!({"state_class": "measurement", "device_class": "temperature",
                          "unit_of_measurement": "°C", "entity_category": "diagnostic"}),
        },
        Sensor {
            object: "dropped_audio",
            name: "Dropped audio",
            health: true,
            template: "{{ value_json.dropped_samples }}",
            extra: json!({"state_class": "total_increasing", "unit_of_measurement": "samples",
                          "icon": "mdi:waveform", "entity_category": "diagnostic"}),
        },
        Sensor {
            object: "dropped_windows",
            name: "Dropped windows",
            health: true,
            template: "{{ value_json.dropped_windows }}",
            extra: json!({"state_class": "total_increasing", "icon": "mdi:skip-forward",
                          "entity_category": "diagnostic"}),
        },
    ]
}

/// The retained discovery messages `(topic, payload)`: one `config` per sensor under
/// `<prefix>/sensor/<device_id>/<object>/config`. No `object_id` (deprecated by Home Assistant
/// 2025.10): entity ids derive from the device and sensor names.
pub fn messages(
    d: &Discovery,
    caption_topic: &str,
    health_topic: &str,
    availability_topic: &str,
) -> Vec<(String, String)> {
    let device = json!({
        "identifiers": [d.device_id],
        "name": d.device_name,
        "manufacturer": "earshot",
        "model": "earshot listen",
        "sw_version": env!("CARGO_PKG_VERSION"),
    });
    sensors()
        .into_iter()
        .map(|s| {
            let topic = if s.health {
                health_topic
            } else {
                caption_topic
            };
            let mut cfg = json!({
                "name": s.name,
                "unique_id": format!("{}_{}", d.device_id, s.object),
                "state_topic": topic,
                "value_template": s.template,
                "availability_topic": availability_topic,
                "payload_available": ONLINE,
                "payload_not_available": OFFLINE,
                "device": device,
                "origin": {"name": "earshot", "sw_version": env!("CARGO_PKG_VERSION")},
            });
            if !s.health {
                cfg["json_attributes_topic"] = json!(topic);
            }
            if let (Value::Object(m), Value::Object(extra)) = (&mut cfg, s.extra) {
                m.extend(extra);
            }
            (
                format!("{}/sensor/{}/{}/config", d.prefix, d.device_id, s.object),
                cfg.to_string(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_device_with_a_caption_sensor_and_health_sensors() {
        let d = Discovery {
            prefix: "homeassistant".into(),
            device_id: sanitize_id("earshot_pi.kitchen"),
            device_name: "earshot (pi)".into(),
        };
        assert_eq!(d.device_id, "earshot_pi_kitchen");
        let m = messages(&d, "e/c", "e/c/health", "e/c/status");
        assert_eq!(m.len(), 6);
        let mut ids = Vec::new();
        for (topic, payload) in &m {
            assert!(topic.starts_with("homeassistant/sensor/earshot_pi_kitchen/"));
            assert!(topic.ends_with("/config"));
            let v: Value = serde_json::from_str(payload).unwrap();
            assert_eq!(v["device"]["identifiers"][0], "earshot_pi_kitchen");
            assert_eq!(v["availability_topic"], "e/c/status");
            ids.push(v["unique_id"].as_str().unwrap().to_string());
        }
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 6, "unique ids");
        let caption: Value = serde_json::from_str(&m[0].1).unwrap();
        assert_eq!(caption["state_topic"], "e/c");
        assert_eq!(caption["json_attributes_topic"], "e/c");
        let attrs = caption["json_attributes_template"].as_str().unwrap();
        for field in ["confidence", "tags", "timestamp", "clip"] {
            assert!(attrs.contains(field), "{attrs}");
        }
    }
}
