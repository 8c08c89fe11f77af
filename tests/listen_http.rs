//! `listen --http` and the webhook, in process: the JSON API, the event stream, `/metrics`
//! through a Prometheus text parser, the token, clips (path traversal), slow clients, and a
//! webhook receiver that fails and recovers. The page in a browser: tests/listen_page.rs.

mod support;

use earshot::sink::http::{metrics::HEALTH, HttpSettings, HttpSink};
use earshot::sink::webhook::{WebhookSettings, WebhookSink};
use earshot::sink::{Event, EventSink, HealthEvent, Secret};
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};
use support::fake::live_caption;
use support::http::{get, receiver, EventStream};

fn caption(text: &str, index: u64) -> Event {
    let mut c = live_caption(text, index as f64 * 5.0, index);
    c.event.caption.confidence = Some(0.75);
    c.event.caption.tags = Some(vec![("Speech".into(), 0.9), ("Music".into(), 0.25)]);
    Event::Caption(c)
}

fn health() -> HealthEvent {
    HealthEvent {
        timestamp: Some(SystemTime::now()),
        uptime_s: 12.5,
        audio_s: 12.0,
        rtf: Some(0.25),
        rss_bytes: Some(40 << 20),
        dropped_samples: 7,
        dropped_windows: 1,
        windows: 5,
        captions: 3,
        gated: 1,
        suppressed: 1,
        errors: 0,
        dropped_messages: 2,
        cpu_temp_c: Some(48.5),
        throttled: Some("0x0".into()),
        ..Default::default()
    }
}

fn settings() -> HttpSettings {
    HttpSettings {
        addr: "127.0.0.1:0".parse().unwrap(),
        token: None,
        history: 5,
        clients: 2,
        client_buffer: 4,
        clips_dir: None,
    }
}

fn start(s: &HttpSettings) -> (HttpSink, SocketAddr) {
    let sink = HttpSink::start(s).unwrap();
    let addr = sink.local_addr();
    (sink, addr)
}

#[test]
fn captions_api_keeps_a_bounded_history() {
    let (mut sink, addr) = start(&settings());
    let r = get(addr, "/api/captions", "");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.json(), serde_json::json!([]));
    assert_eq!(get(addr, "/api/health", "").json(), serde_json::Value::Null);
    for i in 0..8 {
        sink.emit(&caption(&format!("caption {i}"), i)).unwrap();
    }
    let all = get(addr, "/api/captions?limit=100", "").json();
    let texts: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["caption"].as_str().unwrap())
        .collect();
    assert_eq!(
        texts,
        [
            "caption 3",
            "caption 4",
            "caption 5",
            "caption 6",
            "caption 7"
        ],
        "the last `history`, oldest first"
    );
    let two = get(addr, "/api/captions?limit=2", "").json();
    assert_eq!(two.as_array().unwrap().len(), 2);
    assert_eq!(two[1]["caption"], "caption 7");
    assert_eq!(two[1]["confidence"], 0.75);
    assert_eq!(two[1]["tags"][0]["tag"], "Speech");
    assert_eq!(two[1]["event"], "caption");
    // Nonsense limits are clamped, not errors.
    assert_eq!(
        get(addr, "/api/captions?limit=abc", "")
            .json()
            .as_array()
            .unwrap()
            .len(),
        5
    );
    sink.emit(&Event::Health(health())).unwrap();
    let h = get(addr, "/api/health", "").json();
    assert_eq!(h["event"], "health");
    assert_eq!(h["dropped_samples"], 7);
    let page = get(addr, "/", "");
    assert_eq!(page.status, 200);
    assert!(page.text().contains("EventSource"));
    assert_eq!(get(addr, "/nope", "").status, 404);
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    use std::io::{Read, Write};
    s.write_all(b"POST /api/captions HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    assert!(raw.starts_with("HTTP/1.1 405"), "{raw}");
}

