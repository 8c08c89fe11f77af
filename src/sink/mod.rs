//! Stage 5, where captions go — for `earshot caption` and `earshot listen` alike: one event
//! family and one sink trait ([`event`]), every line shape once ([`format`]), line sinks for
//! stdout and files ([`line`]), a serial port ([`serial`]), MQTT ([`mqtt`], with Home Assistant
//! discovery in [`ha`] and TLS in [`tls`]), a live web page with a JSON API, server-sent events
//! and Prometheus metrics ([`http`]) and a webhook ([`webhook`]). Passwords and tokens are
//! [`Secret`]s that never print ([`secret`]). A new output is one more [`EventSink`] here.

pub mod event;
pub mod format;
pub mod ha;
pub mod http;
pub mod line;
pub mod mqtt;
pub mod outbox;
pub mod secret;
pub mod serial;
pub mod tls;
pub mod webhook;

pub use event::{CaptionEvent, Event, EventSink, GatedWindow, HealthEvent, LiveCaption};
pub use format::{FormatOptions, LineFormat};
pub use line::{file_sink, LineSink};
pub use secret::Secret;
