//! `[output]`, `[serial]` and `[mqtt]`: where captions go, where the MQTT password comes
//! from ([`mqtt_password`]), Home Assistant discovery ([`discovery`]) and TLS ([`mqtt_tls`]).

use super::rules::{bad, line_format, non_empty, positive, ranged_int, Env};
use super::rules::{hostname, DEFAULT_HEALTH_SECONDS, DEFAULT_MQTT_PORT, DEFAULT_MQTT_TOPIC};
use super::rules::{DEFAULT_DISCOVERY_PREFIX, DEFAULT_MQTTS_PORT};
use super::rules::{MAX_PASSWORD_FILE_BYTES, MQTT_PASSWORD_ENV};
use crate::config::file::{RawMqtt, RawOutput, RawSerial};
use crate::config::settings::OutputSettings;
use crate::sink::format::LineFormat;
use crate::sink::ha::{sanitize_id, Discovery};
use crate::sink::mqtt::MqttSettings;
use crate::sink::serial::SerialSettings;
use crate::sink::tls::TlsSettings;
use crate::sink::Secret;
use anyhow::Result;
use std::io::Read;
use std::path::{Path, PathBuf};

/// `[output]`.
pub(super) fn output(o: RawOutput) -> Result<OutputSettings> {
    let stdout = match o
        .stdout
        .as_deref()
        .map(|s| s.trim().to_ascii_lowercase())
        .as_deref()
    {
        Some("none") | Some("off") => None,
        other => Some(
            line_format("output.stdout", other, LineFormat::Text).map_err(|_| {
                bad(
                    "output.stdout",
                    format!(
                        "must be \"text\", \"jsonl\" or \"none\" (got \"{}\")",
                        other.unwrap_or_default()
                    ),
                )
            })?,
        ),
    };
    let health_seconds = match o.health_seconds {
        None => Some(DEFAULT_HEALTH_SECONDS),
        Some(0.0) => None,
        Some(h) if h.is_finite() && h > 0.0 => Some(h),
        Some(h) => {
            return Err(bad(
                "output.health_seconds",
                format!("must be > 0, or 0 to turn health reports off (got {h})"),
            ))
        }
    };
    Ok(OutputSettings {
        stdout,
        jsonl_file: o.jsonl_file,
        text_file: o.text_file,
        health_seconds,
    })
}

/// `[serial]` (`None`: no serial sink).
pub(super) fn serial(sr: RawSerial) -> Result<Option<SerialSettings>> {
    Ok(match non_empty("serial.device", sr.device)? {
        None => {
            if sr.baud.is_some() || sr.format.is_some() || sr.required.is_some() {
                return Err(bad(
                    "serial.device",
                    "is required when other [serial] keys are set",
                ));
            }
            None
        }
        Some(device) => Some(SerialSettings {
            device,
            baud: ranged_int("serial.baud", sr.baud, 50, 4_000_000)?.unwrap_or(115_200) as u32,
            format: line_format("serial.format", sr.format.as_deref(), LineFormat::Text)?,
            required: sr.required.unwrap_or(false),
        }),
    })
}

