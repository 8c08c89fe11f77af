//! The subcommands, one file each, each owning its flags: [`caption`], [`info`], [`listen`],
//! [`bench`] (with its report in [`bench_report`]) and [`devices`]. Each `run` returns the
//! process exit status; an error that ends the whole command is a [`Fatal`], mapped by `main`.
//! Every exit code is defined here, and the environment is read here (`$EARSHOT_MODEL`,
//! `$EARSHOT_DECODER_PLAN`, `$EARSHOT_DECODER_CACHE`, and for `listen`'s config
//! `$EARSHOT_MQTT_PASSWORD` or the variable `mqtt.password_env` names, through [`env_var`])
//! and passed down as options.

pub mod bench;
pub mod bench_report;
pub mod caption;
pub mod devices;
pub mod info;
pub mod listen;

use crate::model::resolve::{self, Origin};
use crate::model::tract::DecoderMode;
use crate::model::{LoadOptions, Model, WindowRejected};
use anyhow::{anyhow, Context, Result};
use clap::Args;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Exit status: some inputs failed (or a live run ended with an error).
pub const EXIT_INPUT_FAILED: u8 = 1;
/// Exit status: bad configuration or command line.
pub const EXIT_USAGE: u8 = 2;
/// Exit status: the model could not be found or loaded.
pub const EXIT_MODEL: u8 = 3;

/// An error that ends the command, with its exit status.
#[derive(Debug)]
pub struct Fatal {
    pub code: u8,
    pub error: anyhow::Error,
}

impl Fatal {
    /// Bad configuration or command line ([`EXIT_USAGE`]).
    pub fn usage(error: anyhow::Error) -> Fatal {
        Fatal {
            code: EXIT_USAGE,
            error,
        }
    }

    /// The model could not be found or loaded ([`EXIT_MODEL`]).
    pub fn model(error: anyhow::Error) -> Fatal {
        Fatal {
            code: EXIT_MODEL,
            error,
        }
    }

    /// An input, source or output failed ([`EXIT_INPUT_FAILED`]).
    pub fn input(error: anyhow::Error) -> Fatal {
        Fatal {
            code: EXIT_INPUT_FAILED,
            error,
        }
    }

    /// A model load refused for the window asked for ([`WindowRejected`]) becomes a usage
    /// error naming `key`, the flag or config key that chose the window; any other failure
    /// stays as it is.
    pub fn window_named(self, key: &str) -> Fatal {
        match self.error.downcast_ref::<WindowRejected>() {
            Some(w) => {
                log::debug!("{:#}", self.error);
                let what = match key.starts_with("--") {
                    true => key.to_string(),
                    false => format!("setting `{key}`"),
                };
                Fatal::usage(anyhow!("invalid {what}: {w}"))
            }
            None => self,
        }
    }
}

/// An environment variable for the configuration (`$EARSHOT_MQTT_PASSWORD`, the variable
/// `mqtt.password_env` names): config validation reads the environment only through this.
pub fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// One line of text for an error chain (`a: b: c`), without line breaks.
pub fn one_line(e: &anyhow::Error) -> String {
    let s = format!("{e:#}");
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The `--model` flag, shared by the commands that load a model.
#[derive(Debug, Args)]
pub struct ModelArgs {
    /// Model bundle directory (default: see below)
    #[arg(short, long, value_name = "DIR")]
    pub model: Option<PathBuf>,
}

/// Resolves the bundle (`--model`, else `$EARSHOT_MODEL`, else the default locations) and loads
/// it, with the decoder choices of `$EARSHOT_DECODER_PLAN` and `$EARSHOT_DECODER_CACHE`.
pub fn load_model(flag: Option<&Path>, window: Option<f64>) -> Result<Arc<Model>, Fatal> {
    let env = std::env::var(resolve::MODEL_ENV).ok();
    let exe = std::env::current_exe().ok();
    let (dir, origin) =
        resolve::resolve_with(flag, env.as_deref(), exe.as_deref()).map_err(Fatal::model)?;
    let what = match origin {
        Origin::Flag => "--model",
        Origin::Env => resolve::MODEL_ENV,
        Origin::Default => "default model",
    };
    let opts = LoadOptions {
        window_seconds: window,
        decoder_mode: DecoderMode::from_setting(
            std::env::var("EARSHOT_DECODER_PLAN").ok().as_deref(),
        ),
        decoder_cache: std::env::var("EARSHOT_DECODER_CACHE").as_deref() != Ok("off"),
    };
    let model = Model::load(&dir, &opts)
        .with_context(|| format!("cannot load model ({what} {})", dir.display()))
        .map_err(Fatal::model)?;
    Ok(Arc::new(model))
}

/// Runs `f`, turning a panic into an error so that one bad input cannot end the run.
fn guarded_input<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let msg = crate::audio::decode::panic_message(payload.as_ref());
            Err(anyhow!("internal error: {msg}"))
        }
    }
}