#[test]
fn event_stream_carries_captions_and_health() {
    let (mut sink, addr) = start(&settings());
    sink.emit(&Event::Health(health())).unwrap();
    let mut es = EventStream::open(addr, "/api/events");
    // The current health first, then what happens.
    let (name, data) = es.next();
    assert_eq!(name, "health");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&data).unwrap()["captions"],
        3
    );
    let t = Instant::now();
    sink.emit(&caption("a dog barks", 1)).unwrap();
    let (name, data) = es.next();
    assert_eq!(name, "caption");
    let v: serde_json::Value = serde_json::from_str(&data).unwrap();
    assert_eq!(v["caption"], "a dog barks");
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    sink.emit(&Event::Summary(health())).unwrap();
    let (name, data) = es.next();
    assert_eq!(name, "health");
    assert!(data.contains("\"summary\""), "{data}");
    // `http.clients` streams at most.
    let _second = EventStream::open(addr, "/api/events");
    assert_eq!(get(addr, "/api/events", "").status, 503);
}

/// Stopping the sink (the end of a run) still delivers every caption already queued for an open
/// event stream, then ends the stream.
#[test]
fn stopping_the_sink_delivers_the_queued_captions_then_ends_the_stream() {
    for round in 0..20 {
        let s = settings();
        let (mut sink, addr) = start(&s);
        let mut es = EventStream::open(addr, "/api/events");
        for i in 0..s.client_buffer as u64 {
            sink.emit(&caption(&format!("caption {i}"), i)).unwrap();
        }
        drop(sink);
        for i in 0..s.client_buffer {
            let (name, data) = es.next();
            assert_eq!(name, "caption", "round {round}");
            let v: serde_json::Value = serde_json::from_str(&data).unwrap();
            assert_eq!(v["caption"], format!("caption {i}"), "round {round}");
        }
        assert!(es.closed(), "round {round}: the stream stays open");
    }
}

#[test]
fn a_slow_client_is_dropped_and_never_slows_captioning() {
    let (mut sink, addr) = start(&settings());
    // A client that never reads: once its socket and its 4-event buffer are full it is
    // dropped; emitting stays fast all along.
    let stuck = std::net::TcpStream::connect(addr).unwrap();
    {
        use std::io::Write;
        (&stuck)
            .write_all(b"GET /api/events HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
    }
    std::thread::sleep(Duration::from_millis(200));
    let big = "a very long caption ".repeat(500);
    let t = Instant::now();
    let mut slowest = Duration::ZERO;
    for i in 0..3000 {
        let e = Instant::now();
        sink.emit(&caption(&big, i)).unwrap();
        slowest = slowest.max(e.elapsed());
    }
    eprintln!(
        "3000 captions of {} bytes emitted in {:?} (slowest {:?})",
        big.len(),
        t.elapsed(),
        slowest
    );
    assert!(slowest < Duration::from_millis(100), "{slowest:?}");
    let metrics = get(addr, "/metrics", "").text();
    assert!(
        metrics.contains("earshot_http_dropped_clients_total 1\n"),
        "{metrics}"
    );
    drop(stuck);
}

#[test]
fn metrics_parse_as_prometheus_text_with_every_health_number() {
    let (mut sink, addr) = start(&settings());
    sink.emit(&caption("rain falls", 1)).unwrap();
    sink.emit(&Event::Health(health())).unwrap();
    let r = get(addr, "/metrics", "");
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = r.text();
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("Prometheus text");
    let value = |name: &str| -> f64 {
        let s = scrape
            .samples
            .iter()
            .find(|s| s.metric == name)
            .unwrap_or_else(|| panic!("{name} missing in\n{text}"));
        match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => panic!("{name}: not a plain value"),
        }
    };
    // Every number of the health JSON is a metric with the same value.
    let h = get(addr, "/api/health", "").json();
    for (key, name, _, _) in HEALTH {
        let want = match &h[*key] {
            serde_json::Value::Number(n) => n.as_f64().unwrap(),
            serde_json::Value::String(s) => {
                u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap() as f64
            }
            other => panic!("{key}: {other}"),
        };
        assert_eq!(value(name), want, "{name}");
    }
    assert_eq!(value("earshot_dropped_samples_total"), 7.0);
    assert_eq!(value("earshot_http_captions_total"), 1.0);
    assert!(value("earshot_last_caption_timestamp_seconds") > 1.6e9);
    assert_eq!(value("earshot_up"), 1.0);
}

