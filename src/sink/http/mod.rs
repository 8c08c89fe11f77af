//! `listen --http ADDR`: a live web page, a JSON API, server-sent events and Prometheus metrics,
//! as one more [`EventSink`]. [`HttpSink::emit`] only updates shared state under a short lock
//! and hands each SSE client its event with a non-blocking send: captioning never waits for a
//! browser.
//!
//! Routes ([`server`]): `/` the page (`page.html`: live captions, recent history, tags with
//! scores, health, saved clips with audio players), `/api/captions?limit=N`, `/api/health`,
//! `/api/events` (SSE: `caption` and `health` events), `/api/clips`, `/clips/<file>` (read-only,
//! from `http.clips_dir`, no path may leave it), `/metrics` ([`metrics`]).
//!
//! Invariants and bounds:
//! - memory is fixed by the settings: the last `http.history` captions, the last health report,
//!   at most `http.clients` SSE clients with at most `http.client_buffer` events queued each,
//!   at most [`server::MAX_CONNECTIONS`] connections (one thread each), request heads of at most
//!   [`server::MAX_HEAD`] bytes;
//! - a client whose buffer is full is dropped (counted), and every socket has read and write
//!   timeouts, so a stalled browser costs a thread for a few seconds at most;
//! - stopping the sink lets every open event stream write the frames already queued for it
//!   (waiting at most [`STREAM_DRAIN`]): the last captions of a run are not lost;
//! - bound to a loopback address by default; any other address needs `http.token`, then every
//!   route asks for it (`Authorization: Bearer …` or `?token=…`, compared in constant time).

pub mod metrics;
pub mod server;

use super::event::{Event, EventSink, HealthEvent};
use super::secret::Secret;
use anyhow::{Context, Result};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Settings of the HTTP server (`[http]`).
#[derive(Debug, Clone, PartialEq)]
pub struct HttpSettings {
    /// `http.listen` / `--http`, e.g. `127.0.0.1:8080`.
    pub addr: SocketAddr,
    /// Required for a non-loopback address; never printed.
    pub token: Option<Secret>,
    /// Captions kept for the page and `/api/captions`.
    pub history: usize,
    /// SSE clients at once.
    pub clients: usize,
    /// Events queued per SSE client; a client that falls this far behind is dropped.
    pub client_buffer: usize,
    /// Saved audio clips served read-only under `/clips/`.
    pub clips_dir: Option<PathBuf>,
}

/// One SSE frame, shared by every client.
pub type Frame = Arc<str>;

#[derive(Default)]
struct State {
    /// Caption JSON objects, oldest first, at most `history`.
    history: VecDeque<Arc<str>>,
    health: Option<HealthEvent>,
    health_json: Option<Arc<str>>,
    clients: Vec<SyncSender<Frame>>,
    dropped_clients: u64,
    captions: u64,
    last_caption: Option<SystemTime>,
}

/// What the sink and the server threads share.
pub struct Shared {
    settings: HttpSettings,
    state: Mutex<State>,
    /// Open connections (each has a thread).
    connections: AtomicUsize,
    /// Open event streams (at most `http.clients`).
    streams: AtomicUsize,
    stop: AtomicBool,
    started: Instant,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The last `limit` captions as a JSON array, oldest first.
    pub fn captions_json(&self, limit: usize) -> String {
        let g = self.lock();
        let skip = g.history.len().saturating_sub(limit);
        let items: Vec<&str> = g.history.iter().skip(skip).map(|s| &**s).collect();
        format!("[{}]", items.join(","))
    }

    /// The last health report (or summary) as JSON; `null` before the first.
    pub fn health_json(&self) -> String {
        self.lock()
            .health_json
            .as_deref()
            .unwrap_or("null")
            .to_string()
    }

    /// Registers an SSE client; `None` when `http.clients` streams are already open. The
    /// caller decrements `streams` when its stream ends.
    fn subscribe(&self) -> Option<std::sync::mpsc::Receiver<Frame>> {
        let mut g = self.lock();
        if self.streams.load(Ordering::Relaxed) >= self.settings.clients {
            return None;
        }
        self.streams.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = std::sync::mpsc::sync_channel(self.settings.client_buffer.max(1));
        if let Some(h) = &g.health_json {
            let _ = tx.try_send(frame("health", h));
        }
        g.clients.push(tx);
        Some(rx)
    }

