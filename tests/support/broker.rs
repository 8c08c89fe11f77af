//! A mosquitto broker on a free loopback port (optionally with a TLS listener and a test CA made
//! at test time by the openssl command, [`tls_files`]), and a subscriber collecting what it
//! receives.

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
    start_broker_with(port, "")
}

/// A broker with `extra` appended to its config (more listeners, TLS).
pub fn start_broker_with(port: u16, extra: &str) -> Option<Broker> {
    let Some(bin) = mosquitto() else {
        eprintln!("SKIP: mosquitto is not installed (apt-get install mosquitto)");
        return None;
    };
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n{extra}"),
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
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let (client, mut conn) = Client::new(
        MqttOptions::new(format!("sub-{}-{n}", std::process::id()), "127.0.0.1", port),
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

/// A test PKI made with the openssl command: a CA, a server certificate for 127.0.0.1 and
/// localhost, and a client certificate, all signed by the CA; plus a second, unrelated CA.
pub struct TlsFiles {
    pub dir: tempfile::TempDir,
}

impl TlsFiles {
    pub fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }
}

fn openssl(dir: &Path, args: &[&str]) -> bool {
    Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `None` (with a SKIP message) when the openssl command is missing.
pub fn tls_files() -> Option<TlsFiles> {
    if Command::new("openssl").arg("version").output().is_err() {
        eprintln!("SKIP: the openssl command is not installed (apt-get install openssl)");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    for ca in ["ca", "other-ca"] {
        let (key, pem, subj) = (
            format!("{ca}.key"),
            format!("{ca}.pem"),
            format!("/CN=earshot test {ca}"),
        );
        let mut args = vec!["req", "-x509"];
        args.extend(ec);
        args.extend(["-keyout", &key, "-out", &pem, "-days", "2", "-subj", &subj]);
        args.extend([
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        assert!(openssl(d, &args), "openssl: {ca}");
    }
    for (who, usage) in [("server", "serverAuth"), ("client", "clientAuth")] {
        let (key, csr, pem, ext) = (
            format!("{who}.key"),
            format!("{who}.csr"),
            format!("{who}.pem"),
            format!("{who}.ext"),
        );
        let subj = format!("/CN={who}");
        let mut args = vec!["req"];
        args.extend(ec);
        args.extend(["-keyout", &key, "-out", &csr, "-subj", &subj]);
        assert!(openssl(d, &args), "openssl: {who} key");
        std::fs::write(
            d.join(&ext),
            format!("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage={usage}\n"),
        )
        .unwrap();
        let args = [
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "2",
            "-extfile",
            &ext,
        ];
        assert!(openssl(d, &args), "openssl: sign {who}");
    }
    // mosquitto started as root reads its files after dropping to its own user.
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755));
    for e in std::fs::read_dir(d).unwrap().flatten() {
        let _ = std::fs::set_permissions(e.path(), std::fs::Permissions::from_mode(0o644));
    }
    Some(TlsFiles { dir })
}

/// MQTT output settings for a test broker on `port`: plain TCP, no credentials, QoS 1, not
/// retained, reconnecting every 0.2 s (change fields on the result).
pub fn mqtt_settings(port: u16, topic: &str, client_id: &str) -> earshot::sink::mqtt::MqttSettings {
    earshot::sink::mqtt::MqttSettings {
        host: "127.0.0.1".into(),
        port,
        topic: topic.into(),
        health_topic: None,
        qos: 1,
        retain: false,
        client_id: client_id.into(),
        keep_alive_seconds: 10.0,
        reconnect_seconds: 0.2,
        username: None,
        password: None,
        availability_topic: None,
        discovery: None,
        tls: None,
    }
}
