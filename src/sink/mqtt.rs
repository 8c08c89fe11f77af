//! MQTT sink (rumqttc): captions as JSON to `mqtt.topic`, health and summary to
//! `mqtt.health_topic` (default `<topic>/health`). A background thread drives the connection and
//! reconnects every `reconnect_seconds` after an error. Publishing never blocks the pipeline: each
//! message goes into a bounded [`Outbox`] of [`QUEUE`] messages, which a sender thread hands to
//! the client while it is connected. When the outbox is full, captions are kept over health
//! reports and the oldest is dropped first, counted ([`EventSink::dropped`], the
//! `dropped_messages` of health reports and the summary). `flush` waits (bounded) until every
//! queued message has been written (QoS 0) or acknowledged (QoS 1/2).
//!
//! Home Assistant: on every connect the sender first publishes, retained, the discovery configs
//! ([`super::ha`], when `mqtt.discovery` is on) and `online` on the availability topic; the
//! last will (retained `offline` on that topic) tells the broker to announce a crash, and a
//! clean shutdown publishes `offline` itself. TLS (`mqtt.tls`, [`super::tls`]) uses rustls.

use super::event::{Event, EventSink};
use super::ha::{self, Discovery, OFFLINE, ONLINE};
use super::outbox::{Message, Outbox};
use super::secret::Secret;
use super::tls::{self, TlsSettings};
use anyhow::{anyhow, Result};
use rumqttc::{Client, Event as MqEvent, Incoming, LastWill, MqttOptions, Outgoing, QoS};
use rumqttc::{TlsConfiguration, Transport};
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
    /// `mqtt.availability_topic` (default `<topic>/status`): retained `online` / `offline`.
    pub availability_topic: Option<String>,
    /// Home Assistant discovery (`None`: `mqtt.discovery = false`).
    pub discovery: Option<Discovery>,
    /// `None`: plain TCP.
    pub tls: Option<TlsSettings>,
}

impl MqttSettings {
    /// The topic of health reports and the summary: `health_topic`, else `<topic>/health`.
    pub fn effective_health_topic(&self) -> String {
        self.health_topic
            .clone()
            .unwrap_or_else(|| format!("{}/health", self.topic))
    }

    /// The availability topic: `availability_topic`, else `<topic>/status`.
    pub fn effective_availability_topic(&self) -> String {
        self.availability_topic
            .clone()
            .unwrap_or_else(|| format!("{}/status", self.topic))
    }

    /// What the sender publishes, retained, on each connect: the discovery configs, then
    /// `online` on the availability topic.
    pub fn announcements(&self) -> Vec<(String, String)> {
        let availability = self.effective_availability_topic();
        let mut out = match &self.discovery {
            Some(d) => ha::messages(
                d,
                &self.topic,
                &self.effective_health_topic(),
                &availability,
            ),
            None => Vec::new(),
        };
        out.push((availability, ONLINE.to_string()));
        out
    }

    /// The client options: identity, keep-alive, credentials, last will and TLS (whose files
    /// are read here: `--check-config` calls this too).
    pub fn options(&self) -> Result<MqttOptions> {
        let mut opts = MqttOptions::new(self.client_id.clone(), self.host.clone(), self.port);
        opts.set_keep_alive(Duration::from_secs_f64(self.keep_alive_seconds));
        if let Some(user) = &self.username {
            let password = self
                .password
                .as_ref()
                .map(Secret::expose)
                .unwrap_or_default();
            opts.set_credentials(user.clone(), password);
        }
        opts.set_last_will(LastWill::new(
            self.effective_availability_topic(),
            OFFLINE,
            QoS::AtLeastOnce,
            true,
        ));
        if let Some(t) = &self.tls {
            let config = tls::client_config("mqtt", t)?;
            opts.set_transport(Transport::Tls(TlsConfiguration::Rustls(config)));
        }
        Ok(opts)
    }
}

/// Messages the outbox holds while the broker is unreachable.
pub const QUEUE: usize = 64;
/// Requests the client's own channel holds (filled only while connected).
const CLIENT_CHANNEL: usize = 16;
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Default)]
struct Progress {
    /// Handed to the client.
    queued: AtomicU64,
    done: AtomicU64,
    connected: AtomicBool,
    /// Set on each ConnAck: the sender publishes the announcements before anything else.
    announce: AtomicBool,
    stop: AtomicBool,
}

