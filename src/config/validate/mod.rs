//! The one validation path for `earshot listen` settings (file and CLI alike): [`validate`]
//! applies the board layer and calls one function per section — `[source]` and `[captions]` in
//! `source.rs`, `[privacy]` and `[clips]` in `monitor.rs`, `[output]`, `[serial]` and `[mqtt]`
//! in `outputs.rs`, `[http]` and `[webhook]` in `web.rs` — over the shared field rules and
//! defaults of `rules.rs`; each error names its key. Secrets come in as
//! [`crate::sink::Secret`]s and stay redacted; the environment (for `$EARSHOT_MQTT_PASSWORD`,
//! `$EARSHOT_HTTP_TOKEN`, `mqtt.password_env` and `http.token_env`) is read through the [`Env`]
//! the command passes.

mod monitor;
mod outputs;
pub mod rules;
mod source;
pub mod web;

use super::file::RawConfig;
use super::settings::*;
use anyhow::{bail, Result};
use monitor::{clips, privacy};
use outputs::{mqtt, output, serial};
pub use rules::Env;
use rules::{bad, non_empty, ranged_int};
use source::{captions, source};
use web::{http, webhook};

/// Validates merged raw settings (config file with the command line over it). A `board`
/// profile supplies defaults for whatever neither of them set; `env` reads environment
/// variables.
pub fn validate(raw: RawConfig, env: Env) -> Result<Settings> {
    let board = non_empty("board", raw.board.clone())?;
    let raw = match &board {
        Some(name) => super::board::BoardProfile::by_name(name)
            .map_err(|e| bad("board", format!("{e:#}")))?
            .config_layer()
            .merge(raw),
        None => raw,
    };
    let (source, ring_seconds, watchdog_seconds) = source(raw.source)?;
    let captions = captions(raw.captions)?;
    let privacy = privacy(raw.privacy)?;
    let clips = clips(raw.clips)?;
    let output = output(raw.output)?;
    let serial = serial(raw.serial)?;
    let (mqtt, mqtt_password_from) = mqtt(raw.mqtt, env)?;
    let (mut http, http_token_from) = http(raw.http, env)?;
    // The page plays the clips earshot saves: `http.clips_dir` defaults to `clips.dir`.
    if let (Some(h), Some(c)) = (http.as_mut(), clips.as_ref()) {
        if h.clips_dir.is_none() {
            h.clips_dir = Some(c.dir.clone());
        }
    }
    let webhook = webhook(raw.webhook)?;
    if output.stdout.is_none()
        && output.jsonl_file.is_none()
        && output.text_file.is_none()
        && serial.is_none()
        && mqtt.is_none()
        && http.is_none()
        && webhook.is_none()
    {
        bail!(
            "no output: output.stdout is \"none\" and no file, serial, MQTT, HTTP or webhook \
             output is configured"
        );
    }

    Ok(Settings {
        board,
        bundle: raw.model.bundle,
        beam: ranged_int("model.beam", raw.model.beam, 1, 64)?.map(|b| b as usize),
        source,
        ring_seconds,
        watchdog_seconds,
        captions,
        privacy,
        clips,
        output,
        serial,
        mqtt,
        mqtt_password_from,
        http,
        http_token_from,
        webhook,
    })
}

/// Hop in seconds: the setting, or the model's `hop_seconds` (at most the window). `window` is
/// the window the model was loaded with (`captions.window_seconds` or the model's own).
pub fn hop_seconds(c: &CaptionSettings, window: f64, model_hop: f64) -> Result<f64> {
    let hop = c.hop_seconds.unwrap_or(model_hop.min(window));
    if hop > window + 1e-9 {
        return Err(bad(
            "captions.hop_seconds",
            format!("must not exceed the window ({hop} > {window} s)"),
        ));
    }
    Ok(hop)
}

#[cfg(test)]
mod tests {
    use super::rules::DEFAULT_GATE_DBFS;
    use super::*;
    use crate::audio::pcm::PcmFormat;
    use crate::sink::format::LineFormat;

    fn v(toml: &str) -> Result<Settings> {
        validate(RawConfig::parse(toml)?, &|_| None)
    }

