//! The report of `earshot listen --check-config`: the effective settings, one `section.key =
//! value` line each (TOML values, so a line can be pasted into a config file), one function per
//! section. "Effective" means after everything that decides a value: the config file, the flags,
//! the board profile, and the model (its bundle path, window, hop and beam), which start-up
//! resolves and hands over as [`Resolved`]. Secrets print as `<redacted>` with where they came
//! from; settings that are off are comments, never a Rust `None`.

use super::settings::{CaptionSettings, OutputSettings, PrivacySettings, Settings, SourceSettings};
use crate::audio::pcm::PcmFormat;
use crate::clips::ClipSettings;
use crate::sink::format::LineFormat;
use crate::sink::http::HttpSettings;
use crate::sink::mqtt::MqttSettings;
use crate::sink::secret::REDACTED;
use crate::sink::serial::SerialSettings;
use crate::sink::webhook::WebhookSettings;
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// What start-up resolves from the model.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    /// The bundle directory loaded.
    pub bundle: PathBuf,
    /// The manifest's `name`.
    pub model_name: String,
    pub beam: usize,
    pub window_seconds: f64,
    pub hop_seconds: f64,
    /// The bundle has a `confidence` section (else `captions.min_confidence` lets all through).
    pub has_confidence: bool,
    /// The bundle has AudioSet tags (matched by the lists and the speech detector).
    pub has_tags: bool,
}

/// The whole report, one line per setting, ending in a newline.
pub fn render(s: &Settings, r: &Resolved) -> String {
    let mut out = String::from(
        "# earshot listen: effective settings (config file, flags, board profile and model)\n",
    );
    if let Some(b) = &s.board {
        line(&mut out, "board", quote(b));
    }
    model(&mut out, r);
    source(&mut out, s);
    captions(&mut out, &s.captions, r);
    privacy(&mut out, &s.privacy, r);
    clips(&mut out, s.clips.as_ref());
    output(&mut out, &s.output);
    serial(&mut out, s.serial.as_ref());
    mqtt(&mut out, s.mqtt.as_ref(), s.mqtt_password_from.as_deref());
    http(&mut out, s.http.as_ref(), s.http_token_from.as_deref());
    webhook(&mut out, s.webhook.as_ref());
    out
}

fn line(out: &mut String, key: &str, value: impl std::fmt::Display) {
    let _ = writeln!(out, "{key} = {value}");
}

fn comment(out: &mut String, text: impl std::fmt::Display) {
    let _ = writeln!(out, "# {text}");
}

/// A TOML basic string.
fn quote(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            '\n' => q.push_str("\\n"),
            '\t' => q.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(q, "\\u{:04X}", c as u32);
            }
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

fn quote_path(p: &Path) -> String {
    quote(&p.display().to_string())
}

fn line_format(f: LineFormat) -> String {
    quote(match f {
        LineFormat::Text => "text",
        LineFormat::Jsonl => "jsonl",
    })
}

/// `[model]`: the bundle loaded (an absolute path where it can be made one) and the beam used.
fn model(out: &mut String, r: &Resolved) {
    let dir = std::fs::canonicalize(&r.bundle).unwrap_or_else(|_| r.bundle.clone());
    line(out, "model.bundle", quote_path(&dir));
    comment(out, format!("model name: {}", quote(&r.model_name)));
    line(out, "model.beam", r.beam);
}

