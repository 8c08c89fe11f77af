//! MQTT done the Home Assistant way, against a real mosquitto: discovery configs and the
//! availability topic (retained), `offline` on a clean stop and as the last will when earshot is
//! killed, and TLS with a CA (and a client certificate) made at test time by openssl.

mod support;

use earshot::sink::ha::Discovery;
use earshot::sink::mqtt::{MqttSettings, MqttSink};
use earshot::sink::tls::TlsSettings;
use earshot::sink::{Event, EventSink};
use std::process::Stdio;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};
use support::broker::{
    free_port, mqtt_settings, start_broker, start_broker_with, subscribe, tls_files,
};
use support::fake::live_caption;

fn caption(text: &str) -> Event {
    let mut c = live_caption(text, 0.0, 1);
    c.event.caption.confidence = Some(0.5);
    Event::Caption(c)
}

fn settings(port: u16, topic: &str, id: &str) -> MqttSettings {
    mqtt_settings(port, topic, id)
}

/// Messages until `n` arrived or `wait` passed.
fn collect(
    rx: &Receiver<(String, Vec<u8>, bool)>,
    n: usize,
    wait: Duration,
) -> Vec<(String, String, bool)> {
    let until = Instant::now() + wait;
    let mut got = Vec::new();
    while got.len() < n {
        let left = until.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((t, p, r)) => got.push((t, String::from_utf8_lossy(&p).into_owned(), r)),
            Err(_) => break,
        }
    }
    got
}

fn wait_connected(sink: &mut MqttSink) {
    // A flushed caption proves the connection (announcements go first).
    sink.emit(&caption("hello")).unwrap();
    sink.flush().expect("delivered");
}

#[test]
fn discovery_and_availability_are_retained_and_offline_follows_a_clean_stop() {
    let Some(broker) = start_broker(free_port()) else {
        return;
    };
    let mut s = settings(broker.port, "earshot/ha/captions", "es-ha");
    s.discovery = Some(Discovery {
        prefix: "homeassistant".into(),
        device_id: "earshot_testhost".into(),
        device_name: "earshot (testhost)".into(),
    });
    let mut sink = MqttSink::start(&s).unwrap();
    wait_connected(&mut sink);
    // Subscribed after publishing: only retained messages can arrive.
    let configs = subscribe(
        broker.port,
        "homeassistant/sensor/earshot_testhost/+/config",
    );
    let got = collect(&configs, 6, Duration::from_secs(5));
    assert_eq!(got.len(), 6, "{got:?}");
    let mut objects = Vec::new();
    for (topic, payload, retained) in &got {
        assert!(retained, "{topic} retained");
        let v: serde_json::Value = serde_json::from_str(payload).unwrap();
        assert_eq!(v["device"]["identifiers"][0], "earshot_testhost");
        assert_eq!(v["availability_topic"], "earshot/ha/captions/status");
        objects.push(topic.split('/').nth(3).unwrap().to_string());
        if topic.contains("last_caption") {
            assert_eq!(v["state_topic"], "earshot/ha/captions");
            assert_eq!(v["json_attributes_topic"], "earshot/ha/captions");
        } else {
            assert_eq!(v["state_topic"], "earshot/ha/captions/health");
        }
    }
    objects.sort();
    assert_eq!(
        objects,
        [
            "cpu_temperature",
            "dropped_audio",
            "dropped_windows",
            "last_caption",
            "rss",
            "rtf"
        ]
    );
    let status = subscribe(broker.port, "earshot/ha/captions/status");
    let got = collect(&status, 1, Duration::from_secs(5));
    assert_eq!(
        got,
        [("earshot/ha/captions/status".into(), "online".into(), true)]
    );
    drop(sink); // a clean stop announces itself
    let got = collect(&status, 1, Duration::from_secs(5));
    assert_eq!(got.len(), 1, "offline after a clean stop");
    assert_eq!(got[0].1, "offline");
    let later = subscribe(broker.port, "earshot/ha/captions/status");
    let got = collect(&later, 1, Duration::from_secs(5));
    assert_eq!(got[0].1, "offline", "retained");
}

