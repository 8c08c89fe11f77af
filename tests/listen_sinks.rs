//! Serial and MQTT sinks against real endpoints: a pseudo-terminal pair and a mosquitto broker
//! started on a free loopback port.

mod live_support;

use earshot::config::{LineFormat, MqttSettings, SerialSettings};
use earshot::sink::mqtt::MqttSink;
use earshot::sink::serial::SerialSink;
use earshot::sink::{Event, EventSink, HealthEvent, LiveCaption};
use earshot::{Caption, CaptionEvent, Timings};
use live_support::free_port;
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

fn caption(text: &str, start: f64) -> Event {
    Event::Caption(LiveCaption {
        event: CaptionEvent {
            source: "test".into(),
            start,
            end: start + 10.0,
            caption: Caption {
                text: text.into(),
                token_ids: vec![],
                timings: Timings::default(),
            },
        },
        timestamp: SystemTime::now(),
        window_index: 1,
        latency_ms: 3.0,
        inference_ms: 2.0,
        rtf: 0.4,
        dropped_samples: 0,
        dropped_windows: 0,
        level_dbfs: -20.0,
    })
}

/// A pseudo-terminal pair: (master, slave path). The slave side is what the sink opens.
fn pty() -> (OwnedFd, String) {
    let mut master = 0;
    let mut slave = 0;
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty failed");
    let name = unsafe { std::ffi::CStr::from_ptr(libc::ttyname(slave)) }
        .to_string_lossy()
        .into_owned();
    // Keep the slave open through the master's lifetime? Not needed: the sink opens it by path.
    unsafe { libc::close(slave) };
    (unsafe { OwnedFd::from_raw_fd(master) }, name)
}

/// Reads from the pty master until `n` newline-terminated lines arrived (or a timeout).
fn read_lines(master: &OwnedFd, n: usize) -> Vec<String> {
    let fd = master.try_clone().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut f = std::fs::File::from(fd);
        let mut buf = [0u8; 4096];
        let mut acc = Vec::new();
        while let Ok(k) = f.read(&mut buf) {
            if k == 0 {
                break;
            }
            acc.extend_from_slice(&buf[..k]);
            if acc.iter().filter(|&&b| b == b'\n').count() >= n {
                break;
            }
        }
        let _ = tx.send(acc);
    });
    let acc = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("no data on the pty");
    String::from_utf8_lossy(&acc)
        .lines()
        .map(|l| l.trim_end_matches('\r').to_string())
        .collect()
}

#[test]
fn serial_text_and_jsonl_over_a_pty() {
    let (master, path) = pty();
    let mut sink = SerialSink::open(&SerialSettings {
        device: path.clone(),
        baud: 115_200,
        format: LineFormat::Text,
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
    })
    .err()
    .expect("must fail")
    .to_string();
    assert!(err.contains("/dev/nonexistent-earshot-tty"), "{err}");
}

// ---------- MQTT ----------

const MOSQUITTO: &str = "/usr/sbin/mosquitto";

struct Broker {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn mosquitto() -> Option<String> {
    if Path::new(MOSQUITTO).is_file() {
        return Some(MOSQUITTO.into());
    }
    let which = Command::new("sh")
        .args(["-c", "command -v mosquitto"])
        .output()
        .ok()?;
    let p = String::from_utf8_lossy(&which.stdout).trim().to_string();
    (!p.is_empty()).then_some(p)
}

fn start_broker(port: u16) -> Option<Broker> {
    let Some(bin) = mosquitto() else {
        eprintln!("SKIP: mosquitto is not installed (apt-get install mosquitto)");
        return None;
    };
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"),
    )
    .unwrap();
    let child = Command::new(bin)
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cannot start mosquitto");
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "mosquitto did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(Broker {
        child,
        port,
        _dir: dir,
    })
}

/// Subscribes to `topic` and collects payloads on a thread.
fn subscribe(port: u16, topic: &str) -> std::sync::mpsc::Receiver<(String, Vec<u8>, bool)> {
    use rumqttc::{Client, Event as E, Incoming, MqttOptions, QoS};
    let (client, mut conn) = Client::new(
        MqttOptions::new(format!("sub-{}", std::process::id()), "127.0.0.1", port),
        16,
    );
    client.subscribe(topic, QoS::AtLeastOnce).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _client = client; // keep the client alive
        for ev in conn.iter() {
            match ev {
                Ok(E::Incoming(Incoming::SubAck(_))) => {
                    let _ = ready_tx.send(());
                }
                Ok(E::Incoming(Incoming::Publish(p))) => {
                    if tx
                        .send((p.topic.clone(), p.payload.to_vec(), p.retain))
                        .is_err()
                    {
                        break;
                    }
                }
                Ok(_) => {}
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    });
    ready_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("subscription not acknowledged");
    rx
}

fn settings(port: u16, qos: u8, retain: bool, id: &str) -> MqttSettings {
    MqttSettings {
        host: "127.0.0.1".into(),
        port,
        topic: "earshot/test/captions".into(),
        health_topic: None,
        qos,
        retain,
        client_id: id.into(),
        keep_alive_seconds: 10.0,
        reconnect_seconds: 0.2,
        username: None,
        password: None,
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
        sink.emit(&caption(&text, 1.0)).unwrap();
        sink.emit(&Event::Health(HealthEvent::default())).unwrap();
        sink.flush().unwrap();
        let mut got = Vec::new();
        while got.len() < 2 {
            got.push(
                rx.recv_timeout(Duration::from_secs(5))
                    .expect("message not received"),
            );
        }
        got.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(got[0].0, "earshot/test/captions");
        let v: serde_json::Value = serde_json::from_slice(&got[0].1).unwrap();
        assert_eq!(v["caption"], text.as_str());
        assert_eq!(v["event"], "caption");
        assert!(v["timestamp"].as_str().unwrap().ends_with('Z'));
        assert_eq!(got[1].0, "earshot/test/captions/health");
        let h: serde_json::Value = serde_json::from_slice(&got[1].1).unwrap();
        assert_eq!(h["event"], "health");
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
