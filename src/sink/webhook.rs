//! Webhook sink (`webhook.url`): each caption's JSON (the same object as the JSON lines and
//! MQTT) is POSTed to one URL by a sender thread, so a slow or dead server never slows
//! captioning. Captions wait in a bounded [`Outbox`] of `webhook.queue` messages (the oldest is
//! dropped first when it is full); a POST that fails (connection error, timeout, a status other
//! than 2xx) is retried `webhook.retries` times with exponential back-off from
//! `webhook.backoff_seconds` up to [`MAX_BACKOFF`], then given up. Drops and give-ups are counted
//! ([`EventSink::dropped`], the `dropped_messages` of health reports); failed attempts are
//! counted too ([`EventSink::failures`], added to the `errors` of health reports) and logged
//! with back-off in the log. Health reports are not posted. `flush` waits (bounded) for the queue to empty.

use super::event::{Event, EventSink};
use super::outbox::{Message, Outbox};
use anyhow::{anyhow, Result};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Settings of the webhook (`[webhook]`).
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookSettings {
    /// `http://` or `https://` URL the captions are POSTed to.
    pub url: String,
    /// Whole-request timeout of one POST.
    pub timeout_seconds: f64,
    /// Retries after the first failed POST of a caption (0: one try).
    pub retries: u32,
    /// First back-off; doubles per retry up to [`MAX_BACKOFF`].
    pub backoff_seconds: f64,
    /// Captions waiting at most.
    pub queue: usize,
}

/// The longest wait between two tries.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Default)]
struct Stats {
    /// Captions given up after every retry failed.
    given_up: AtomicU64,
    /// POSTs that failed (each retry counts).
    failed: AtomicU64,
    delivered: AtomicU64,
    stop: AtomicBool,
}

pub struct WebhookSink {
    url: String,
    outbox: Arc<Outbox>,
    stats: Arc<Stats>,
    sender: Option<JoinHandle<()>>,
}

/// `s` seconds as a duration (negative, NaN: zero; beyond `Duration`'s range: an hour) —
/// never a panic, whatever a library caller puts in the settings.
fn seconds(s: f64) -> Duration {
    Duration::try_from_secs_f64(s.max(0.0)).unwrap_or(Duration::from_secs(3600))
}

/// Back-off before retry `n` (1-based): `first * 2^(n-1)`, at most [`MAX_BACKOFF`].
pub fn backoff(first: Duration, n: u32) -> Duration {
    let factor = 2u32.saturating_pow(n.saturating_sub(1).min(16));
    first.saturating_mul(factor).min(MAX_BACKOFF)
}

impl WebhookSink {
    /// Starts the sender thread (nothing is contacted before the first caption).
    pub fn start(s: &WebhookSettings) -> Result<WebhookSink> {
        let outbox = Arc::new(Outbox::new(s.queue));
        let stats = Arc::new(Stats::default());
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(seconds(s.timeout_seconds)))
            .http_status_as_error(true)
            .build()
            .into();
        let (o, st, settings) = (outbox.clone(), stats.clone(), s.clone());
        let sender = std::thread::Builder::new()
            .name("earshot-webhook".into())
            .spawn(move || send_loop(&agent, &settings, &o, &st))?;
        Ok(WebhookSink {
            url: s.url.clone(),
            outbox,
            stats,
            sender: Some(sender),
        })
    }

    /// POSTs that failed so far (each try counts).
    pub fn failed_attempts(&self) -> u64 {
        self.stats.failed.load(Ordering::Relaxed)
    }

    /// Captions delivered so far.
    pub fn delivered(&self) -> u64 {
        self.stats.delivered.load(Ordering::Relaxed)
    }
}

/// Sleeps `d` in small steps; false when `stop` was set meanwhile.
fn pause(d: Duration, stop: &AtomicBool) -> bool {
    let until = Instant::now() + d;
    while Instant::now() < until {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        std::thread::sleep(
            Duration::from_millis(20).min(until.saturating_duration_since(Instant::now())),
        );
    }
    !stop.load(Ordering::Relaxed)
}

fn send_loop(agent: &ureq::Agent, s: &WebhookSettings, outbox: &Outbox, st: &Stats) {
    let first = seconds(s.backoff_seconds);
    while !st.stop.load(Ordering::Relaxed) {
        let Some(m) = outbox.take(Duration::from_millis(50)) else {
            continue;
        };
        let mut tries = 0u32;
        loop {
            let sent = agent
                .post(&s.url)
                .header("Content-Type", "application/json")
                .send(m.payload.as_str());
            match sent {
                Ok(_) => {
                    st.delivered.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Err(e) => {
                    let n = st.failed.fetch_add(1, Ordering::Relaxed) + 1;
                    if n == 1 || n.is_power_of_two() {
                        log::warn!("webhook {}: {e} ({n} failed POSTs so far)", s.url);
                    }
                    tries += 1;
                    if tries > s.retries {
                        st.given_up.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                    if !pause(backoff(first, tries), &st.stop) {
                        break;
                    }
                }
            }
        }
        outbox.handed();
    }
}

impl EventSink for WebhookSink {
    fn name(&self) -> String {
        format!("webhook {}", self.url)
    }

    fn emit(&mut self, event: &Event) -> Result<()> {
        if !matches!(event, Event::Caption(_) | Event::FileCaption(_)) {
            return Ok(());
        }
        let n = self.outbox.dropped();
        self.outbox.push(Message {
            topic: String::new(),
            payload: event.to_json().to_string(),
            expendable: false,
        });
        let dropped = self.outbox.dropped();
        if dropped > n && (dropped == 1 || dropped.is_power_of_two()) {
            log::warn!(
                "webhook queue full: {dropped} captions dropped so far (oldest first; {} is \
                 slow or down)",
                self.url
            );
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        let deadline = Instant::now() + FLUSH_TIMEOUT;
        while !self.outbox.is_empty() {
            if Instant::now() > deadline {
                return Err(anyhow!(
                    "webhook: {} captions not delivered before shutdown",
                    self.outbox.len()
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    fn dropped(&self) -> u64 {
        self.outbox.dropped() + self.stats.given_up.load(Ordering::Relaxed)
    }

    fn failures(&self) -> u64 {
        self.failed_attempts()
    }
}

impl Drop for WebhookSink {
    fn drop(&mut self) {
        self.stats.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.sender.take() {
            // A POST in flight ends within its timeout; do not hang shutdown longer than that.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let s = Duration::from_millis(500);
        assert_eq!(backoff(s, 1), s);
        assert_eq!(backoff(s, 2), Duration::from_secs(1));
        assert_eq!(backoff(s, 3), Duration::from_secs(2));
        assert_eq!(backoff(s, 40), MAX_BACKOFF);
    }
}
