//! `[http]` and `[webhook]`: the live page / API / metrics server and the caption webhook.
//! The server is bound to loopback unless told otherwise, and then needs a token
//! ([`http_token`]: one of `http.token`, `http.token_file`, `http.token_env`, else
//! `$EARSHOT_HTTP_TOKEN`).

use super::outputs::secret_setting;
use super::rules::{bad, non_empty, positive, ranged_int, Env};
use super::rules::{DEFAULT_HTTP_CLIENTS, DEFAULT_HTTP_CLIENT_BUFFER, DEFAULT_HTTP_HISTORY};
use super::rules::{DEFAULT_HTTP_HOST, HTTP_TOKEN_ENV};
use super::rules::{DEFAULT_WEBHOOK_BACKOFF_SECONDS, DEFAULT_WEBHOOK_QUEUE};
use super::rules::{DEFAULT_WEBHOOK_RETRIES, DEFAULT_WEBHOOK_TIMEOUT_SECONDS};
use crate::config::file::{RawHttp, RawWebhook};
use crate::sink::http::HttpSettings;
use crate::sink::webhook::WebhookSettings;
use crate::sink::Secret;
use anyhow::Result;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// `http.listen`: `ADDR:PORT`, `[v6]:PORT`, `localhost:PORT` or a bare `PORT` (loopback).
pub fn listen_addr(v: &str) -> Result<SocketAddr> {
    let v = v.trim();
    if let Ok(a) = v.parse::<SocketAddr>() {
        return Ok(a);
    }
    if let Ok(port) = v.parse::<u16>() {
        let host: IpAddr = DEFAULT_HTTP_HOST
            .parse()
            .unwrap_or(Ipv4Addr::LOCALHOST.into());
        return Ok(SocketAddr::new(host, port));
    }
    if let Some(port) = v
        .strip_prefix("localhost:")
        .and_then(|p| p.parse::<u16>().ok())
    {
        return Ok(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port));
    }
    Err(bad(
        "http.listen",
        format!("must be ADDRESS:PORT such as 127.0.0.1:8080, or a port (got \"{v}\")"),
    ))
}

/// `[http]` (`None`: no server), with where the token came from.
pub(super) fn http(h: RawHttp, env: Env) -> Result<(Option<HttpSettings>, Option<String>)> {
    let Some(listen) = non_empty("http.listen", h.listen)? else {
        let set = h.token.is_some()
            || h.token_file.is_some()
            || h.token_env.is_some()
            || h.history.is_some()
            || h.clients.is_some()
            || h.client_buffer.is_some()
            || h.clips_dir.is_some();
        if set {
            return Err(bad(
                "http.listen",
                "is required when other [http] keys are set (or use --http ADDR)",
            ));
        }
        return Ok((None, None));
    };
    let addr = listen_addr(&listen)?;
    let (token, token_from) = http_token(h.token, h.token_file, h.token_env, env)?.unzip();
    if token.is_none() && !addr.ip().is_loopback() {
        return Err(bad(
            "http.token",
            format!(
                "is required when http.listen is not a loopback address (got {addr}): set \
                 http.token_file, http.token_env or ${HTTP_TOKEN_ENV}"
            ),
        ));
    }
    let int = |key: &str, v: Option<i64>, default: i64, hi: i64| -> Result<usize> {
        Ok(ranged_int(key, v, 1, hi)?.unwrap_or(default) as usize)
    };
    let settings = HttpSettings {
        addr,
        token,
        history: int("http.history", h.history, DEFAULT_HTTP_HISTORY, 10_000)?,
        clients: int("http.clients", h.clients, DEFAULT_HTTP_CLIENTS, 16)?,
        client_buffer: int(
            "http.client_buffer",
            h.client_buffer,
            DEFAULT_HTTP_CLIENT_BUFFER,
            4096,
        )?,
        clips_dir: h.clips_dir,
    };
    Ok((Some(settings), token_from))
}

/// The HTTP token and where it came from (see [`secret_setting`]): `http.token`,
/// `http.token_file` or `http.token_env`, else `$EARSHOT_HTTP_TOKEN` when set.
fn http_token(
    inline: Option<Secret>,
    file: Option<std::path::PathBuf>,
    var: Option<String>,
    env: Env,
) -> Result<Option<(Secret, String)>> {
    secret_setting("http.token", inline, file, var, HTTP_TOKEN_ENV, None, env)
}

/// `[webhook]` (`None`: no webhook).
pub(super) fn webhook(w: RawWebhook) -> Result<Option<WebhookSettings>> {
    let Some(url) = non_empty("webhook.url", w.url)? else {
        let set = w.timeout_seconds.is_some()
            || w.retries.is_some()
            || w.backoff_seconds.is_some()
            || w.queue.is_some();
        if set {
            return Err(bad(
                "webhook.url",
                "is required when other [webhook] keys are set",
            ));
        }
        return Ok(None);
    };
    let url = url.trim().to_string();
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    let host = rest.map(|r| r.split(['/', '?', '#']).next().unwrap_or(""));
    if host.is_none_or(|h| h.is_empty() || h.contains(char::is_whitespace)) {
        return Err(bad(
            "webhook.url",
            format!("must be an http:// or https:// URL with a host (got \"{url}\")"),
        ));
    }
    let at_most_an_hour = |key: &str, v: f64| -> Result<f64> {
        if v > 3600.0 {
            return Err(bad(key, format!("must be at most 3600 (got {v})")));
        }
        Ok(v)
    };
    Ok(Some(WebhookSettings {
        url,
        timeout_seconds: at_most_an_hour(
            "webhook.timeout_seconds",
            positive(
                "webhook.timeout_seconds",
                w.timeout_seconds,
                DEFAULT_WEBHOOK_TIMEOUT_SECONDS,
            )?,
        )?,
        retries: ranged_int("webhook.retries", w.retries, 0, 100)?
            .unwrap_or(DEFAULT_WEBHOOK_RETRIES) as u32,
        backoff_seconds: at_most_an_hour(
            "webhook.backoff_seconds",
            positive(
                "webhook.backoff_seconds",
                w.backoff_seconds,
                DEFAULT_WEBHOOK_BACKOFF_SECONDS,
            )?,
        )?,
        queue: ranged_int("webhook.queue", w.queue, 1, 10_000)?.unwrap_or(DEFAULT_WEBHOOK_QUEUE)
            as usize,
    }))
}

