//! The live page in a real headless browser (chromium through WebDriver,
//! [`support::browser`]): a `listen --file --fast` run's captions appear on the page within 2 s
//! of their JSON line on stdout, and a saved clip's audio element loads.
//!
//! The file is a FIFO so that the test holds the run until the page is open: the WAV header and
//! a quarter second go in first (earshot reads the header at start-up, before it serves), the
//! rest once the page shows it is live.

mod support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::time::{Duration, Instant};
use support::browser::Browser;
use support::signal::three_segments;
use support::wav::{wav_header, WavKind};

fn pcm16(samples: &[f32]) -> Vec<u8> {
    samples
        .iter()
        .flat_map(|s| ((s.clamp(-1.0, 1.0) * 32767.0).round() as i16).to_le_bytes())
        .collect()
}

fn mkfifo(path: &std::path::Path) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}

#[test]
fn captions_reach_the_page_within_two_seconds_and_a_clip_loads() {
    let Some(bundle) = support::tiny_bundle() else {
        return;
    };
    let Some(browser) = Browser::start() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let clips = tmp.path().join("clips");
    std::fs::create_dir(&clips).unwrap();
    let rate = 16_000;
    support::write_wav(
        &clips.join("clip-a-dog-barks.wav"),
        rate,
        1,
        WavKind::Pcm16,
        &support::signal::tone(rate, 1.0, 440.0, 0.3),
    );
    // 36 s: three 12-s patterns, so several windows with different content.
    let mut audio = Vec::new();
    for _ in 0..3 {
        audio.extend(three_segments(rate));
    }
    let mut bytes = wav_header(rate, 1, WavKind::Pcm16, audio.len() as u64);
    bytes.extend(pcm16(&audio));
    let fifo = tmp.path().join("live.wav");
    mkfifo(&fifo);
    let port = support::broker::free_port();
    let mut child = support::earshot()
        .args([
            "listen",
            "--fast",
            "--format",
            "jsonl",
            "--gate-dbfs",
            "-inf",
        ])
        .args(["--holdoff", "0", "--health", "0.5"])
        .arg("--model")
        .arg(&bundle)
        .arg("--file")
        .arg(&fifo)
        .arg("--http")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--http-clips-dir")
        .arg(&clips)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let fifo_w = fifo.clone();
    let writer = std::thread::spawn(move || {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&fifo_w)
            .unwrap();
        let head = 44 + 8192;
        f.write_all(&bytes[..head]).unwrap();
        f.flush().unwrap();
        let _ = go_rx.recv_timeout(Duration::from_secs(30));
        f.write_all(&bytes[head..]).unwrap();
    });
    // Each caption's JSON line on stdout, with the moment it was read.
    let stdout = child.stdout.take().unwrap();
    let (line_tx, line_rx) = std::sync::mpsc::channel::<(Instant, serde_json::Value)>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let at = Instant::now();
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                let _ = line_tx.send((at, v));
            }
        }
    });
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "earshot did not start serving"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    browser.goto(&format!("http://127.0.0.1:{port}/"));
    browser.wait_for(
        "the event stream",
        "return document.getElementById('status').textContent === 'live';",
        Duration::from_secs(8),
    );
    // The saved clip is listed with an audio element that loads (its metadata at least).
    browser.wait_for(
        "the clip's audio element to load",
        "const a = document.querySelector('#clips audio'); \
         return !!a && a.readyState >= 1 && a.error === null && a.duration > 0.9;",
        Duration::from_secs(8),
    );
    let clip_src = browser.eval("return document.querySelector('#clips audio').src;");
    assert!(
        clip_src
            .as_str()
            .unwrap()
            .ends_with("/clips/clip-a-dog-barks.wav"),
        "{clip_src}"
    );

    // Now the audio: watch the page while the captions come.
    go_tx.send(()).unwrap();
    let mut json_at: HashMap<String, (Instant, String)> = HashMap::new();
    let mut page_at: HashMap<String, Instant> = HashMap::new();
    let mut exited_at: Option<Instant> = None;
    loop {
        while let Ok((at, v)) = line_rx.try_recv() {
            if v["event"] == "caption" {
                let ts = v["timestamp"].as_str().unwrap().to_string();
                let text = v["caption"].as_str().unwrap_or_default().to_string();
                json_at.insert(ts, (at, text));
            }
        }
        let shown = browser.eval(
            "return Array.from(document.querySelectorAll('#captions li')) \
             .map(li => [li.dataset.timestamp, li.querySelector('.text').textContent]);",
        );
        let now = Instant::now();
        for item in shown.as_array().unwrap() {
            let ts = item[0].as_str().unwrap().to_string();
            page_at.entry(ts).or_insert(now);
        }
        if exited_at.is_none() && child.try_wait().unwrap().is_some() {
            exited_at = Some(Instant::now());
        }
        let all_seen = !json_at.is_empty() && json_at.keys().all(|k| page_at.contains_key(k));
        if let Some(e) = exited_at {
            if all_seen || e.elapsed() > Duration::from_secs(3) {
                break;
            }
        }
        assert!(t.elapsed() < Duration::from_secs(90), "run did not end");
        std::thread::sleep(Duration::from_millis(25));
    }
    writer.join().unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        json_at.len() >= 3,
        "captions expected: {json_at:?}\n{stderr}"
    );
    let mut worst = Duration::ZERO;
    for (ts, (at, text)) in &json_at {
        let seen = page_at
            .get(ts)
            .unwrap_or_else(|| panic!("caption {text:?} ({ts}) never shown on the page"));
        let lag = seen.saturating_duration_since(*at);
        worst = worst.max(lag);
        assert!(
            lag <= Duration::from_secs(2),
            "caption {text:?} shown {lag:?} after its JSON line"
        );
    }
    // The text on the page is the caption itself.
    let texts = browser.eval(
        "return Array.from(document.querySelectorAll('#captions .text')).map(e => e.textContent);",
    );
    for (_, text) in json_at.values() {
        assert!(
            texts.as_array().unwrap().iter().any(|t| t == text.as_str()),
            "{text:?} not in {texts}"
        );
    }
    eprintln!(
        "{} captions, each on the page at most {worst:?} after its JSON line",
        json_at.len()
    );
}

