//! A mosquitto broker on a free loopback port, and a subscriber collecting what it receives.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port on the loopback interface.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

const MOSQUITTO: &str = "/usr/sbin/mosquitto";

pub struct Broker {
    child: Child,
    pub port: u16,
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

pub fn start_broker(port: u16) -> Option<Broker> {
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
pub fn subscribe(port: u16, topic: &str) -> std::sync::mpsc::Receiver<(String, Vec<u8>, bool)> {
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