    #[test]
    fn defaults_are_valid() {
        let s = v("").unwrap();
        assert_eq!(
            s.source,
            SourceSettings::Mic {
                device: None,
                required: false
            }
        );
        assert_eq!(s.output.stdout, Some(LineFormat::Text));
        assert_eq!(s.captions.gate_dbfs, Some(DEFAULT_GATE_DBFS));
        assert!(s.mqtt.is_none() && s.serial.is_none());
    }

    #[test]
    fn errors_name_the_key() {
        for (toml, key) in [
            ("[mqtt]\nhost = \"h\"\nqos = 3", "mqtt.qos"),
            ("[mqtt]\nhost = \"h\"\nport = 70000", "mqtt.port"),
            ("[mqtt]\nport = 1883", "mqtt.host"),
            ("[mqtt]\nhost = \"h\"\ntopic = \"a/#\"", "mqtt.topic"),
            ("[serial]\nbaud = 9600", "serial.device"),
            (
                "[serial]\ndevice = \"/dev/x\"\nformat = \"xml\"",
                "serial.format",
            ),
            ("[captions]\nhop_seconds = 0", "captions.hop_seconds"),
            (
                "[captions]\nwindow_seconds = 2\nhop_seconds = 3",
                "captions.hop_seconds",
            ),
            ("[captions]\ngate_dbfs = 3", "captions.gate_dbfs"),
            ("[captions]\nsimilarity = 1.5", "captions.similarity"),
            ("[captions]\nqueue_windows = 0", "captions.queue_windows"),
            ("[source]\nkind = \"radio\"", "source.kind"),
            (
                "[source]\nkind = \"stdin\"\nstdin_rate = 100",
                "source.stdin_rate",
            ),
            (
                "[source]\nkind = \"stdin\"\nstdin_rate = 16000\nstdin_format = \"u8\"",
                "source.stdin_format",
            ),
            ("[source]\nkind = \"file\"", "source.file"),
            (
                "[source]\nkind = \"stdin\"\ndevice_required = true",
                "source.device_required",
            ),
            ("[serial]\nrequired = true", "serial.device"),
            ("[output]\nstdout = \"xml\"", "output.stdout"),
            ("[output]\nhealth_seconds = -1", "output.health_seconds"),
            (
                "[captions]\nmin_confidence = 1.5",
                "captions.min_confidence",
            ),
            (
                "[captions]\nmin_confidence = -0.1",
                "captions.min_confidence",
            ),
            ("[captions]\nonly = [\"dog\", \"  \"]", "captions.only"),
            ("[captions]\nignore = [\"!!\"]", "captions.ignore"),
            ("[privacy]\nspeech = \"hide\"", "privacy.speech"),
            (
                "[privacy]\nspeech = \"mask\"\nspeech_clips = true",
                "privacy.speech_clips",
            ),
            ("[clips]\nformat = \"flac\"", "clips.dir"),
            ("[clips]\ndir = \"/x\"\nformat = \"mp3\"", "clips.format"),
            (
                "[clips]\ndir = \"/x\"\npre_seconds = 31",
                "clips.pre_seconds",
            ),
            (
                "[clips]\ndir = \"/x\"\npost_seconds = -1",
                "clips.post_seconds",
            ),
            ("[clips]\ndir = \"/x\"\nmax_files = -1", "clips.max_files"),
            (
                "[clips]\ndir = \"/x\"\nmax_megabytes = -5",
                "clips.max_megabytes",
            ),
            (
                "[clips]\ndir = \"/x\"\nmax_age_days = nan",
                "clips.max_age_days",
            ),
            ("[clips]\ndir = \"\"", "clips.dir"),
        ] {
            let err = v(toml).unwrap_err().to_string();
            assert!(err.contains(key), "{toml:?}: {err}");
        }
    }