/// `[source]`.
fn source(out: &mut String, s: &Settings) {
    match &s.source {
        SourceSettings::Mic { device, required } => {
            line(out, "source.kind", quote("mic"));
            match device {
                Some(d) => line(out, "source.device", quote(d)),
                None => comment(out, "source.device: the default input device"),
            }
            line(out, "source.device_required", required);
        }
        SourceSettings::Stdin {
            format,
            rate,
            channels,
        } => {
            line(out, "source.kind", quote("stdin"));
            let name = match format {
                PcmFormat::S16Le => "s16le",
                PcmFormat::S32Le => "s32le",
                PcmFormat::F32Le => "f32le",
            };
            line(out, "source.stdin_format", quote(name));
            match rate {
                Some(hz) => line(out, "source.stdin_rate", hz),
                None => comment(
                    out,
                    "source.stdin_rate: from the WAV header on stdin (required for raw PCM)",
                ),
            }
            line(out, "source.stdin_channels", channels);
        }
        SourceSettings::File { path, speed } => {
            line(out, "source.kind", quote("file"));
            line(out, "source.file", quote_path(path));
            line(out, "source.realtime", speed.is_some());
            if let Some(x) = speed {
                line(out, "source.speed", x);
            }
        }
    }
    line(out, "source.ring_seconds", s.ring_seconds);
    line(out, "source.watchdog_seconds", s.watchdog_seconds);
}

/// `[captions]`: the window and hop as the model was loaded with them.
fn captions(out: &mut String, c: &CaptionSettings, r: &Resolved) {
    line(out, "captions.window_seconds", r.window_seconds);
    line(out, "captions.hop_seconds", r.hop_seconds);
    match c.gate_dbfs {
        Some(g) => line(out, "captions.gate_dbfs", g),
        None => line(out, "captions.gate_dbfs", "-inf  # off"),
    }
    line(out, "captions.holdoff_seconds", c.holdoff_seconds);
    line(out, "captions.similarity", c.similarity);
    line(out, "captions.queue_windows", c.queue_windows);
    match (c.min_confidence, r.has_confidence) {
        (None, _) => line(out, "captions.min_confidence", "0  # off"),
        (Some(m), true) => line(out, "captions.min_confidence", m),
        (Some(m), false) => line(
            out,
            "captions.min_confidence",
            format!("{m}  # this model has no confidence: every caption passes"),
        ),
    }
    line(out, "captions.only", list(&c.only));
    line(out, "captions.ignore", list(&c.ignore));
    let lists = !(c.only.is_empty() && c.ignore.is_empty());
    if lists && !r.has_tags {
        comment(
            out,
            "captions.only/ignore: this model has no tags; caption words only",
        );
    }
}

/// A TOML array of strings.
fn list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| quote(s)).collect();
    format!("[{}]", quoted.join(", "))
}

/// `[privacy]`.
fn privacy(out: &mut String, p: &PrivacySettings, r: &Resolved) {
    line(out, "privacy.speech", quote(p.speech.name()));
    line(out, "privacy.speech_clips", p.speech_clips);
    comment(
        out,
        if r.has_tags {
            "speech is detected by the model's tags and the caption words"
        } else {
            "speech is detected by the caption words (this model has no tags)"
        },
    );
}

/// `[clips]`.
fn clips(out: &mut String, c: Option<&ClipSettings>) {
    let Some(c) = c else {
        comment(out, "clips: off (no clips.dir)");
        return;
    };
    line(out, "clips.dir", quote_path(&c.dir));
    line(out, "clips.format", quote(c.format.extension()));
    line(out, "clips.pre_seconds", c.pre_seconds);
    line(out, "clips.post_seconds", c.post_seconds);
    let r = &c.retention;
    match r.max_files {
        Some(n) => line(out, "clips.max_files", n),
        None => line(out, "clips.max_files", "0  # no limit"),
    }
    match r.max_megabytes {
        Some(n) => line(out, "clips.max_megabytes", n),
        None => line(out, "clips.max_megabytes", "0  # no limit"),
    }
    match r.max_age_days {
        Some(n) => line(out, "clips.max_age_days", n),
        None => line(out, "clips.max_age_days", "0  # no limit"),
    }
}

/// `[output]`.
fn output(out: &mut String, o: &OutputSettings) {
    match o.stdout {
        Some(f) => line(out, "output.stdout", line_format(f)),
        None => line(out, "output.stdout", quote("none")),
    }
    for (key, file) in [
        ("output.jsonl_file", &o.jsonl_file),
        ("output.text_file", &o.text_file),
    ] {
        if let Some(p) = file {
            line(out, key, quote_path(p));
        }
    }
    match o.health_seconds {
        Some(h) => line(out, "output.health_seconds", h),
        None => line(out, "output.health_seconds", "0  # off"),
    }
}

