//! Serial and MQTT sinks against real endpoints: a pseudo-terminal pair and a mosquitto broker
//! started on a free loopback port.

mod support;

use earshot::sink::mqtt::MqttSettings;
use earshot::sink::mqtt::MqttSink;
use earshot::sink::serial::SerialSettings;
use earshot::sink::serial::SerialSink;
use earshot::sink::LineFormat;
use earshot::sink::{Event, EventSink, HealthEvent};
use std::time::Duration;
use support::broker::{free_port, mqtt_settings, start_broker, subscribe};
use support::fake::live_caption;
use support::pty::{pty, read_lines};

fn caption(text: &str, start: f64) -> Event {
    Event::Caption(live_caption(text, start, 1))
}

#[test]
fn serial_text_and_jsonl_over_a_pty() {
    let (master, path) = pty();
    let mut sink = SerialSink::open(&SerialSettings {
        device: path.clone(),
        baud: 115_200,
        format: LineFormat::Text,
        required: true,
    })
    .unwrap();
    sink.emit(&caption("a dog barks", 0.0)).unwrap();
    sink.emit(&Event::Health(HealthEvent::default())).unwrap(); // text: captions only
    sink.emit(&caption("rain falls", 5.0)).unwrap();
    sink.flush().unwrap();
    let lines = read_lines(&master, 2);
    assert_eq!(
        lines,
        vec![
            "[00:00.0–00:10.0] a dog barks",
            "[00:05.0–00:15.0] rain falls"
        ]
    );
    drop(sink); // the port is opened exclusively

    let mut sink = SerialSink::open(&SerialSettings {
        device: path,
        baud: 9600,
        format: LineFormat::Jsonl,
        required: true,
    })
    .unwrap();
    sink.emit(&caption("a bell rings", 2.5)).unwrap();
    sink.emit(&Event::Health(HealthEvent::default())).unwrap();
    let lines = read_lines(&master, 2);
    let v: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(v["caption"], "a bell rings");
    assert_eq!(v["start"], 2.5);
    let h: serde_json::Value = serde_json::from_str(&lines[1]).unwrap();
    assert_eq!(h["event"], "health");
}

#[test]
fn serial_missing_device_is_a_clear_error() {
    let err = SerialSink::open(&SerialSettings {
        device: "/dev/nonexistent-earshot-tty".into(),
        baud: 115_200,
        format: LineFormat::Text,
        required: true,
    })
    .err()
    .expect("must fail")
    .to_string();
    assert!(err.contains("/dev/nonexistent-earshot-tty"), "{err}");
}

// ---------- MQTT ----------

fn settings(port: u16, qos: u8, retain: bool, id: &str) -> MqttSettings {
    MqttSettings {
        qos,
        retain,
        ..mqtt_settings(port, "earshot/test/captions", id)
    }
}

#[test]
fn mqtt_round_trip_through_mosquitto() {
    let Some(broker) = start_broker(free_port()) else {
        return;
    };
    let rx = subscribe(broker.port, "earshot/test/#");
    for qos in [0u8, 1, 2] {
        let mut sink =
            MqttSink::start(&settings(broker.port, qos, false, &format!("es-{qos}"))).unwrap();
        let text = format!("a dog barks at qos {qos}");
        // The caption's clip path travels in the message (issue 15).
        let mut ev = caption(&text, 1.0);
        if let Event::Caption(c) = &mut ev {
            c.clip = Some(format!("/var/lib/earshot/clips/q{qos}.flac"));
        }
        sink.emit(&ev).unwrap();
        sink.emit(&Event::Health(HealthEvent::default())).unwrap();
        sink.flush().unwrap();
        let mut got = Vec::new();
        while got.len() < 2 {
            let m = rx
                .recv_timeout(Duration::from_secs(5))
                .expect("message not received");
            // The availability topic (`online`/`offline`): tests/listen_mqtt_ha.rs.
            if m.0 != "earshot/test/captions/status" {
                got.push(m);
            }
        }
        got.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(got[0].0, "earshot/test/captions");
        let v: serde_json::Value = serde_json::from_slice(&got[0].1).unwrap();
        assert_eq!(v["caption"], text.as_str());
        assert_eq!(v["event"], "caption");
        assert_eq!(
            v["clip"],
            format!("/var/lib/earshot/clips/q{qos}.flac").as_str()
        );
        assert!(v["timestamp"].as_str().unwrap().ends_with('Z'));
        assert_eq!(got[1].0, "earshot/test/captions/health");
        let h: serde_json::Value = serde_json::from_slice(&got[1].1).unwrap();
        assert_eq!(h["event"], "health");
        assert_eq!(h["clips_failed"], 0);
        assert_eq!(sink.dropped(), 0);
    }
}

#[test]
fn mqtt_reconnects_and_retains() {
    let port = free_port();
    // The sink starts while the broker is down: the caption waits in the client queue.
    let mut sink = MqttSink::start(&settings(port, 1, true, "es-reconnect")).unwrap();
    sink.emit(&caption("a bell rings", 0.0)).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let Some(broker) = start_broker(port) else {
        return;
    };
    // Delivered (acknowledged, QoS 1) once the client reconnected.
    sink.flush()
        .expect("queued caption delivered after reconnect");
    // Retained: a subscriber that comes later still gets it.
    let rx = subscribe(broker.port, "earshot/test/captions");
    let (topic, payload, retain) = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(topic, "earshot/test/captions");
    assert!(retain, "retained message expected");
    let v: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(v["caption"], "a bell rings");
}
