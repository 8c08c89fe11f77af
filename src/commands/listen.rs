//! `earshot listen`: live captioning from a capture device, raw PCM on stdin, or a file played
//! in real time, to stdout, files, a serial port, MQTT, a live web page / API (`--http`) and a
//! webhook at once.
//!
//! Start-up is one function per stage: [`model`] (bundle, window, hop), [`open_source`] and
//! [`sinks`], each run in a [`Mode`]. `--check-config` runs the very same functions in
//! [`Mode::Check`] (nothing captured, connected or written) and prints the effective settings
//! ([`config::show`]), so a config that passes the check passes start-up.

use super::{env_var, load_model, one_line, Fatal, EXIT_INPUT_FAILED};
use crate::clips::ClipSettings;
use crate::config::settings::PrivacySettings;
use crate::config::show::{self, Resolved};
use crate::config::CaptionSettings;
use crate::config::{self, validate::hop_seconds, RawConfig, Settings, SourceSettings};
use crate::live::filter::CaptionRules;
use crate::live::{self, LiveParams};
use crate::model::{Captioner, Model};
use crate::sink::http::HttpSink;
use crate::sink::line::stdout_open;
use crate::sink::webhook::WebhookSink;
use crate::sink::{file_sink, mqtt::MqttSink, serial::SerialSink, EventSink, LineFormat, LineSink};
use crate::source::{file::FileSource, stdin::StdinSource, Source};
use anyhow::{anyhow, Context, Result};
use clap::Args;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

/// Command-line flags of `earshot listen`. Each flag sets the config key named in its help, over
/// the value from `--config`; both are validated together.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Source")]
pub struct ListenArgs {
    /// TOML config file (reference: README "Config file", example: config/earshot.toml)
    #[arg(short, long, value_name = "FILE", help_heading = "General")]
    pub config: Option<PathBuf>,
    /// Run every start-up check (config, model, window and hop, source file, output files,
    /// serial port) without capturing or connecting, print the effective settings and exit
    #[arg(long, help_heading = "General")]
    pub check_config: bool,
    /// Board profile for defaults: pi-zero-2w, pi3, pi4, pi5 [board]
    #[arg(long, value_name = "NAME", help_heading = "General")]
    pub board: Option<String>,
    /// Model bundle directory [model.bundle]
    #[arg(short, long, value_name = "DIR", help_heading = "General")]
    pub model: Option<PathBuf>,
    /// Beam width, 1 = greedy [model.beam]
    #[arg(long, value_name = "N", help_heading = "General")]
    pub beam: Option<i64>,

    /// Capture device: case-insensitive part of a name from `earshot devices` [source.device]
    #[arg(short, long, value_name = "NAME", conflicts_with_all = ["stdin", "file"])]
    pub device: Option<String>,
    /// A capture device missing at start ends listen instead of being retried
    /// [source.device_required]
    #[arg(long, conflicts_with_all = ["stdin", "file"])]
    pub device_required: bool,
    /// Read PCM from standard input: a WAV stream (arecord's default), or raw samples with
    /// --rate [source.kind = "stdin"]
    #[arg(long, conflicts_with = "file")]
    pub stdin: bool,
    /// Sample rate of raw stdin PCM in Hz [source.stdin_rate]
    #[arg(long, value_name = "HZ")]
    pub rate: Option<i64>,
    /// Channels of the stdin PCM [source.stdin_channels]
    #[arg(long, value_name = "N")]
    pub channels: Option<i64>,
    /// Sample format of raw stdin PCM: s16le, s32le or f32le [source.stdin_format]
    #[arg(long, value_name = "FMT")]
    pub sample_format: Option<String>,
    /// Play an audio file as the source, in real time [source.kind = "file", source.file]
    #[arg(long, value_name = "AUDIO")]
    pub file: Option<PathBuf>,
    /// With --file: play N times faster than real time [source.speed]
    #[arg(long, value_name = "N")]
    pub speed: Option<f64>,
    /// With --file: read as fast as possible, waiting for the model, dropping nothing
    /// [source.realtime = false]
    #[arg(long, conflicts_with = "speed")]
    pub fast: bool,