/// `[mqtt]` (`None`: no MQTT sink), with where its password came from (for the report of
/// `--check-config`; never the password itself).
pub(super) fn mqtt(m: RawMqtt, env: Env) -> Result<(Option<MqttSettings>, Option<String>)> {
    Ok(match non_empty("mqtt.host", m.host)? {
        None => {
            let set = m.port.is_some()
                || m.topic.is_some()
                || m.qos.is_some()
                || m.retain.is_some()
                || m.client_id.is_some()
                || m.username.is_some()
                || m.password.is_some()
                || m.password_file.is_some()
                || m.password_env.is_some()
                || m.availability_topic.is_some()
                || m.discovery.is_some()
                || m.discovery_prefix.is_some()
                || m.device_id.is_some()
                || m.device_name.is_some()
                || m.tls.is_some()
                || m.ca_file.is_some()
                || m.client_cert.is_some()
                || m.client_key.is_some();
            if set {
                return Err(bad(
                    "mqtt.host",
                    "is required when other [mqtt] keys are set",
                ));
            }
            (None, None)
        }
        Some(host) => {
            let topic =
                non_empty("mqtt.topic", m.topic)?.unwrap_or_else(|| DEFAULT_MQTT_TOPIC.to_string());
            for (key, t) in [
                ("mqtt.topic", Some(&topic)),
                ("mqtt.health_topic", m.health_topic.as_ref()),
                ("mqtt.availability_topic", m.availability_topic.as_ref()),
                ("mqtt.discovery_prefix", m.discovery_prefix.as_ref()),
            ] {
                if let Some(t) = t {
                    if t.contains('+') || t.contains('#') || t.is_empty() {
                        return Err(bad(
                            key,
                            format!("must be a topic name without wildcards (got \"{t}\")"),
                        ));
                    }
                }
            }
            let client_id = non_empty("mqtt.client_id", m.client_id)?
                .unwrap_or_else(|| format!("earshot-{}", std::process::id()));
            if client_id.len() > 23 {
                log::debug!("mqtt.client_id is longer than 23 bytes; some brokers reject that");
            }
            let username = non_empty("mqtt.username", m.username)?;
            let (password, password_from) = mqtt_password(
                m.password,
                m.password_file,
                m.password_env,
                username.is_some(),
                env,
            )?
            .unzip();
            let keep_alive_seconds =
                positive("mqtt.keep_alive_seconds", m.keep_alive_seconds, 30.0)?;
            if keep_alive_seconds < 5.0 {
                return Err(bad("mqtt.keep_alive_seconds", "must be at least 5"));
            }
            let tls = mqtt_tls(m.tls, m.ca_file, m.client_cert, m.client_key)?;
            let default_port = match tls {
                Some(_) => DEFAULT_MQTTS_PORT,
                None => DEFAULT_MQTT_PORT,
            };
            let discovery = discovery(m.discovery, m.discovery_prefix, m.device_id, m.device_name)?;
            let settings = MqttSettings {
                host,
                port: ranged_int("mqtt.port", m.port, 1, 65535)?.map_or(default_port, |p| p as u16),
                topic,
                health_topic: m.health_topic,
                qos: ranged_int("mqtt.qos", m.qos, 0, 2)?.unwrap_or(0) as u8,
                retain: m.retain.unwrap_or(false),
                client_id,
                keep_alive_seconds,
                reconnect_seconds: positive("mqtt.reconnect_seconds", m.reconnect_seconds, 5.0)?,
                username,
                password,
                availability_topic: m.availability_topic,
                discovery,
                tls,
            };
            (Some(settings), password_from)
        }
    })
}

/// The MQTT password and where it came from (see [`secret_setting`]), with
/// `$EARSHOT_MQTT_PASSWORD` as the default. A password needs `mqtt.username` (`has_user`); the
/// variable is only a default for a configured user.
fn mqtt_password(
    inline: Option<Secret>,
    file: Option<std::path::PathBuf>,
    var: Option<String>,
    has_user: bool,
    env: Env,
) -> Result<Option<(Secret, String)>> {
    let needs = (!has_user).then_some("mqtt.username");
    secret_setting(
        "mqtt.password",
        inline,
        file,
        var,
        MQTT_PASSWORD_ENV,
        needs,
        env,
    )
}

/// A secret setting and where it came from: at most one of `<key>` (inline), `<key>_file` (the
/// file's first line) and `<key>_env` (that variable); with none of them, `default_var` when it
/// is set. `needs`: a key that must be configured for the secret to be given at all (then the
/// default variable is not consulted either). Errors name the key and the file or variable,
/// never the secret.
pub(super) fn secret_setting(
    key: &str,
    inline: Option<Secret>,
    file: Option<std::path::PathBuf>,
    var: Option<String>,
    default_var: &str,
    needs: Option<&str>,
    env: Env,
) -> Result<Option<(Secret, String)>> {
    let (file_key, env_key) = (format!("{key}_file"), format!("{key}_env"));
    let given: Vec<&str> = [
        inline.as_ref().map(|_| key),
        file.as_ref().map(|_| file_key.as_str()),
        var.as_ref().map(|_| env_key.as_str()),
    ]
    .into_iter()
    .flatten()
    .collect();
    if given.len() > 1 {
        return Err(bad(
            given[1],
            format!("cannot be combined with {} (set one of them)", given[0]),
        ));
    }
    if let (Some(k), Some(need)) = (given.first(), needs) {
        return Err(bad(k, format!("needs {need}")));
    }
    if let Some(p) = inline {
        if p.expose().trim().is_empty() {
            return Err(bad(key, "must not be empty"));
        }
        return Ok(Some((p, key.into())));
    }
    if let Some(path) = file {
        let p = read_secret_file(&file_key, &path).map_err(|e| bad(&file_key, e))?;
        return Ok(Some((p, format!("{file_key} {}", path.display()))));
    }
    if let Some(name) = non_empty(&env_key, var)? {
        let name = name.trim();
        return match env(name) {
            Some(v) if !v.is_empty() => Ok(Some((Secret::new(v), format!("${name}")))),
            Some(_) => Err(bad(
                &env_key,
                format!("environment variable {name} is empty"),
            )),
            None => Err(bad(
                &env_key,
                format!("environment variable {name} is not set"),
            )),
        };
    }
    if needs.is_some() {
        return Ok(None);
    }
    Ok(env(default_var)
        .filter(|v| !v.is_empty())
        .map(|v| (Secret::new(v), format!("${default_var}"))))
}

