//! earshot: offline audio captioning for small boards.
//!
//! Data flow (one module per stage):
//! source ([`audio::decode`]) → resample ([`audio::resample`]) → windows ([`audio::window`]) →
//! log-mel ([`frontend`]) → encoder → decoder/search ([`model`], [`search`]) → caption
//! ([`captioner`]) → sink ([`output`]). [`pipeline`] wires the stages for one stream.
//!
//! `earshot listen` (live captioning): [`source`] → [`ring`] → [`live`] (processing and inference
//! threads) → [`sink`]s, configured by [`config`], with [`health`] reports.

pub mod audio;
pub mod board;
pub mod captioner;
pub mod cli;
pub mod commands;
pub mod config;
pub mod frontend;
pub mod health;
pub mod live;
pub mod model;
pub mod output;
pub mod pipeline;
pub mod ring;
pub mod search;
pub mod sink;
pub mod source;

pub use captioner::{Caption, Captioner, Timings};
pub use model::{LoadOptions, Model};
pub use pipeline::{caption_file, CaptionEvent, WindowStream};