pub struct MqttSink {
    client: Client,
    settings: MqttSettings,
    health_topic: String,
    progress: Arc<Progress>,
    outbox: Arc<Outbox>,
    thread: Option<JoinHandle<()>>,
    sender: Option<JoinHandle<()>>,
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
        let opts = s.options()?;
        let (client, mut connection) = Client::new(opts, CLIENT_CHANNEL);
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
                            p.announce.store(true, Ordering::Relaxed);
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
        let outbox = Arc::new(Outbox::new(QUEUE));
        let sender = spawn_sender(
            client.clone(),
            Publish {
                qos: qos(s.qos),
                retain: s.retain,
                announcements: s.announcements(),
            },
            &outbox,
            &progress,
        )?;
        let health_topic = s.effective_health_topic();
        Ok(MqttSink {
            client,
            settings: s.clone(),
            health_topic,
            progress,
            outbox,
            thread: Some(thread),
            sender: Some(sender),
        })
    }
}

/// How the sender publishes.
struct Publish {
    qos: QoS,
    retain: bool,
    /// Retained messages sent first on every connect ([`MqttSettings::announcements`]).
    announcements: Vec<(String, String)>,
}

/// The sender thread: on each connect publishes the announcements, then moves messages from the
/// outbox to the client while it is connected (so that, while the broker is away, everything
/// waits in the outbox and its drop policy holds).
fn spawn_sender(
    client: Client,
    publish: Publish,
    outbox: &Arc<Outbox>,
    p: &Arc<Progress>,
) -> Result<JoinHandle<()>> {
    let Publish {
        qos,
        retain,
        announcements,
    } = publish;
    let (outbox, p) = (outbox.clone(), p.clone());
    Ok(std::thread::Builder::new()
        .name("earshot-mqtt-send".into())
        .spawn(move || {
            while !p.stop.load(Ordering::Relaxed) {
                if !p.connected.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
                if p.announce.swap(false, Ordering::Relaxed) {
                    for (topic, payload) in &announcements {
                        if client
                            .publish(topic.clone(), qos, true, payload.clone())
                            .is_ok()
                        {
                            p.queued.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                let Some(m) = outbox.take(Duration::from_millis(50)) else {
                    continue;
                };
                let sent = client.publish(m.topic, qos, retain, m.payload);
                if sent.is_ok() {
                    p.queued.fetch_add(1, Ordering::Relaxed);
                }
                outbox.handed();
                if sent.is_err() {
                    break; // the connection is gone for good (shutdown)
                }
            }
        })?)
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
            Event::Caption(_) | Event::FileCaption(_) | Event::FileGated(_) => &self.settings.topic,
            Event::Health(_) | Event::Summary(_) => &self.health_topic,
        };
        let before = self.outbox.dropped();
        let kept = self.outbox.push(Message {
            topic: topic.clone(),
            payload: event.to_json().to_string(),
            expendable: matches!(event, Event::Health(_)),
        });
        let dropped = self.outbox.dropped() - before;
        if dropped > 0 {
            let n = self.outbox.dropped();
            if n == 1 || n.is_power_of_two() {
                log::warn!(
                    "MQTT outbox full ({QUEUE} messages, broker unreachable): {} dropped so far, \
                     oldest first, health reports before captions",
                    n
                );
            }
        }
        match kept {
            true => Ok(()),
            false => Err(anyhow!("MQTT outbox full: health report dropped")),
        }
    }

    fn flush(&mut self) -> Result<()> {
        let deadline = Instant::now() + FLUSH_TIMEOUT;
        loop {
            let queued = self.progress.queued.load(Ordering::Relaxed);
            let done = self.progress.done.load(Ordering::Relaxed);
            let waiting = self.outbox.len();
            if waiting == 0 && done >= queued {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(anyhow!(
                    "MQTT: {} messages not delivered before shutdown",
                    waiting as u64 + queued.saturating_sub(done)
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn dropped(&self) -> u64 {
        self.outbox.dropped()
    }
}

impl Drop for MqttSink {
    fn drop(&mut self) {
        self.progress.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.sender.take() {
            let _ = t.join(); // it wakes every 50 ms and sees `stop`
        }
        // A clean stop is announced (the last will is for crashes): queued before the
        // disconnect, so the event loop sends it first.
        if self.progress.connected.load(Ordering::Relaxed) {
            let topic = self.settings.effective_availability_topic();
            let _ = self
                .client
                .try_publish(topic, QoS::AtLeastOnce, true, OFFLINE);
        }
        let _ = self.client.try_disconnect();
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
