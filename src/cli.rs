//! Command-line interface (clap derive): the top-level [`Cli`] and the list of subcommands
//! only. Each subcommand's flags and implementation live in its file under [`crate::commands`].

use crate::commands::{bench::BenchArgs, caption::CaptionArgs, info::InfoArgs, listen::ListenArgs};
use clap::{Parser, Subcommand};

const AFTER_HELP: &str = "\
Model: --model DIR, else $EARSHOT_MODEL, else models/default next to the executable,
<exe dir>/../share/earshot/models/default, /usr/share/earshot/models/default, and the
source tree's models/default.

Logging: RUST_LOG=info (or debug) prints model load times and per-window timings on stderr.

Exit status: 0 all inputs captioned; 1 at least one input failed (the others are still
captioned); 2 usage error; 3 the model could not be found or loaded.";

#[derive(Debug, Parser)]
#[command(
    name = "earshot",
    version,
    about = "Offline audio captioning: describes what is heard, in words",
    long_about = "earshot turns audio into short English captions (\"a dog barks\", \"a woman \
speaks\") with a small encoder-decoder model, entirely offline, fast enough for a Raspberry Pi.",
    after_help = AFTER_HELP
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Caption audio files (WAV, FLAC, OGG/Vorbis, MP3; any sample rate and channel count).
    ///
    /// Each file is cut into windows (default: the model's, e.g. 10 s every 5 s); every window
    /// gets one caption line with its start and end time. The last, shorter window is
    /// zero-padded. Files are streamed, so any length works in bounded memory.
    #[command(after_help = AFTER_HELP)]
    Caption(CaptionArgs),
    /// Show the model bundle: manifest, tensor shapes, parameter counts, front end.
    #[command(after_help = AFTER_HELP)]
    Info(InfoArgs),
    /// Caption live audio: a microphone, raw PCM on stdin, or a file played in real time.
    ///
    /// Audio is cut into sliding windows (default: the model's); quiet windows are skipped
    /// (silence gate), repeated captions are held back, and every caption goes to all outputs
    /// at once: stdout (text or JSON lines), a JSON-lines file, a serial port, MQTT. Settings
    /// come from --config FILE (TOML) and the flags below, which override it. SIGINT/SIGTERM
    /// finish the current window, flush the outputs and exit 0.
    #[command(after_help = AFTER_HELP)]
    Listen(Box<ListenArgs>),
    /// Measure speed and memory: load the model, warm up, caption N windows of synthetic audio
    /// (or --input FILE), report per-stage medians, the real-time factor, the model load time
    /// and the peak RSS, as text or --json.
    #[command(after_help = AFTER_HELP)]
    Bench(BenchArgs),
    /// List audio input devices and the names to pass to `earshot listen --device`.
    Devices,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::caption::Format;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_caption() {
        let c = Cli::try_parse_from([
            "earshot",
            "caption",
            "a.wav",
            "b.flac",
            "--beam",
            "1",
            "--format",
            "jsonl",
            "--window",
            "5",
            "--print-ids",
        ])
        .unwrap();
        let Command::Caption(a) = c.command else {
            panic!("not caption")
        };
        assert_eq!(a.files.len(), 2);
        assert_eq!(a.beam, Some(1));
        assert_eq!(a.format, Format::Jsonl);
        assert_eq!(a.window, Some(5.0));
        assert!(a.print_ids);
        assert!(Cli::try_parse_from(["earshot", "caption"]).is_err());
        assert!(Cli::try_parse_from(["earshot", "caption", "a.wav", "--hop", "0"]).is_err());
        assert!(Cli::try_parse_from(["earshot", "caption", "a.wav", "--beam", "0"]).is_err());
    }
}
