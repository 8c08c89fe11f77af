//! Stage 3, a window → a caption: the bundle contract ([`manifest`], with the front-end and
//! search sections in [`frontend::spec`] and [`search`]), loading and validation ([`bundle`],
//! [`integrity`] for which files it may read and their sha256s, [`resolve`] for the default
//! location), the inference backends ([`backend`] trait, [`tract`], the key/value-cached decoder
//! [`cached`]), the log-mel [`frontend`], the token [`search`] (with its [`repetition`] control)
//! and the per-stream [`captioner`] (with the caption's [`confidence`] and the clip's [`tags`]).
//!
//! The loaded [`Model`] is the shared read-only context (one per process, behind an `Arc`); a
//! [`Captioner`] is the mutable per-stream state over it. Nothing here reads the environment:
//! the commands pass every choice down in [`LoadOptions`].

pub mod backend;
pub mod bundle;
pub mod cached;
pub mod captioner;
pub mod confidence;
pub mod frontend;
pub mod integrity;
pub mod manifest;
pub mod repetition;
pub mod resolve;
pub mod search;
pub mod tags;
pub mod tract;

pub use backend::{EncoderDecoder, Logits, Memory};
pub use bundle::{LoadOptions, Model, ModelSummary, WindowRejected};
pub use captioner::{Caption, Captioner, Timings, WindowCaptioner};
pub use manifest::Manifest;