    #[test]
    fn full_config_parses() {
        let s = v(r#"
            [source]
            kind = "stdin"
            stdin_rate = 48000
            stdin_channels = 2
            stdin_format = "f32le"
            [captions]
            window_seconds = 5
            hop_seconds = 2.5
            gate_dbfs = -45
            [output]
            stdout = "jsonl"
            health_seconds = 0
            [serial]
            device = "/dev/ttyUSB0"
            baud = 9600
            [mqtt]
            host = "broker"
            qos = 1
            retain = true
            client_id = "pi"
        "#)
        .unwrap();
        assert_eq!(
            s.source,
            SourceSettings::Stdin {
                format: PcmFormat::F32Le,
                rate: Some(48000),
                channels: 2
            }
        );
        assert_eq!(s.output.health_seconds, None);
        let m = s.mqtt.unwrap();
        assert_eq!(
            (m.qos, m.retain, m.port, m.client_id.as_str()),
            (1, true, 1883, "pi")
        );
        assert_eq!(s.serial.unwrap().baud, 9600);
        assert_eq!(hop_seconds(&s.captions, 5.0, 5.0).unwrap(), 2.5);
    }

    #[test]
    fn hop_defaults_and_limits() {
        let s = v("").unwrap();
        assert_eq!(hop_seconds(&s.captions, 10.0, 5.0).unwrap(), 5.0);
        assert_eq!(hop_seconds(&s.captions, 4.0, 5.0).unwrap(), 4.0);
        let s = v("[captions]\nhop_seconds = 8").unwrap();
        let err = hop_seconds(&s.captions, 5.0, 5.0).unwrap_err().to_string();
        assert!(err.contains("captions.hop_seconds"), "{err}");
        assert!(v("[model]\nbeam = 0")
            .unwrap_err()
            .to_string()
            .contains("model.beam"));
    }

    #[test]
    fn board_defaults_yield_to_explicit_settings() {
        let s = v("board = \"pi-zero-2w\"").unwrap();
        let p = crate::config::board::BoardProfile::by_name("pi-zero-2w").unwrap();
        assert_eq!(s.captions.window_seconds, Some(p.runtime.window_seconds));
        assert_eq!(s.captions.hop_seconds, Some(p.runtime.hop_seconds));
        let s = v("board = \"pi4\"\n[captions]\nhop_seconds = 1.5").unwrap();
        assert_eq!(s.captions.hop_seconds, Some(1.5));
        let err = v("board = \"pi2\"").unwrap_err().to_string();
        assert!(err.contains("`board`") && err.contains("pi4"), "{err}");
    }

    fn with_env(toml: &str, env: &[(&str, &str)]) -> Result<Settings> {
        let lookup = |k: &str| {
            env.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        };
        validate(RawConfig::parse(toml)?, &lookup)
    }

    fn password(s: &Settings) -> Option<&str> {
        s.mqtt.as_ref()?.password.as_ref().map(|p| p.expose())
    }

    #[test]
    fn the_mqtt_password_comes_from_one_place() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "from file\r\nsecond line\n").unwrap();
        let base = "[mqtt]\nhost = \"h\"\nusername = \"u\"\n";
        let env = [
            ("EARSHOT_MQTT_PASSWORD", "from default"),
            ("PW", "from var"),
        ];
        let s = with_env(&format!("{base}password = \"inline\""), &env).unwrap();
        assert_eq!(password(&s), Some("inline"));
        assert_eq!(s.mqtt_password_from.as_deref(), Some("mqtt.password"));
        let toml = format!("{base}password_file = \"{}\"", file.display());
        let s = with_env(&toml, &env).unwrap();
        assert_eq!(
            password(&s),
            Some("from file"),
            "the first line, without CR LF"
        );
        let s = with_env(&format!("{base}password_env = \"PW\""), &env).unwrap();
        assert_eq!(password(&s), Some("from var"));
        assert_eq!(s.mqtt_password_from.as_deref(), Some("$PW"));
        let s = with_env(base, &env).unwrap();
        assert_eq!(password(&s), Some("from default"));
        assert_eq!(password(&with_env(base, &[]).unwrap()), None);
        // Without a user the default variable is ignored; an explicit password is an error.
        let s = with_env("[mqtt]\nhost = \"h\"", &env).unwrap();
        assert_eq!(password(&s), None);
        let err = with_env("[mqtt]\nhost = \"h\"\npassword_env = \"PW\"", &env).unwrap_err();
        assert!(
            err.to_string()
                .contains("`mqtt.password_env`: needs mqtt.username"),
            "{err}"
        );
    }

    #[test]
    fn bad_password_settings_name_the_key_and_never_the_password() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\nhunter2\n").unwrap();
        let big = dir.path().join("big");
        std::fs::write(&big, "hunter2".repeat(10_000)).unwrap();
        let base = "[mqtt]\nhost = \"h\"\nusername = \"u\"\n";
        let env = [("EMPTY", "")];
        for (extra, key) in [
            (
                "password = \"hunter2\"\npassword_env = \"X\"".to_string(),
                "mqtt.password_env",
            ),
            ("password = \"\"".to_string(), "mqtt.password"),
            (
                "password_env = \"NOT_SET\"".to_string(),
                "mqtt.password_env",
            ),
            ("password_env = \"EMPTY\"".to_string(), "mqtt.password_env"),
            ("password_env = \" \"".to_string(), "mqtt.password_env"),
            (
                format!("password_file = \"{}\"", empty.display()),
                "mqtt.password_file",
            ),
            (
                format!("password_file = \"{}\"", big.display()),
                "mqtt.password_file",
            ),
            (
                format!("password_file = \"{}\"", dir.path().join("none").display()),
                "mqtt.password_file",
            ),
            (
                format!("password_file = \"{}\"", dir.path().display()),
                "mqtt.password_file",
            ),
        ] {
            let err = format!(
                "{:#}",
                with_env(&format!("{base}{extra}"), &env).unwrap_err()
            );
            assert!(err.contains(key), "{extra}: {err}");
            assert!(!err.contains("hunter2"), "{extra}: {err}");
        }
        // A password with no broker is a mistake too.
        let err = v("[mqtt]\npassword = \"hunter2\"").unwrap_err().to_string();
        assert!(
            err.contains("mqtt.host") && !err.contains("hunter2"),
            "{err}"
        );
    }

    #[test]
    fn settings_debug_never_shows_the_password() {
        let s = v("[mqtt]\nhost = \"h\"\nusername = \"u\"\npassword = \"hunter2\"").unwrap();
        let dump = format!("{s:?} {s:#?}");
        assert!(
            !dump.contains("hunter2") && dump.contains("<redacted>"),
            "{dump}"
        );
    }

    #[test]
    fn rules_privacy_and_clips_defaults() {
        let s = v("").unwrap();
        assert_eq!(s.captions.min_confidence, Some(0.71));
        assert!(s.captions.only.is_empty() && s.captions.ignore.is_empty());
        assert_eq!(s.privacy.speech, crate::live::filter::SpeechPrivacy::Keep);
        assert!(
            !s.privacy.speech_clips,
            "clips of speech are never stored by default"
        );
        assert!(s.clips.is_none());
        let s = v(
            "[captions]\nmin_confidence = 0\nonly = [\" Dog \"]\n[clips]\ndir = \"/c\"\n\
                   max_files = 0\nmax_age_days = 0",
        )
        .unwrap();
        assert_eq!(s.captions.min_confidence, None);
        assert_eq!(s.captions.only, ["Dog"]);
        let c = s.clips.unwrap();
        assert_eq!(c.format, crate::clips::ClipFormat::Flac);
        assert_eq!((c.pre_seconds, c.post_seconds), (2.0, 2.0));
        assert_eq!(c.retention.max_files, None);
        assert_eq!(c.retention.max_megabytes, Some(500.0));
        assert_eq!(c.retention.max_age_days, None);
    }

    #[test]
    fn the_page_serves_the_saved_clips_by_default() {
        let s = v("[http]\nlisten = \"127.0.0.1:8080\"\n[clips]\ndir = \"/c\"").unwrap();
        assert_eq!(
            s.http.unwrap().clips_dir,
            Some(std::path::PathBuf::from("/c"))
        );
        let s = v("[http]\nlisten = \"127.0.0.1:8080\"\nclips_dir = \"/d\"\n[clips]\ndir = \"/c\"")
            .unwrap();
        assert_eq!(
            s.http.unwrap().clips_dir,
            Some(std::path::PathBuf::from("/d"))
        );
    }

    #[test]
    fn no_output_is_refused() {
        assert!(v("[output]\nstdout = \"none\"").is_err());
    }
}