/// Tags with their scores, the confidence and the health report as the page shows them (an
/// in-process HTTP sink fed by hand: the tiny bundle has no tags).
#[test]
fn the_page_shows_tags_confidence_and_health() {
    use earshot::sink::http::{HttpSettings, HttpSink};
    use earshot::sink::{Event, EventSink, HealthEvent};
    use support::fake::live_caption;
    let Some(browser) = Browser::start() else {
        return;
    };
    let mut sink = HttpSink::start(&HttpSettings {
        addr: "127.0.0.1:0".parse().unwrap(),
        token: Some(earshot::sink::Secret::new("pagetoken")),
        history: 10,
        clients: 2,
        client_buffer: 16,
        clips_dir: None,
    })
    .unwrap();
    let addr = sink.local_addr();
    sink.emit(&Event::Health(HealthEvent {
        rtf: Some(0.125),
        cpu_temp_c: Some(51.5),
        ..Default::default()
    }))
    .unwrap();
    browser.goto(&format!("http://{addr}/?token=pagetoken"));
    browser.wait_for(
        "the event stream",
        "return document.getElementById('status').textContent === 'live';",
        Duration::from_secs(8),
    );
    let mut c = live_caption("a dog barks", 0.0, 1);
    c.event.caption.confidence = Some(0.75);
    c.event.caption.tags = Some(vec![("Dog".into(), 0.9), ("Bark".into(), 0.625)]);
    sink.emit(&Event::Caption(c)).unwrap();
    browser.wait_for(
        "the caption with its tags",
        "return document.querySelectorAll('#captions .tag').length === 2;",
        Duration::from_secs(2),
    );
    let shown = browser.eval(
        "const li = document.querySelector('#captions li'); return [ \
         li.querySelector('.text').textContent, li.querySelector('.conf').textContent, \
         Array.from(li.querySelectorAll('.tag')).map(t => t.textContent), \
         document.querySelector('#health tr[data-key=rtf] .value').textContent, \
         document.querySelector('#health tr[data-key=cpu_temp_c] .value').textContent, \
         document.getElementById('live').textContent];",
    );
    assert_eq!(
        shown,
        serde_json::json!([
            "a dog barks",
            "(0.75)",
            ["Dog 0.90", "Bark 0.63"],
            "0.125",
            "51.5 °C",
            "a dog barks"
        ])
    );
}
