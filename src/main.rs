//! `earshot` binary: parse the command line, set up logging, dispatch, report errors as one
//! line on stderr with a meaningful exit status (see `earshot --help`).

use clap::Parser;
use earshot::cli::{Cli, Command};
use earshot::commands;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    env_logger::Builder::from_env(
        env_logger::Env::default()
            .default_filter_or("error,symphonia=off,symphonia_core=off,earshot=warn"),
    )
    .format_timestamp(None)
    .init();
    // Panics are caught per input and reported as one error line; keep the default hook's
    // multi-line output for debugging only.
    if std::env::var_os("RUST_BACKTRACE").is_none() {
        std::panic::set_hook(Box::new(|info| log::debug!("panic: {info}")));
    }
    let result = match &cli.command {
        Command::Caption(args) => commands::caption::run(args),
        Command::Info(args) => commands::info::run(args),
        Command::Listen(args) => commands::listen::run(args),
        Command::Bench(args) => commands::bench::run(args),
        Command::Devices => commands::devices::run(),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(fatal) => {
            eprintln!("earshot: error: {}", commands::one_line(&fatal.error));
            ExitCode::from(fatal.code)
        }
    }
}
