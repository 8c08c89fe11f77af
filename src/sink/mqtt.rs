//! MQTT sink (rumqttc): captions as JSON to `mqtt.topic`, health and summary to
//! `mqtt.health_topic` (default `<topic>/health`). A background thread drives the connection and
//! reconnects every `reconnect_seconds` after an error. Publishing never blocks the pipeline: when
//! the client's queue is full the message is dropped and counted. `flush` waits (bounded) until
//! every queued message has been written (QoS 0) or acknowledged (QoS 1/2).

use super::event::{Event, EventSink};
use super::secret::Secret;
use anyhow::{anyhow, Result};
use rumqttc::{Client, Event as MqEvent, Incoming, MqttOptions, Outgoing, QoS};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Settings of the MQTT sink (`[mqtt]`).
#[derive(Debug, Clone, PartialEq)]
pub struct MqttSettings {
    pub host: String,
    pub port: u16,
    pub topic: String,
    pub health_topic: Option<String>,
    pub qos: u8,
    pub retain: bool,
    pub client_id: String,
    pub keep_alive_seconds: f64,
    pub reconnect_seconds: f64,
    pub username: Option<String>,
    /// From `mqtt.password`, `mqtt.password_file` or an environment variable; never printed.
    pub password: Option<Secret>,
}

impl MqttSettings {
    /// The topic of health reports and the summary: `health_topic`, else `<topic>/health`.
    pub fn effective_health_topic(&self) -> String {
        self.health_topic
            .clone()
            .unwrap_or_else(|| format!("{}/health", self.topic))
    }
}

/// Messages the client may hold while the broker is unreachable.
const QUEUE: usize = 64;
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Default)]
struct Progress {
    queued: AtomicU64,
    done: AtomicU64,
    dropped: AtomicU64,
    connected: AtomicBool,
    stop: AtomicBool,
}

pub struct MqttSink {
    client: Client,
    settings: MqttSettings,
    health_topic: String,
    qos: QoS,
    progress: Arc<Progress>,
    thread: Option<JoinHandle<()>>,
}

fn qos(level: u8) -> QoS {
    match level {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

impl MqttSink {
    /// Starts the client. Connecting happens in the background; an unreachable broker is logged
    /// and retried, not fatal.
    pub fn start(s: &MqttSettings) -> Result<MqttSink> {
        let mut opts = MqttOptions::new(s.client_id.clone(), s.host.clone(), s.port);
        opts.set_keep_alive(Duration::from_secs_f64(s.keep_alive_seconds));
        if let Some(user) = &s.username {
            let password = s.password.as_ref().map(Secret::expose).unwrap_or_default();
            opts.set_credentials(user.clone(), password);
        }
        let (client, mut connection) = Client::new(opts, QUEUE);
        let progress = Arc::new(Progress::default());
        let p = progress.clone();
        let level = s.qos;
        let reconnect = Duration::from_secs_f64(s.reconnect_seconds);
        let endpoint = format!("{}:{}", s.host, s.port);
        let thread = std::thread::Builder::new()
            .name("earshot-mqtt".into())
            .spawn(move || {
                let mut last_error: Option<String> = None;
                for ev in connection.iter() {
                    match ev {
                        Ok(MqEvent::Incoming(Incoming::ConnAck(_))) => {
                            p.connected.store(true, Ordering::Relaxed);
                            log::info!("MQTT connected to {endpoint}");
                            last_error = None;
                        }
                        Ok(MqEvent::Outgoing(Outgoing::Publish(_))) if level == 0 => {
                            p.done.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(MqEvent::Incoming(Incoming::PubAck(_))) if level == 1 => {
                            p.done.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(MqEvent::Incoming(Incoming::PubComp(_))) if level == 2 => {
                            p.done.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(MqEvent::Outgoing(Outgoing::Disconnect)) => {
                            p.connected.store(false, Ordering::Relaxed);
                        }
                        Ok(_) => {}
                        Err(e) => {
                            p.connected.store(false, Ordering::Relaxed);
                            if p.stop.load(Ordering::Relaxed) {
                                break;
                            }
                            let msg = e.to_string();
                            if last_error.as_deref() != Some(msg.as_str()) {
                                log::warn!(
                                    "MQTT {endpoint}: {msg}; retrying every {:.0} s",
                                    reconnect.as_secs_f64()
                                );
                                last_error = Some(msg);
                            }
                            // Sleep in small steps so shutdown is not delayed.
                            let until = Instant::now() + reconnect;
                            while Instant::now() < until && !p.stop.load(Ordering::Relaxed) {
                                std::thread::sleep(Duration::from_millis(50));
                            }
                            if p.stop.load(Ordering::Relaxed) {
                                break;
                            }
                        }
                    }
                }
            })?;
        let health_topic = s.effective_health_topic();
        Ok(MqttSink {
            client,
            settings: s.clone(),
            health_topic,
            qos: qos(s.qos),
            progress,
            thread: Some(thread),
        })
    }

    /// Messages dropped because the client queue was full.
    pub fn dropped(&self) -> u64 {
        self.progress.dropped.load(Ordering::Relaxed)
    }
}

impl EventSink for MqttSink {
    fn name(&self) -> String {
        format!(
            "mqtt {}:{} {}",
            self.settings.host, self.settings.port, self.settings.topic
        )
    }

    fn emit(&mut self, event: &Event) -> Result<()> {
        let topic = match event {
            Event::Caption(_) | Event::FileCaption(_) => &self.settings.topic,
            Event::Health(_) | Event::Summary(_) => &self.health_topic,
        };
        let payload = event.to_json().to_string();
        match self
            .client
            .try_publish(topic.as_str(), self.qos, self.settings.retain, payload)
        {
            Ok(()) => {
                self.progress.queued.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                self.progress.dropped.fetch_add(1, Ordering::Relaxed);
                Err(anyhow!("MQTT message dropped ({e})"))
            }
        }
    }

    fn flush(&mut self) -> Result<()> {
        let deadline = Instant::now() + FLUSH_TIMEOUT;
        let queued = self.progress.queued.load(Ordering::Relaxed);
        while self.progress.done.load(Ordering::Relaxed) < queued {
            if Instant::now() > deadline {
                return Err(anyhow!(
                    "MQTT: {} of {queued} messages not delivered before shutdown",
                    queued - self.progress.done.load(Ordering::Relaxed)
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }
}

impl Drop for MqttSink {
    fn drop(&mut self) {
        self.progress.stop.store(true, Ordering::Relaxed);
        let _ = self.client.disconnect();
        if let Some(t) = self.thread.take() {
            // The connection thread ends once the disconnect is sent or its retry sleep sees
            // `stop`; do not hang shutdown on it forever.
            let deadline = Instant::now() + Duration::from_secs(2);
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if t.is_finished() {
                let _ = t.join();
            }
        }
    }
}