/// `[serial]`.
fn serial(out: &mut String, s: Option<&SerialSettings>) {
    let Some(s) = s else {
        comment(out, "serial: off (no serial.device)");
        return;
    };
    line(out, "serial.device", quote(&s.device));
    line(out, "serial.baud", s.baud);
    line(out, "serial.format", line_format(s.format));
    line(out, "serial.required", s.required);
}

/// `[mqtt]`: the password only as `<redacted>` and where it came from.
fn mqtt(out: &mut String, m: Option<&MqttSettings>, password_from: Option<&str>) {
    let Some(m) = m else {
        comment(out, "mqtt: off (no mqtt.host)");
        return;
    };
    line(out, "mqtt.host", quote(&m.host));
    line(out, "mqtt.port", m.port);
    line(out, "mqtt.topic", quote(&m.topic));
    line(out, "mqtt.health_topic", quote(&m.effective_health_topic()));
    line(out, "mqtt.qos", m.qos);
    line(out, "mqtt.retain", m.retain);
    line(out, "mqtt.client_id", quote(&m.client_id));
    line(out, "mqtt.keep_alive_seconds", m.keep_alive_seconds);
    line(out, "mqtt.reconnect_seconds", m.reconnect_seconds);
    if let Some(u) = &m.username {
        line(out, "mqtt.username", quote(u));
    }
    if m.password.is_some() {
        let from = password_from.map_or(String::new(), |f| format!("  # from {f}"));
        line(out, "mqtt.password", format!("{REDACTED}{from}"));
    }
    line(
        out,
        "mqtt.availability_topic",
        quote(&m.effective_availability_topic()),
    );
    match &m.discovery {
        Some(d) => {
            line(out, "mqtt.discovery", true);
            line(out, "mqtt.discovery_prefix", quote(&d.prefix));
            line(out, "mqtt.device_id", quote(&d.device_id));
            line(out, "mqtt.device_name", quote(&d.device_name));
        }
        None => line(out, "mqtt.discovery", false),
    }
    match &m.tls {
        Some(t) => {
            line(out, "mqtt.tls", true);
            match &t.ca_file {
                Some(p) => line(out, "mqtt.ca_file", quote_path(p)),
                None => comment(out, "mqtt.ca_file: the system's CA certificates"),
            }
            if let (Some(c), Some(k)) = (&t.client_cert, &t.client_key) {
                line(out, "mqtt.client_cert", quote_path(c));
                line(out, "mqtt.client_key", quote_path(k));
            }
        }
        None => line(out, "mqtt.tls", false),
    }
}

/// `[http]`: the token only as `<redacted>` and where it came from.
fn http(out: &mut String, h: Option<&HttpSettings>, token_from: Option<&str>) {
    let Some(h) = h else {
        comment(out, "http: off (no http.listen / --http)");
        return;
    };
    line(out, "http.listen", quote(&h.addr.to_string()));
    match (&h.token, token_from) {
        (Some(_), from) => {
            let from = from.map_or(String::new(), |f| format!("  # from {f}"));
            line(out, "http.token", format!("{REDACTED}{from}"));
        }
        (None, _) => comment(out, "http.token: none (loopback only)"),
    }
    line(out, "http.history", h.history);
    line(out, "http.clients", h.clients);
    line(out, "http.client_buffer", h.client_buffer);
    match &h.clips_dir {
        Some(p) => line(out, "http.clips_dir", quote_path(p)),
        None => comment(out, "http.clips_dir: none (no clips served)"),
    }
}

