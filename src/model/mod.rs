//! Model bundles: manifest, loading and validation, inference backends, default resolution.

pub mod backend;
pub mod bundle;
pub mod cached;
pub mod confidence;
pub mod manifest;
pub mod repetition;
pub mod resolve;
pub mod tags;
pub mod tract;

pub use backend::{EncoderDecoder, Logits, Memory};
pub use bundle::{LoadOptions, Model, ModelSummary};
pub use manifest::Manifest;