#[test]
fn a_token_guards_every_route() {
    let mut s = settings();
    s.token = Some(Secret::new("s3cret token"));
    let (mut sink, addr) = start(&s);
    sink.emit(&caption("a bell rings", 1)).unwrap();
    for path in [
        "/",
        "/api/captions",
        "/api/health",
        "/metrics",
        "/api/events",
    ] {
        let r = get(addr, path, "");
        assert_eq!(r.status, 401, "{path}");
        assert!(!r.text().contains("s3cret"));
        assert_eq!(
            get(addr, path, "Authorization: Bearer wrong\r\n").status,
            401
        );
    }
    let r = get(
        addr,
        "/api/captions",
        "Authorization: Bearer s3cret token\r\n",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json()[0]["caption"], "a bell rings");
    assert_eq!(get(addr, "/metrics?token=s3cret%20token", "").status, 200);
}

#[test]
fn clips_are_served_read_only_from_their_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let clips = tmp.path().join("clips");
    std::fs::create_dir(&clips).unwrap();
    let wav = support::wav::wav_header(16000, 1, support::WavKind::Pcm16, 0);
    std::fs::write(clips.join("2026-12-07 a dog.wav"), &wav).unwrap();
    std::fs::write(tmp.path().join("secret.txt"), b"private").unwrap();
    std::os::unix::fs::symlink(tmp.path().join("secret.txt"), clips.join("escape.wav")).unwrap();
    let mut s = settings();
    s.clips_dir = Some(clips.clone());
    let (_sink, addr) = start(&s);
    let r = get(addr, "/clips/2026-12-07%20a%20dog.wav", "");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("audio/wav"));
    assert_eq!(r.body, wav);
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    // Audio elements seek with byte ranges.
    let r = get(
        addr,
        "/clips/2026-12-07%20a%20dog.wav",
        "Range: bytes=4-11\r\n",
    );
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-range"), Some("bytes 4-11/44"));
    assert_eq!(r.body, &wav[4..12]);
    let r = get(
        addr,
        "/clips/2026-12-07%20a%20dog.wav",
        "Range: bytes=44-\r\n",
    );
    assert_eq!(r.status, 416);
    assert_eq!(r.header("content-range"), Some("bytes */44"));
    let list = get(addr, "/api/clips", "").json();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"2026-12-07 a dog.wav"), "{list}");
    for bad in [
        "/clips/../secret.txt",
        "/clips/%2e%2e/secret.txt",
        "/clips/..%2fsecret.txt",
        "/clips/escape.wav",
        "/clips//etc/passwd",
        "/clips/%2fetc%2fpasswd",
        "/clips/",
    ] {
        let r = get(addr, bad, "");
        assert_eq!(r.status, 404, "{bad}");
        assert!(!r.text().contains("private"), "{bad}");
    }
    // Without a clips directory nothing is served.
    let (_sink2, addr2) = start(&settings());
    assert_eq!(
        get(addr2, "/clips/2026-12-07%20a%20dog.wav", "").status,
        404
    );
    assert_eq!(get(addr2, "/api/clips", "").json(), serde_json::json!([]));
}

#[test]
fn oversized_and_garbage_requests_get_an_error_not_a_hang() {
    let (_sink, addr) = start(&settings());
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let huge = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(20_000));
    let _ = s.write_all(huge.as_bytes());
    let mut raw = String::new();
    let _ = s.read_to_string(&mut raw);
    assert!(raw.starts_with("HTTP/1.1 431"), "{raw}");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(b"\x00\x01garbage\r\n\r\n").unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    assert!(raw.starts_with("HTTP/1.1 400"), "{raw}");
}