#[cfg(test)]
mod tests {
    use crate::config::{validate, RawConfig};

    fn v(toml: &str, env: &[(&str, &str)]) -> anyhow::Result<crate::config::Settings> {
        let lookup = |k: &str| {
            env.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        };
        validate(RawConfig::parse(toml)?, &lookup)
    }

    fn err(toml: &str) -> String {
        format!("{:#}", v(toml, &[]).unwrap_err())
    }

    #[test]
    fn http_settings() {
        let s = v("[http]\nlisten = \"8080\"", &[]).unwrap();
        let h = s.http.unwrap();
        assert_eq!(h.addr.to_string(), "127.0.0.1:8080");
        assert_eq!((h.history, h.clients, h.client_buffer), (100, 8, 64));
        let s = v("[http]\nlisten = \"localhost:9\"", &[]).unwrap();
        assert_eq!(s.http.unwrap().addr.to_string(), "127.0.0.1:9");
        let s = v("[http]\nlisten = \"[::1]:9\"", &[]).unwrap();
        assert!(s.http.unwrap().token.is_none());
        assert!(err("[http]\nlisten = \"0.0.0.0:80\"").contains("`http.token`"));
        let s = v(
            "[http]\nlisten = \"0.0.0.0:80\"\ntoken_env = \"T\"",
            &[("T", "abc")],
        )
        .unwrap();
        assert_eq!(s.http.unwrap().token.unwrap().expose(), "abc");
        assert_eq!(s.http_token_from.as_deref(), Some("$T"));
        assert!(err("[http]\nlisten = \"nowhere\"").contains("`http.listen`"));
        assert!(err("[http]\nhistory = 5").contains("`http.listen`"));
        assert!(err("[http]\nlisten = \"80\"\nclients = 0").contains("`http.clients`"));
        assert!(
            err("[http]\nlisten = \"80\"\ntoken = \"a\"\ntoken_env = \"B\"")
                .contains("`http.token_env`")
        );
        let e = err("[http]\nlisten = \"80\"\ntoken = \"\"");
        assert!(e.contains("`http.token`"), "{e}");
    }

    #[test]
    fn webhook_settings() {
        let s = v("[webhook]\nurl = \"https://h.example/x\"", &[]).unwrap();
        let w = s.webhook.unwrap();
        assert_eq!((w.retries, w.queue), (5, 64));
        for bad in ["ftp://h/", "http://", "h.example", "https:///x"] {
            let e = err(&format!("[webhook]\nurl = \"{bad}\""));
            assert!(e.contains("`webhook.url`"), "{bad}: {e}");
        }
        assert!(err("[webhook]\nretries = 2").contains("`webhook.url`"));
        assert!(
            err("[webhook]\nurl = \"http://h\"\ntimeout_seconds = 1e300")
                .contains("`webhook.timeout_seconds`")
        );
        assert!(err("[webhook]\nurl = \"http://h\"\nqueue = 0").contains("`webhook.queue`"));
        // A webhook alone is an output.
        assert!(v(
            "[output]\nstdout = \"none\"\n[webhook]\nurl = \"http://h\"",
            &[]
        )
        .is_ok());
    }

    #[test]
    fn mqtt_discovery_and_tls_settings() {
        let s = v("[mqtt]\nhost = \"h\"", &[]).unwrap();
        let m = s.mqtt.unwrap();
        let d = m.discovery.unwrap();
        assert!(d.device_id.starts_with("earshot_"));
        assert_eq!(d.prefix, "homeassistant");
        assert!(m.tls.is_none());
        assert_eq!(m.port, 1883);
        let s = v("[mqtt]\nhost = \"h\"\ndiscovery = false\ntls = true", &[]).unwrap();
        let m = s.mqtt.unwrap();
        assert!(m.discovery.is_none());
        assert_eq!(m.port, 8883);
        assert!(err("[mqtt]\nhost = \"h\"\ndevice_id = \"a b\"").contains("`mqtt.device_id`"));
        assert!(
            err("[mqtt]\nhost = \"h\"\ndiscovery = false\ndevice_id = \"x\"")
                .contains("`mqtt.device_id`")
        );
        assert!(err("[mqtt]\nhost = \"h\"\nca_file = \"/nonexistent\"").contains("`mqtt.ca_file`"));
        assert!(
            err("[mqtt]\nhost = \"h\"\ntls = false\nca_file = \"/etc/hostname\"")
                .contains("`mqtt.ca_file`")
        );
        assert!(err("[mqtt]\nhost = \"h\"\nclient_cert = \"/etc/hostname\"")
            .contains("`mqtt.client_key`"));
        assert!(err("[mqtt]\nhost = \"h\"\navailability_topic = \"a/#\"")
            .contains("`mqtt.availability_topic`"));
        assert!(err("[mqtt]\ntls = true").contains("`mqtt.host`"));
    }
}