/// The first line of a password or token file (at most [`MAX_PASSWORD_FILE_BYTES`], UTF-8, not
/// empty). A file that other users may read is used, with a warning naming `key`.
pub(super) fn read_secret_file(key: &str, path: &Path) -> Result<Secret, String> {
    let shown = path.display();
    let mut f = std::fs::File::open(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let meta = f
        .metadata()
        .map_err(|e| format!("cannot read {shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{shown} is not a regular file"));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o004 != 0 {
            log::warn!("{key} {shown} is readable by every user (chmod o-r)");
        }
    }
    let mut bytes = Vec::new();
    (&mut f)
        .take(MAX_PASSWORD_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {shown}: {e}"))?;
    if bytes.len() as u64 > MAX_PASSWORD_FILE_BYTES {
        return Err(format!(
            "{shown} is larger than {MAX_PASSWORD_FILE_BYTES} bytes (expected one line)"
        ));
    }
    let text = String::from_utf8(bytes).map_err(|_| format!("{shown} is not UTF-8 text"))?;
    match text.lines().next() {
        Some(line) if !line.is_empty() => Ok(Secret::new(line)),
        _ => Err(format!("the first line of {shown} is empty")),
    }
}

/// `mqtt.discovery*` and `mqtt.device_*`: on unless `mqtt.discovery = false`; the device id
/// defaults to `earshot_<hostname>` (stable across restarts, unlike the client id).
fn discovery(
    on: Option<bool>,
    prefix: Option<String>,
    device_id: Option<String>,
    device_name: Option<String>,
) -> Result<Option<Discovery>> {
    let prefix = non_empty("mqtt.discovery_prefix", prefix)?;
    let device_id = non_empty("mqtt.device_id", device_id)?;
    let device_name = non_empty("mqtt.device_name", device_name)?;
    if on == Some(false) {
        if let Some(key) = [
            prefix.as_ref().map(|_| "mqtt.discovery_prefix"),
            device_id.as_ref().map(|_| "mqtt.device_id"),
            device_name.as_ref().map(|_| "mqtt.device_name"),
        ]
        .into_iter()
        .flatten()
        .next()
        {
            return Err(bad(key, "has no meaning with mqtt.discovery = false"));
        }
        return Ok(None);
    }
    let host = hostname();
    let device_id = match device_id {
        Some(id) if sanitize_id(&id) != id => {
            return Err(bad(
                "mqtt.device_id",
                format!("may hold only letters, digits, _ and - (got \"{id}\")"),
            ))
        }
        Some(id) => id,
        None => sanitize_id(&format!("earshot_{host}")),
    };
    Ok(Some(Discovery {
        prefix: prefix.unwrap_or_else(|| DEFAULT_DISCOVERY_PREFIX.to_string()),
        device_id,
        device_name: device_name.unwrap_or_else(|| format!("earshot ({host})")),
    }))
}

/// `mqtt.tls`, `mqtt.ca_file`, `mqtt.client_cert`, `mqtt.client_key`: TLS is on with
/// `tls = true` or any of the files; the files must exist (their contents are checked when the
/// client is built, by `--check-config` too).
fn mqtt_tls(
    on: Option<bool>,
    ca_file: Option<PathBuf>,
    client_cert: Option<PathBuf>,
    client_key: Option<PathBuf>,
) -> Result<Option<TlsSettings>> {
    let files = [
        ("mqtt.ca_file", &ca_file),
        ("mqtt.client_cert", &client_cert),
        ("mqtt.client_key", &client_key),
    ];
    let any_file = files.iter().find(|(_, f)| f.is_some()).map(|(k, _)| *k);
    if let (Some(false), Some(key)) = (on, any_file) {
        return Err(bad(key, "has no meaning with mqtt.tls = false"));
    }
    if on != Some(true) && any_file.is_none() {
        return Ok(None);
    }
    for (key, file) in files {
        if let Some(p) = file {
            if !p.is_file() {
                return Err(bad(key, format!("{} is not a readable file", p.display())));
            }
        }
    }
    if client_cert.is_some() != client_key.is_some() {
        let key = if client_cert.is_some() {
            "mqtt.client_key"
        } else {
            "mqtt.client_cert"
        };
        return Err(bad(
            key,
            "is required too: mqtt.client_cert and mqtt.client_key go together",
        ));
    }
    Ok(Some(TlsSettings {
        ca_file,
        client_cert,
        client_key,
    }))
}