#[test]
fn the_last_will_says_offline_when_earshot_is_killed() {
    let Some(bundle) = support::tiny_bundle() else {
        return;
    };
    let Some(broker) = start_broker(free_port()) else {
        return;
    };
    let status = subscribe(broker.port, "earshot/lwt/captions/status");
    let discovery = subscribe(broker.port, "homeassistant/sensor/#");
    let mut child = support::earshot()
        .args(["listen", "--stdin", "--rate", "16000", "--format", "none"])
        .arg("--model")
        .arg(&bundle)
        .args(["--mqtt-host", "127.0.0.1", "--mqtt-port"])
        .arg(broker.port.to_string())
        .args(["--mqtt-topic", "earshot/lwt/captions"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Standard input tells raw PCM from WAV by its first bytes: one second of silence, and the
    // pipe stays open.
    use std::io::Write;
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&vec![0u8; 32_000]).unwrap();
    let got = collect(&status, 1, Duration::from_secs(20));
    assert_eq!(got.len(), 1, "online announced");
    assert_eq!(got[0].1, "online");
    let configs = collect(&discovery, 6, Duration::from_secs(5));
    assert_eq!(configs.len(), 6, "discovery on by default");
    let v: serde_json::Value = serde_json::from_str(&configs[0].1).unwrap();
    assert!(v["device"]["identifiers"][0]
        .as_str()
        .unwrap()
        .starts_with("earshot_"));
    child.kill().unwrap(); // SIGKILL: no chance to say goodbye
    let _ = child.wait();
    drop(stdin);
    let got = collect(&status, 1, Duration::from_secs(10));
    assert_eq!(got.len(), 1, "the broker publishes the last will");
    assert_eq!(
        got[0],
        (
            "earshot/lwt/captions/status".into(),
            "offline".into(),
            false
        )
    );
    let later = subscribe(broker.port, "earshot/lwt/captions/status");
    let got = collect(&later, 1, Duration::from_secs(5));
    assert_eq!(
        (got[0].1.as_str(), got[0].2),
        ("offline", true),
        "the will is retained"
    );
}

#[test]
fn tls_with_a_test_ca_and_a_client_certificate() {
    let Some(pki) = tls_files() else {
        return;
    };
    let tls_port = free_port();
    let extra = format!(
        "listener {tls_port} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate true\n",
        pki.path("ca.pem").display(),
        pki.path("server.pem").display(),
        pki.path("server.key").display(),
    );
    let Some(broker) = start_broker_with(free_port(), &extra) else {
        return;
    };
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", tls_port)).is_err() {
        assert!(t.elapsed() < Duration::from_secs(10), "TLS listener not up");
        std::thread::sleep(Duration::from_millis(20));
    }
    let rx = subscribe(broker.port, "earshot/tls/captions");
    let mut s = settings(tls_port, "earshot/tls/captions", "es-tls");
    s.tls = Some(TlsSettings {
        ca_file: Some(pki.path("ca.pem")),
        client_cert: Some(pki.path("client.pem")),
        client_key: Some(pki.path("client.key")),
    });
    let mut sink = MqttSink::start(&s).unwrap();
    sink.emit(&caption("a dog barks over TLS")).unwrap();
    sink.flush().expect("delivered over TLS");
    let got = collect(&rx, 1, Duration::from_secs(5));
    let v: serde_json::Value = serde_json::from_str(&got[0].1).unwrap();
    assert_eq!(v["caption"], "a dog barks over TLS");
    drop(sink);

    // A server certificate from another CA is refused: nothing is delivered.
    let mut bad = s.clone();
    bad.client_id = "es-tls-bad".into();
    bad.tls = Some(TlsSettings {
        ca_file: Some(pki.path("other-ca.pem")),
        client_cert: Some(pki.path("client.pem")),
        client_key: Some(pki.path("client.key")),
    });
    let mut sink = MqttSink::start(&bad).unwrap();
    sink.emit(&caption("must not arrive")).unwrap();
    assert!(sink.flush().is_err(), "an untrusted server gets nothing");
    assert!(collect(&rx, 1, Duration::from_millis(500)).is_empty());
    drop(sink);

    // Without a client certificate the broker (require_certificate) refuses the connection.
    let mut anon = s.clone();
    anon.client_id = "es-tls-anon".into();
    anon.tls = Some(TlsSettings {
        ca_file: Some(pki.path("ca.pem")),
        ..Default::default()
    });
    let mut sink = MqttSink::start(&anon).unwrap();
    sink.emit(&caption("must not arrive either")).unwrap();
    assert!(sink.flush().is_err());
    assert!(collect(&rx, 1, Duration::from_millis(500)).is_empty());

    // Unreadable TLS files are start-up errors naming the key.
    let mut missing = s.clone();
    missing.tls = Some(TlsSettings {
        ca_file: Some(pki.path("server.key")), // not a certificate
        ..Default::default()
    });
    let err = MqttSink::start(&missing)
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("mqtt.ca_file"), "{err}");
}
