//! Helpers for the `earshot listen` tests: a fake model, an in-memory sink, signals.
#![allow(dead_code)]

use anyhow::Result;
use earshot::live::WindowCaptioner;
use earshot::sink::{Event, EventSink};
use earshot::{Caption, Timings};
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A fake model: names the dominant tone of the real part of a window from its zero-crossing
/// rate ("a low tone" below 700 Hz, "a high tone" above), optionally sleeping to be slow.
pub struct FakeModel {
    pub rate: u32,
    pub window: usize,
    pub delay: Duration,
    /// Append the call number, so every caption differs.
    pub numbered: bool,
    pub calls: usize,
}

impl FakeModel {
    pub fn new(rate: u32, window_seconds: f64) -> FakeModel {
        FakeModel {
            rate,
            window: (window_seconds * f64::from(rate)).round() as usize,
            delay: Duration::ZERO,
            numbered: false,
            calls: 0,
        }
    }
}

/// Zero-crossing frequency estimate in Hz.
pub fn zcr_hz(x: &[f32], rate: u32) -> f64 {
    if x.len() < 2 {
        return 0.0;
    }
    let crossings = x
        .windows(2)
        .filter(|w| (w[0] >= 0.0) != (w[1] >= 0.0))
        .count();
    crossings as f64 * f64::from(rate) / (2.0 * x.len() as f64)
}

impl WindowCaptioner for FakeModel {
    fn window_samples(&self) -> usize {
        self.window
    }

    fn caption(&mut self, window: &[f32], valid: usize) -> Result<Caption> {
        anyhow::ensure!(
            window.len() == self.window,
            "wrong window length {}",
            window.len()
        );
        self.calls += 1;
        if !self.delay.is_zero() {
            std::thread::sleep(self.delay);
        }
        // Only the loud part counts (a window may be half silence).
        let loud: Vec<f32> = window[..valid]
            .iter()
            .copied()
            .filter(|s| s.abs() > 1e-3)
            .collect();
        let f = zcr_hz(&loud, self.rate);
        let mut text = if f < 700.0 {
            "a low tone"
        } else {
            "a high tone"
        }
        .to_string();
        if self.numbered {
            text.push_str(&format!(" number {}", self.calls));
        }
        Ok(Caption {
            text,
            token_ids: vec![],
            timings: Timings::default(),
            ..Default::default()
        })
    }
}

/// Collects events in memory.
#[derive(Clone, Default)]
pub struct MemorySink {
    pub events: Arc<Mutex<Vec<Event>>>,
    pub flushed: Arc<Mutex<bool>>,
}

impl EventSink for MemorySink {
    fn name(&self) -> String {
        "memory".into()
    }
    fn emit(&mut self, event: &Event) -> Result<()> {
        self.events.lock().unwrap().push(event.clone());
        Ok(())
    }
    fn flush(&mut self) -> Result<()> {
        *self.flushed.lock().unwrap() = true;
        Ok(())
    }
}

impl MemorySink {
    pub fn captions(&self) -> Vec<earshot::sink::LiveCaption> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                Event::Caption(c) => Some(c.clone()),
                _ => None,
            })
            .collect()
    }
    pub fn summary(&self) -> Option<earshot::sink::HealthEvent> {
        self.events.lock().unwrap().iter().find_map(|e| match e {
            Event::Summary(h) => Some(h.clone()),
            _ => None,
        })
    }
}

/// `seconds` of a sine at `freq` and amplitude `amp` (0 amplitude = digital silence).
pub fn tone(rate: u32, seconds: f64, freq: f64, amp: f32) -> Vec<f32> {
    let n = (seconds * f64::from(rate)).round() as usize;
    (0..n)
        .map(|i| {
            amp * (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin() as f32
        })
        .collect()
}

/// 0–4 s low tone (440 Hz), 4–8 s silence, 8–12 s high tone (1500 Hz).
pub fn three_segments(rate: u32) -> Vec<f32> {
    let mut x = tone(rate, 4.0, 440.0, 0.5);
    x.extend(tone(rate, 4.0, 0.0, 0.0));
    x.extend(tone(rate, 4.0, 1500.0, 0.5));
    x
}

/// A free TCP port on the loopback interface.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

// ---------- a mosquitto broker on a free loopback port ----------

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

// ---------- a pseudo-terminal pair for the serial sink ----------

/// A pseudo-terminal pair: (master, slave path). The slave side is what the sink opens.
pub fn pty() -> (OwnedFd, String) {
    let (master, slave, name) = pty_pair();
    drop(slave);
    (master, name)
}

/// A pseudo-terminal pair keeping the slave side open too (so reading the master blocks until
/// data comes instead of failing while the program under test has not opened it yet).
pub fn pty_pair() -> (OwnedFd, OwnedFd, String) {
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
    unsafe {
        (
            OwnedFd::from_raw_fd(master),
            OwnedFd::from_raw_fd(slave),
            name,
        )
    }
}

/// Reads from the pty master until `n` newline-terminated lines arrived (or a timeout).
pub fn read_lines(master: &OwnedFd, n: usize) -> Vec<String> {
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

/// Everything written to the pty until every slave fd is closed (or `timeout`).
pub fn collect_pty(master: &OwnedFd, timeout: Duration) -> std::sync::mpsc::Receiver<Vec<u8>> {
    let fd = master.try_clone().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut f = std::fs::File::from(fd);
        let mut acc = Vec::new();
        let mut buf = [0u8; 4096];
        let t = Instant::now();
        // EIO once the slave side is closed by everyone.
        while let Ok(k) = f.read(&mut buf) {
            if k == 0 || t.elapsed() > timeout {
                break;
            }
            acc.extend_from_slice(&buf[..k]);
        }
        let _ = tx.send(acc);
    });
    rx
}
