//! Caption sinks. Every output (stdout text, JSON lines, and later serial ports or MQTT) is a
//! [`Sink`]; the pipeline hands each finished caption to the sink as soon as it exists.

pub mod jsonl;
pub mod text;

use crate::pipeline::CaptionEvent;
use anyhow::Result;

pub use jsonl::JsonlSink;
pub use text::TextSink;

/// A destination for captions.
pub trait Sink {
    /// Called once per captioned window, in stream order.
    fn caption(&mut self, event: &CaptionEvent) -> Result<()>;
    /// Called at the end of each source and before exit.
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
}

/// What the built-in formats include.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FormatOptions {
    /// Include the generated token ids.
    pub print_ids: bool,
    /// Prefix text lines with the source (when several files are captioned).
    pub show_source: bool,
}

impl<S: Sink + ?Sized> Sink for Box<S> {
    fn caption(&mut self, event: &CaptionEvent) -> Result<()> {
        (**self).caption(event)
    }
    fn flush(&mut self) -> Result<()> {
        (**self).flush()
    }
}