    /// Window length in seconds [captions.window_seconds; default: the model's]
    #[arg(long, value_name = "SECONDS", help_heading = "Captions")]
    pub window: Option<f64>,
    /// Seconds between captions [captions.hop_seconds; default: the model's]
    #[arg(long, value_name = "SECONDS", help_heading = "Captions")]
    pub hop: Option<f64>,
    /// Silence gate: skip windows quieter than this RMS level; -inf turns it off
    /// [captions.gate_dbfs; default -60]
    #[arg(
        long,
        value_name = "DBFS",
        allow_hyphen_values = true,
        help_heading = "Captions"
    )]
    pub gate_dbfs: Option<f64>,
    /// Suppress a repeated caption for this many seconds [captions.holdoff_seconds; default 30]
    #[arg(long, value_name = "SECONDS", help_heading = "Captions")]
    pub holdoff: Option<f64>,
    /// Emit only captions at least this confident, 0 = all [captions.min_confidence; default 0.71]
    #[arg(long, value_name = "0..1", help_heading = "Captions")]
    pub min_confidence: Option<f64>,
    /// Emit only captions mentioning one of these words or tags (repeat, or comma-separated)
    /// [captions.only]
    #[arg(
        long,
        value_name = "WORDS",
        value_delimiter = ',',
        help_heading = "Captions"
    )]
    pub only: Vec<String>,
    /// Leave out captions mentioning one of these words or tags (repeat, or comma-separated)
    /// [captions.ignore]
    #[arg(
        long,
        value_name = "WORDS",
        value_delimiter = ',',
        help_heading = "Captions"
    )]
    pub ignore: Vec<String>,
    /// Speech windows: keep, mask ("someone speaks", no clip) or drop (nothing leaves the
    /// device) [privacy.speech; default keep]
    #[arg(long, value_name = "MODE", help_heading = "Captions")]
    pub privacy_speech: Option<String>,
    /// Save the audio of each caption (FLAC) into this folder [clips.dir]
    #[arg(long, value_name = "DIR", help_heading = "Outputs")]
    pub clips_dir: Option<PathBuf>,

    /// What to print on stdout: text, jsonl or none [output.stdout]
    #[arg(long, value_name = "FORMAT", help_heading = "Outputs")]
    pub format: Option<String>,
    /// Append JSON lines to this file [output.jsonl_file]
    #[arg(long, value_name = "FILE", help_heading = "Outputs")]
    pub jsonl_file: Option<PathBuf>,
    /// Health report period in seconds, 0 = off [output.health_seconds; default 60]
    #[arg(long, value_name = "SECONDS", help_heading = "Outputs")]
    pub health: Option<f64>,
    /// Serial port for caption lines, e.g. /dev/ttyUSB0 [serial.device]
    #[arg(long, value_name = "PATH", help_heading = "Outputs")]
    pub serial: Option<String>,
    /// Serial baud rate [serial.baud; default 115200]
    #[arg(long, value_name = "BAUD", help_heading = "Outputs")]
    pub baud: Option<i64>,
    /// Serial line format: text or jsonl [serial.format]
    #[arg(long, value_name = "FORMAT", help_heading = "Outputs")]
    pub serial_format: Option<String>,
    /// MQTT broker host [mqtt.host]
    #[arg(long, value_name = "HOST", help_heading = "Outputs")]
    pub mqtt_host: Option<String>,
    /// MQTT broker port [mqtt.port; default 1883]
    #[arg(long, value_name = "PORT", help_heading = "Outputs")]
    pub mqtt_port: Option<i64>,
    /// MQTT topic for captions [mqtt.topic; default earshot/captions]
    #[arg(long, value_name = "TOPIC", help_heading = "Outputs")]
    pub mqtt_topic: Option<String>,
    /// MQTT QoS 0, 1 or 2 [mqtt.qos]
    #[arg(long, value_name = "QOS", help_heading = "Outputs")]
    pub mqtt_qos: Option<i64>,
    /// Publish captions with the retain flag [mqtt.retain]
    #[arg(long, help_heading = "Outputs")]
    pub mqtt_retain: bool,
    /// MQTT client id [mqtt.client_id; default earshot-PID]
    #[arg(long, value_name = "ID", help_heading = "Outputs")]
    pub mqtt_client_id: Option<String>,
    /// MQTT over TLS trusting this CA certificate file (PEM) [mqtt.ca_file]
    #[arg(long, value_name = "FILE", help_heading = "Outputs")]
    pub mqtt_ca_file: Option<PathBuf>,
    /// Serve the live page, JSON API, event stream and /metrics on ADDR:PORT (or PORT, on
    /// 127.0.0.1); another address than loopback needs http.token [http.listen]
    #[arg(long, value_name = "ADDR", help_heading = "Outputs")]
    pub http: Option<String>,
    /// Directory of saved audio clips the page plays [http.clips_dir]
    #[arg(long, value_name = "DIR", help_heading = "Outputs")]
    pub http_clips_dir: Option<PathBuf>,
    /// POST each caption's JSON to this URL [webhook.url]
    #[arg(long, value_name = "URL", help_heading = "Outputs")]
    pub webhook: Option<String>,
}