// ---------- webhook ----------

fn webhook(url: String, retries: u32, queue: usize) -> WebhookSettings {
    WebhookSettings {
        url,
        timeout_seconds: 2.0,
        retries,
        backoff_seconds: 0.05,
        queue,
    }
}

fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(t.elapsed() < Duration::from_secs(15), "timed out: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn webhook_retries_a_failing_server_until_it_recovers() {
    let rx = receiver(3); // 500, 500, 500, then 200
    let url = format!("http://{}/hook", rx.addr);
    let mut sink = WebhookSink::start(&webhook(url, 5, 16)).unwrap();
    for i in 0..3 {
        sink.emit(&caption(&format!("caption {i}"), i)).unwrap();
    }
    sink.emit(&Event::Health(health())).unwrap(); // not posted
    sink.flush().unwrap();
    let bodies = rx.bodies.lock().unwrap().clone();
    let texts: Vec<String> = bodies
        .iter()
        .map(|b| serde_json::from_str::<serde_json::Value>(b).unwrap()["caption"].to_string())
        .collect();
    assert_eq!(
        texts,
        ["\"caption 0\"", "\"caption 1\"", "\"caption 2\""],
        "in order, each once"
    );
    assert_eq!(sink.failed_attempts(), 3);
    assert_eq!(sink.delivered(), 3);
    assert_eq!(sink.dropped(), 0);
}

#[test]
fn webhook_gives_up_after_its_retries_and_counts_it() {
    let rx = receiver(0);
    rx.down.store(true, std::sync::atomic::Ordering::Relaxed);
    let url = format!("http://{}/hook", rx.addr);
    let mut sink = WebhookSink::start(&webhook(url, 2, 16)).unwrap();
    sink.emit(&caption("lost", 1)).unwrap();
    wait_for("given up", || sink.dropped() == 1);
    assert_eq!(sink.failed_attempts(), 3, "one try and two retries");
    // The server recovers: the next caption goes through.
    rx.down.store(false, std::sync::atomic::Ordering::Relaxed);
    sink.emit(&caption("delivered", 2)).unwrap();
    sink.flush().unwrap();
    assert_eq!(rx.bodies.lock().unwrap().len(), 1);
    assert_eq!(sink.dropped(), 1);
}

#[test]
fn webhook_queue_is_bounded_while_the_server_is_down() {
    // Nothing listens there: every POST fails fast; the queue holds 2.
    let port = support::broker::free_port();
    let mut s = webhook(format!("http://127.0.0.1:{port}/"), 100, 2);
    s.backoff_seconds = 1.0;
    let mut sink = WebhookSink::start(&s).unwrap();
    let t = Instant::now();
    for i in 0..50 {
        sink.emit(&caption("queued", i)).unwrap();
    }
    assert!(
        t.elapsed() < Duration::from_millis(200),
        "{:?}",
        t.elapsed()
    );
    // 50 captions, 1 in the sender's hand, 1 waiting: 48 dropped, oldest first.
    wait_for("drops counted", || sink.dropped() >= 48);
    assert!(
        sink.flush().is_err(),
        "not delivered: flush says so in time"
    );
}

// ---------- settings and --check-config ----------

fn check(args: &[&str], env: &[(&str, &str)]) -> support::Run {
    let bundle = support::tiny_bundle().unwrap();
    let mut c = support::earshot();
    c.args([
        "listen",
        "--check-config",
        "--stdin",
        "--rate",
        "16000",
        "--model",
    ])
    .arg(&bundle)
    .args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    support::finished(c.output().unwrap())
}

