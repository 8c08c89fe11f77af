//! Stage 5, where captions go — for `earshot caption` and `earshot listen` alike: one event
//! family and one sink trait ([`event`]), every line shape once ([`format`]), line sinks for
//! stdout and files ([`line`]), a serial port ([`serial`]) and MQTT ([`mqtt`]), whose password
//! is a [`Secret`] that never prints ([`secret`]). A new output (HTTP, audio clips, ...) is one
//! more [`EventSink`] here.

pub mod event;
pub mod format;
pub mod line;
pub mod mqtt;
pub mod outbox;
pub mod secret;
pub mod serial;

pub use event::{CaptionEvent, Event, EventSink, GatedWindow, HealthEvent, LiveCaption};
pub use format::{FormatOptions, LineFormat};
pub use line::{file_sink, LineSink};
pub use secret::Secret;