impl ListenArgs {
    /// The flags as a partial config (only what was given).
    pub fn to_raw(&self) -> RawConfig {
        let mut r = RawConfig {
            board: self.board.clone(),
            ..Default::default()
        };
        r.model.bundle = self.model.clone();
        r.model.beam = self.beam;
        if self.stdin {
            r.source.kind = Some("stdin".into());
        } else if self.file.is_some() {
            r.source.kind = Some("file".into());
        } else if self.device.is_some() {
            r.source.kind = Some("mic".into());
        }
        r.source.device = self.device.clone();
        if self.device_required {
            r.source.device_required = Some(true);
        }
        r.source.stdin_rate = self.rate;
        r.source.stdin_channels = self.channels;
        r.source.stdin_format = self.sample_format.clone();
        r.source.file = self.file.clone();
        r.source.speed = self.speed;
        if self.fast {
            r.source.realtime = Some(false);
        }
        r.captions.window_seconds = self.window;
        r.captions.hop_seconds = self.hop;
        r.captions.gate_dbfs = self.gate_dbfs;
        r.captions.holdoff_seconds = self.holdoff;
        r.captions.min_confidence = self.min_confidence;
        r.captions.only = (!self.only.is_empty()).then(|| self.only.clone());
        r.captions.ignore = (!self.ignore.is_empty()).then(|| self.ignore.clone());
        r.privacy.speech = self.privacy_speech.clone();
        r.clips.dir = self.clips_dir.clone();
        r.output.stdout = self.format.clone();
        r.output.jsonl_file = self.jsonl_file.clone();
        r.output.health_seconds = self.health;
        r.serial.device = self.serial.clone();
        r.serial.baud = self.baud;
        r.serial.format = self.serial_format.clone();
        r.mqtt.host = self.mqtt_host.clone();
        r.mqtt.port = self.mqtt_port;
        r.mqtt.topic = self.mqtt_topic.clone();
        r.mqtt.qos = self.mqtt_qos;
        if self.mqtt_retain {
            r.mqtt.retain = Some(true);
        }
        r.mqtt.client_id = self.mqtt_client_id.clone();
        r.mqtt.ca_file = self.mqtt_ca_file.clone();
        r.http.listen = self.http.clone();
        r.http.clips_dir = self.http_clips_dir.clone();
        r.webhook.url = self.webhook.clone();
        r
    }
}

/// The config file merged with the command line, validated (one code path for both).
pub fn settings(args: &ListenArgs) -> Result<Settings> {
    let file = match &args.config {
        Some(path) => RawConfig::load(path)?,
        None => RawConfig::default(),
    };
    config::validate(file.merge(args.to_raw()), &env_var)
}

/// How a start-up stage runs: `Start` opens everything; `Check` (`--check-config`) makes the
/// same checks without capturing audio, reading stdin, opening the serial port, connecting to
/// the broker or leaving a file behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Start,
    Check,
}

/// The model stage, ready to run.
struct Ready {
    model: Arc<Model>,
    captioner: Captioner,
    params: LiveParams,
    resolved: Resolved,
}