#[test]
fn check_config_reports_and_checks_http_webhook_and_mqtt_tls() {
    if support::tiny_bundle().is_none() {
        return;
    }
    // Another address than loopback needs a token; the token never prints.
    let r = check(&["--http", "0.0.0.0:8080"], &[]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("`http.token`"), "{}", r.stderr);
    let r = check(
        &[
            "--http",
            "0.0.0.0:0",
            "--webhook",
            "http://127.0.0.1:9/hook",
        ],
        &[("EARSHOT_HTTP_TOKEN", "tok-9f8e7d")],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    for want in [
        "http.listen = \"0.0.0.0:0\"",
        "http.token = <redacted>  # from $EARSHOT_HTTP_TOKEN",
        "http.history = 100",
        "webhook.url = \"http://127.0.0.1:9/hook\"",
        "webhook.retries = 5",
    ] {
        assert!(r.stdout.contains(want), "{want} in\n{}", r.stdout);
    }
    assert!(!r.stdout.contains("tok-9f8e7d") && !r.stderr.contains("tok-9f8e7d"));
    let r = check(&["--http", "8080"], &[]);
    assert!(
        r.stdout.contains("http.listen = \"127.0.0.1:8080\""),
        "{}",
        r.stdout
    );
    // An address in use is found by the check.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let r = check(&["--http", &addr], &[]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("http.listen"), "{}", r.stderr);
    // Bad webhook URLs and TLS files name their key.
    let r = check(&["--webhook", "ftp://x/"], &[]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("`webhook.url`"), "{}", r.stderr);
    let r = check(
        &["--mqtt-host", "h", "--mqtt-ca-file", "/nonexistent/ca.pem"],
        &[],
    );
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("`mqtt.ca_file`"), "{}", r.stderr);
    let tmp = tempfile::tempdir().unwrap();
    let not_pem = tmp.path().join("ca.pem");
    std::fs::write(&not_pem, "not a certificate\n").unwrap();
    let r = check(
        &[
            "--mqtt-host",
            "h",
            "--mqtt-ca-file",
            not_pem.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("mqtt.ca_file"), "{}", r.stderr);
    // MQTT defaults: discovery on, availability topic, TLS port with a CA file.
    let r = check(&["--mqtt-host", "h"], &[]);
    for want in [
        "mqtt.availability_topic = \"earshot/captions/status\"",
        "mqtt.discovery = true",
        "mqtt.discovery_prefix = \"homeassistant\"",
        "mqtt.device_id = \"earshot_",
        "mqtt.tls = false",
        "mqtt.port = 1883",
    ] {
        assert!(r.stdout.contains(want), "{want} in\n{}", r.stdout);
    }
    if let Some(pki) = support::broker::tls_files() {
        let ca = pki.path("ca.pem");
        let r = check(
            &["--mqtt-host", "h", "--mqtt-ca-file", ca.to_str().unwrap()],
            &[],
        );
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert!(r.stdout.contains("mqtt.tls = true"), "{}", r.stdout);
        assert!(r.stdout.contains("mqtt.port = 8883"), "{}", r.stdout);
    }
}

#[test]
fn listen_posts_each_caption_to_the_webhook() {
    let Some(bundle) = support::tiny_bundle() else {
        return;
    };
    let rx = receiver(1); // the first POST fails: retried
    let out = support::earshot()
        .args([
            "listen",
            "--fast",
            "--format",
            "jsonl",
            "--gate-dbfs",
            "-inf",
        ])
        .arg("--model")
        .arg(&bundle)
        .arg("--file")
        .arg(support::golden().join("tiny-input.wav"))
        .arg("--webhook")
        .arg(format!("http://{}/hook", rx.addr))
        .output()
        .unwrap();
    let r = support::finished(out);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let captions: Vec<serde_json::Value> = support::json::json_lines(&r.stdout)
        .into_iter()
        .filter(|v| v["event"] == "caption")
        .collect();
    assert!(!captions.is_empty(), "{}", r.stdout);
    let bodies = rx.bodies.lock().unwrap().clone();
    let posted: Vec<serde_json::Value> = bodies
        .iter()
        .map(|b| serde_json::from_str(b).unwrap())
        .collect();
    assert_eq!(posted, captions, "each caption's JSON line, once");
    assert!(
        r.stderr.contains("webhook"),
        "the failed POST is logged: {}",
        r.stderr
    );
}