    fn broadcast(g: &mut State, f: &Frame) {
        let mut dropped = 0;
        g.clients.retain(|c| match c.try_send(f.clone()) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                dropped += 1;
                false
            }
            Err(TrySendError::Disconnected(_)) => false,
        });
        if dropped > 0 {
            g.dropped_clients += dropped;
            log::info!("http: {dropped} slow event-stream client(s) dropped");
        }
    }

    /// Figures for `/metrics` besides the health report.
    fn http_stats(&self) -> metrics::HttpStats {
        let g = self.lock();
        metrics::HttpStats {
            clients: self.streams.load(Ordering::Relaxed) as u64,
            dropped_clients: g.dropped_clients,
            captions: g.captions,
            last_caption_unix: g.last_caption.map(unix_seconds),
            connections: self.connections.load(Ordering::Relaxed) as u64,
            uptime_s: self.started.elapsed().as_secs_f64(),
        }
    }

    /// The Prometheus text of `/metrics`.
    pub fn metrics_text(&self) -> String {
        let health = self.lock().health.clone();
        metrics::render(health.as_ref(), &self.http_stats())
    }
}

/// A comment frame: keeps proxies from closing an idle stream (and probes a client).
fn keepalive() -> Frame {
    Arc::from(": keep-alive\n\n")
}

fn frame(event: &str, data: &str) -> Frame {
    Arc::from(format!("event: {event}\ndata: {data}\n\n"))
}

fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// The HTTP sink: shared state plus the accepting thread.
pub struct HttpSink {
    shared: Arc<Shared>,
    addr: SocketAddr,
    acceptor: Option<JoinHandle<()>>,
}

impl HttpSink {
    /// Binds the address (an address in use is a start-up error) and starts accepting.
    pub fn start(s: &HttpSettings) -> Result<HttpSink> {
        let listener = std::net::TcpListener::bind(s.addr)
            .with_context(|| format!("http.listen {}: cannot listen", s.addr))?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            settings: s.clone(),
            state: Mutex::new(State::default()),
            connections: AtomicUsize::new(0),
            streams: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            started: Instant::now(),
        });
        let acceptor = server::spawn(listener, shared.clone())?;
        log::info!("http: serving on http://{addr}/");
        Ok(HttpSink {
            shared,
            addr,
            acceptor: Some(acceptor),
        })
    }

    /// The bound address (the port when `:0` was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }
}

impl EventSink for HttpSink {
    fn name(&self) -> String {
        format!("http {}", self.addr)
    }

    fn emit(&mut self, event: &Event) -> Result<()> {
        let json: Arc<str> = Arc::from(event.to_json().to_string());
        let mut g = self.shared.lock();
        match event {
            Event::Caption(_) | Event::FileCaption(_) => {
                if g.history.len() >= self.shared.settings.history.max(1) {
                    g.history.pop_front();
                }
                g.history.push_back(json.clone());
                g.captions += 1;
                g.last_caption = Some(SystemTime::now());
                Shared::broadcast(&mut g, &frame("caption", &json));
            }
            // Only `earshot caption` makes these; nothing to keep.
            Event::FileGated(_) => {}
            Event::Health(h) | Event::Summary(h) => {
                g.health = Some(h.clone());
                g.health_json = Some(json.clone());
                Shared::broadcast(&mut g, &frame("health", &json));
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
}

/// How long stopping the sink waits for the event streams to write what is queued for them.
pub const STREAM_DRAIN: Duration = Duration::from_secs(2);

impl Drop for HttpSink {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        // Dropping the senders ends every event stream once it has written its queued frames.
        self.shared.lock().clients.clear();
        if let Some(t) = self.acceptor.take() {
            let _ = t.join(); // polls `stop` every few ms
        }
        // The last captions of a run reach the open pages before the process exits; a stalled
        // client holds this up for at most STREAM_DRAIN.
        let t = Instant::now();
        while self.shared.streams.load(Ordering::Relaxed) > 0 && t.elapsed() < STREAM_DRAIN {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