/// `[model]` and `[captions]`: loads the bundle with the window chosen (a window the model
/// refuses is a usage error naming `captions.window_seconds`), checks the hop against the
/// window, and derives the live parameters.
fn model(s: &Settings) -> Result<Ready, Fatal> {
    let model = load_model(s.bundle.as_deref(), s.captions.window_seconds)
        .map_err(|f| f.window_named("captions.window_seconds"))?;
    let captioner = Captioner::new(model.clone(), s.beam).map_err(Fatal::model)?;
    let rate = model.sample_rate();
    let window_samples = captioner.window_samples();
    let window_s = window_samples as f64 / f64::from(rate);
    let hop_s =
        hop_seconds(&s.captions, window_s, model.manifest.hop_seconds).map_err(Fatal::usage)?;
    let hop_samples = model.manifest.samples_for_seconds(hop_s).max(1);
    let params = LiveParams {
        model_rate: rate,
        window_samples,
        hop_samples,
        gate_dbfs: s.captions.gate_dbfs,
        holdoff_seconds: s.captions.holdoff_seconds,
        similarity: s.captions.similarity,
        queue_windows: s.captions.queue_windows,
        ring_seconds: s.ring_seconds,
        health_every: s.output.health_seconds.map(Duration::from_secs_f64),
        rules: rules(&s.captions, &s.privacy),
        clips: s.clips.clone(),
    };
    let resolved = Resolved {
        bundle: model.dir.clone(),
        model_name: model.manifest.name.clone(),
        beam: captioner.params().beam,
        window_seconds: window_s,
        hop_seconds: hop_s,
        has_confidence: model.manifest.confidence.is_some(),
        has_tags: model.manifest.tags.is_some(),
    };
    Ok(Ready {
        model,
        captioner,
        params,
        resolved,
    })
}

/// The caption rules of `[captions]` and `[privacy]`.
pub fn rules(c: &CaptionSettings, p: &PrivacySettings) -> CaptionRules {
    CaptionRules {
        min_confidence: c.min_confidence,
        only: CaptionRules::patterns(&c.only),
        ignore: CaptionRules::patterns(&c.ignore),
        speech: p.speech,
        speech_clips: p.speech_clips,
    }
}

/// `[clips]` in `Check` mode: the folder exists and takes a file, or can be created (the check
/// leaves nothing behind). At start a clip folder that cannot be written is an error that is
/// logged and counted, not fatal (a USB stick may be mounted later).
fn check_clips(c: &ClipSettings) -> Result<()> {
    let dir = &c.dir;
    if dir.is_dir() {
        let probe = dir.join(format!(".earshot-check-{}", std::process::id()));
        std::fs::write(&probe, b"")
            .with_context(|| format!("clips.dir {} is not writable", dir.display()))?;
        let _ = std::fs::remove_file(&probe);
        return Ok(());
    }
    if dir.exists() {
        anyhow::bail!("clips.dir {} is not a folder", dir.display());
    }
    // Created at start: the nearest existing folder above it must be a folder.
    match dir.ancestors().skip(1).find(|a| a.exists()) {
        Some(a) if !a.is_dir() => anyhow::bail!(
            "clips.dir {} cannot be created: {} is not a folder",
            dir.display(),
            a.display()
        ),
        _ => Ok(()),
    }
}

/// An output file opened for appending (created when missing). `Check` opens it the same way
/// and removes it again if the check created it.
fn output_file(
    path: &std::path::Path,
    format: LineFormat,
    mode: Mode,
) -> Result<Box<dyn EventSink>> {
    let existed = path.symlink_metadata().is_ok();
    let sink = file_sink(path, format)?;
    if mode == Mode::Check && !existed {
        let _ = std::fs::remove_file(path);
    }
    Ok(sink)
}