/// `[webhook]`.
fn webhook(out: &mut String, w: Option<&WebhookSettings>) {
    let Some(w) = w else {
        comment(out, "webhook: off (no webhook.url)");
        return;
    };
    line(out, "webhook.url", quote(&w.url));
    line(out, "webhook.timeout_seconds", w.timeout_seconds);
    line(out, "webhook.retries", w.retries);
    line(out, "webhook.backoff_seconds", w.backoff_seconds);
    line(out, "webhook.queue", w.queue);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{validate, RawConfig};

    fn report(toml: &str, env: &[(&str, &str)]) -> String {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let lookup = move |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let s = validate(RawConfig::parse(toml).unwrap(), &lookup).unwrap();
        let r = Resolved {
            bundle: PathBuf::from("/no/such/bundle"),
            model_name: "m".into(),
            beam: 3,
            window_seconds: 10.0,
            hop_seconds: 2.5,
            has_confidence: true,
            has_tags: false,
        };
        render(&s, &r)
    }

    #[test]
    fn every_section_is_readable_and_has_no_none() {
        let out = report(
            "[source]\nkind = \"stdin\"\n[captions]\ngate_dbfs = -inf\n\
             [output]\nhealth_seconds = 0\njsonl_file = \"/tmp/a \\\"b\\\".jsonl\"\n\
             [serial]\ndevice = \"/dev/ttyUSB0\"\n[mqtt]\nhost = \"h\"\n",
            &[],
        );
        for want in [
            "model.bundle = \"/no/such/bundle\"",
            "model.beam = 3",
            "source.kind = \"stdin\"",
            "source.stdin_format = \"s16le\"",
            "captions.window_seconds = 10\n",
            "captions.hop_seconds = 2.5\n",
            "captions.gate_dbfs = -inf  # off",
            "captions.min_confidence = 0.71\n",
            "captions.only = []",
            "privacy.speech = \"keep\"",
            "privacy.speech_clips = false",
            "# clips: off (no clips.dir)",
            "output.health_seconds = 0  # off",
            "output.jsonl_file = \"/tmp/a \\\"b\\\".jsonl\"",
            "serial.baud = 115200",
            "mqtt.health_topic = \"earshot/captions/health\"",
        ] {
            assert!(out.contains(want), "{want:?} in\n{out}");
        }
        assert!(!out.contains("None") && !out.contains("Some("), "{out}");
        assert!(!out.contains("mqtt.password"), "{out}");
        // Every line is a comment or `key = value`.
        for l in out.lines() {
            assert!(l.starts_with("# ") || l.contains(" = "), "{l:?}");
        }
    }

    #[test]
    fn rules_privacy_and_clips() {
        let out = report(
            "[captions]\nmin_confidence = 0\nonly = [\"dog\", \"glass\"]\nignore = [\"speech\"]\n\
             [privacy]\nspeech = \"MASK\"\n[clips]\ndir = \"/var/clips\"\nformat = \"wav\"\n\
             max_files = 0\n",
            &[],
        );
        for want in [
            "captions.min_confidence = 0  # off",
            "captions.only = [\"dog\", \"glass\"]",
            "captions.ignore = [\"speech\"]",
            "privacy.speech = \"mask\"",
            "clips.dir = \"/var/clips\"",
            "clips.format = \"wav\"",
            "clips.pre_seconds = 2\n",
            "clips.max_files = 0  # no limit",
            "clips.max_megabytes = 500\n",
            "clips.max_age_days = 30\n",
        ] {
            assert!(out.contains(want), "{want:?} in\n{out}");
        }
    }

    #[test]
    fn the_password_is_redacted_with_its_origin() {
        let out = report(
            "[mqtt]\nhost = \"h\"\nusername = \"u\"\npassword = \"hunter2\"\n",
            &[],
        );
        assert!(
            out.contains("mqtt.password = <redacted>  # from mqtt.password\n"),
            "{out}"
        );
        assert!(!out.contains("hunter2"), "{out}");
        let out = report(
            "[mqtt]\nhost = \"h\"\nusername = \"u\"\n",
            &[("EARSHOT_MQTT_PASSWORD", "from-env")],
        );
        assert!(
            out.contains("mqtt.password = <redacted>  # from $EARSHOT_MQTT_PASSWORD"),
            "{out}"
        );
        assert!(!out.contains("from-env"), "{out}");
    }
}
