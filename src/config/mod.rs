//! `earshot listen` configuration: the TOML file shape ([`file::RawConfig`]) merged with the
//! command-line overrides, then validated by [`validate::validate`] (one function per section)
//! into the [`settings::Settings`] types. Board profiles ([`board`]) are one more layer of
//! defaults under both. The file and the CLI go through the same validation, and every error
//! names the offending key (`section.key`). [`show`] prints the effective settings for
//! `--check-config`, with secrets redacted.

pub mod board;
pub mod file;
pub mod settings;
pub mod show;
pub mod validate;

pub use file::RawConfig;
pub use settings::{CaptionSettings, OutputSettings, Settings, SourceSettings};
pub use validate::validate;