/// `[output]`, `[serial]`, `[mqtt]`, `[http]` and `[webhook]`: the sinks. `Check` opens the
/// output files (see [`output_file`]) and checks that the serial port exists, without opening it
/// (opening resets many boards); the MQTT broker is never a start-up failure (it is retried), so
/// it is not contacted, but its TLS files are read; the HTTP address is bound and released; the
/// webhook is not contacted.
fn sinks(s: &Settings, mode: Mode) -> Result<Vec<Box<dyn EventSink>>> {
    let mut out: Vec<Box<dyn EventSink>> = Vec::new();
    if let Some(f) = s.output.stdout {
        out.push(Box::new(LineSink::new("stdout", std::io::stdout(), f)));
    }
    if let Some(p) = &s.output.jsonl_file {
        out.push(output_file(p, LineFormat::Jsonl, mode)?);
    }
    if let Some(p) = &s.output.text_file {
        out.push(output_file(p, LineFormat::Text, mode)?);
    }
    if let Some(serial) = &s.serial {
        match mode {
            // `serial.required` makes a port missing at start fatal; otherwise it is retried
            // (see SerialSink::open_retrying).
            Mode::Start if serial.required => out.push(Box::new(SerialSink::open(serial)?)),
            Mode::Start => out.push(Box::new(SerialSink::open_retrying(serial))),
            Mode::Check => {
                let present = std::fs::metadata(&serial.device)
                    .with_context(|| format!("serial port {}", serial.device));
                match present {
                    Err(e) if serial.required => return Err(e.context("serial.required = true")),
                    Err(e) => log::warn!("{:#}; it will be retried while listening", e),
                    Ok(_) => {}
                }
            }
        }
    }
    if let Some(m) = &s.mqtt {
        match mode {
            Mode::Start => out.push(Box::new(MqttSink::start(m)?)),
            Mode::Check => drop(m.options()?),
        }
    }
    if let Some(h) = &s.http {
        if let Some(dir) = &h.clips_dir {
            if !dir.is_dir() {
                log::warn!(
                    "http.clips_dir {} is not a directory (yet): no clips to serve",
                    dir.display()
                );
            }
        }
        match mode {
            Mode::Start => {
                let sink = HttpSink::start(h)?;
                eprintln!("earshot: live page on http://{}/", sink.local_addr());
                out.push(Box::new(sink));
            }
            Mode::Check => drop(
                std::net::TcpListener::bind(h.addr)
                    .with_context(|| format!("http.listen {}: cannot listen", h.addr))?,
            ),
        }
    }
    if let (Some(w), Mode::Start) = (&s.webhook, mode) {
        out.push(Box::new(WebhookSink::start(w)?));
    }
    Ok(out)
}

/// `[source]`. `Check` opens a file source (reading its header) but neither reads stdin nor
/// opens the capture device: `None` then. `Start` waits for a missing capture device until it
/// appears (`None` when `stop` is set first).
fn open_source(s: &Settings, mode: Mode, stop: &AtomicBool) -> Result<Option<Box<dyn Source>>> {
    Ok(match &s.source {
        SourceSettings::File { path, speed } => Some(Box::new(FileSource::open(path, *speed)?)),
        SourceSettings::Stdin { .. } if mode == Mode::Check => None,
        SourceSettings::Stdin {
            format,
            rate,
            channels,
        } => Some(Box::new(StdinSource::open(*format, *rate, *channels)?)),
        #[cfg(feature = "mic")]
        SourceSettings::Mic { .. } if mode == Mode::Check => None,
        #[cfg(feature = "mic")]
        SourceSettings::Mic {
            device,
            required: true,
        } => Some(Box::new(crate::source::mic::MicSource::open(
            device.as_deref(),
            Duration::from_secs_f64(s.watchdog_seconds),
        )?)),
        // A capture device missing at start is waited for (`source.device_required` makes it fatal).
        #[cfg(feature = "mic")]
        SourceSettings::Mic {
            device,
            required: false,
        } => crate::source::mic::MicSource::open_waiting(
            device.as_deref(),
            Duration::from_secs_f64(s.watchdog_seconds),
            stop,
        )
        .map(|m| Box::new(m) as Box<dyn Source>),
        #[cfg(not(feature = "mic"))]
        SourceSettings::Mic { .. } => {
            return Err(anyhow!(
                "this earshot was built without microphone support (cargo feature `mic`); \
                 use --stdin or --file"
            ))
        }
    })
}

/// `--check-config`: every start-up stage in [`Mode::Check`], then the effective settings on
/// stdout. The exit status is what start-up would have failed with.
fn check_config(settings: &Settings) -> Result<u8, Fatal> {
    let ready = model(settings)?;
    open_source(settings, Mode::Check, &AtomicBool::new(false)).map_err(Fatal::input)?;
    sinks(settings, Mode::Check).map_err(Fatal::input)?;
    if let Some(c) = &settings.clips {
        check_clips(c).map_err(Fatal::input)?;
    }
    print!("{}", show::render(settings, &ready.resolved));
    Ok(0)
}

/// `earshot listen`.
pub fn run(args: &ListenArgs) -> Result<u8, Fatal> {
    let settings = settings(args).map_err(Fatal::usage)?;
    log::debug!("settings: {settings:?}");
    if (settings.output.stdout.is_some() || args.check_config) && !stdout_open() {
        return Err(Fatal::input(anyhow!(
            "standard output (stdout) is closed: use --format none to run without it"
        )));
    }
    if args.check_config {
        return check_config(&settings);
    }
    // Installed before the (slow) model load: a signal during start-up is a clean stop too.
    let stop = install_signal_handlers().map_err(Fatal::input)?;
    let Ready {
        model,
        captioner,
        params,
        resolved,
    } = model(&settings)?;
    drop(model);
    let Some(mut source) = open_source(&settings, Mode::Start, &stop).map_err(Fatal::input)? else {
        eprintln!("earshot: stopped while waiting for the capture device");
        return Ok(0);
    };
    let sinks = sinks(&settings, Mode::Start).map_err(Fatal::input)?;
    let n_sinks = sinks.len();
    // One start-up line on stderr (the journal under systemd): what is being listened to.
    eprintln!(
        "earshot: listening on {} ({} Hz, {} ch): {:.1} s windows every {:.1} s, \
         {} output(s); SIGINT/SIGTERM/SIGHUP stops",
        source.name(),
        source.format().sample_rate,
        source.format().channels,
        resolved.window_seconds,
        resolved.hop_seconds,
        n_sinks
    );
    if let Some(c) = &settings.clips {
        eprintln!(
            "earshot: saving clips to {} ({}, {} s before and {} s after each caption)",
            c.dir.display(),
            c.format.extension(),
            c.pre_seconds,
            c.post_seconds
        );
    }
    match live::run(source.as_mut(), params, Box::new(captioner), sinks, &stop) {
        Ok(t) => {
            log::info!(
                "done: {} windows, {} captions, {} gated, {} suppressed, {} uncertain, \
                 {} filtered, {} privacy-dropped, {} dropped; clips {} written, {} pruned, \
                 {} failed",
                t.windows,
                t.captions,
                t.gated,
                t.suppressed,
                t.uncertain,
                t.filtered,
                t.privacy_dropped,
                t.dropped_windows,
                t.clips_written,
                t.clips_pruned,
                t.clips_failed
            );
            if t.uncertain + t.filtered + t.privacy_dropped > 0 {
                // Say where the captions went: a run that printed nothing is not a broken one.
                let min = settings
                    .captions
                    .min_confidence
                    .map_or("off".to_string(), |m| m.to_string());
                eprintln!(
                    "earshot: {} captions held back: {} below captions.min_confidence ({min}; \
                     --min-confidence 0 shows all), {} by captions.only/ignore, {} speech \
                     dropped by privacy.speech",
                    t.uncertain + t.filtered + t.privacy_dropped,
                    t.uncertain,
                    t.filtered,
                    t.privacy_dropped
                );
            }
            Ok(0)
        }
        Err(e) => {
            eprintln!("earshot: error: {}", one_line(&e));
            Ok(EXIT_INPUT_FAILED)
        }
    }
}

/// SIGINT/SIGTERM/SIGHUP set the returned flag (finish the window, flush, exit 0); a second
/// signal while shutting down exits at once with status 1. SIGHUP (a closed ssh session,
/// `systemctl reload`) is a graceful stop, not a reload: under systemd `Restart=` starts
/// `listen` again with the new config.
fn install_signal_handlers() -> Result<AtomicBoolHandle> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    use signal_hook::flag;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [SIGINT, SIGTERM, SIGHUP] {
        // Order matters: the shutdown check runs before the flag is set by this signal.
        flag::register_conditional_shutdown(sig, 1, stop.clone())
            .with_context(|| format!("cannot install handler for signal {sig}"))?;
        flag::register(sig, stop.clone())
            .map_err(|e| anyhow!("cannot install handler for signal {sig}: {e}"))?;
    }
    Ok(AtomicBoolHandle(stop))
}

/// The shared stop flag (derefs to the flag).
pub struct AtomicBoolHandle(Arc<AtomicBool>);

impl std::ops::Deref for AtomicBoolHandle {
    type Target = AtomicBool;
    fn deref(&self) -> &AtomicBool {
        &self.0
    }
}
