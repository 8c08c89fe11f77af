//! `earshot listen` / `earshot devices` as a process: configuration errors, the shipped example
//! config, and SIGTERM/SIGINT handling (finish the window, flush, exit 0). The runs that caption
//! need the committed golden tiny bundle; they are skipped with a message while it is missing.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};
use support::earshot;
use support::json::json_lines;

fn run(args: &[&str]) -> (i32, String, String) {
    let out = earshot().args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_config_key_is_named_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("[mqtt]\nhost = \"h\"\nqos = 7\n", "mqtt.qos"),
        ("[mqtt]\nhots = \"h\"\n", "hots"),
        ("[captions]\ngate_dbfs = \"loud\"\n", "gate_dbfs"),
        (
            "[source]\nkind = \"stdin\"\nstdin_rate = 100\n",
            "source.stdin_rate",
        ),
    ];
    for (i, (toml, key)) in cases.iter().enumerate() {
        let p = dir.path().join(format!("c{i}.toml"));
        std::fs::write(&p, toml).unwrap();
        let (code, _out, err) = run(&["listen", "--config", p.to_str().unwrap()]);
        assert_eq!(code, 2, "{toml:?}: {err}");
        assert!(err.contains(key), "{toml:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one error line: {err}");
    }
    // The same validation applies to flags.
    let (code, _, err) = run(&["listen", "--stdin", "--rate", "16000", "--mqtt-qos", "5"]);
    assert_eq!(code, 2);
    assert!(err.contains("mqtt"), "{err}");
    let (code, _, err) = run(&["listen", "--config", "/nonexistent/earshot.toml"]);
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent/earshot.toml"), "{err}");
}

#[test]
fn example_config_is_valid_and_flags_override_it() {
    let cfg = support::repo().join("config/earshot.toml");
    let (code, out, err) = run(&[
        "listen",
        "--config",
        cfg.to_str().unwrap(),
        "--check-config",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("source.kind = \"mic\""), "{out}");
    let (code, out, err) = run(&[
        "listen",
        "--config",
        cfg.to_str().unwrap(),
        "--check-config",
        "--stdin",
        "--rate",
        "48000",
        "--hop",
        "2.5",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("source.kind = \"stdin\"")
            && out.contains("source.stdin_rate = 48000")
            && out.contains("captions.hop_seconds = 2.5"),
        "{out}"
    );
}

/// Spawns `earshot listen` with the tiny bundle on stdin, streams `seconds` of audio, waits for
/// the first caption, sends `signal` and checks: exit 0, the partial window captioned, summary
/// printed (outputs flushed).
fn signal_run(signal: i32) {
    let Some(bundle) = support::tiny_bundle() else {
        return;
    };
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(bundle.join("manifest.json")).unwrap())
            .unwrap();
    let window = manifest["window_seconds"].as_f64().unwrap();
    let rate = 16_000u32;
    let mut child = earshot()
        .args([
            "listen",
            "--model",
            bundle.to_str().unwrap(),
            "--stdin",
            "--rate",
            "16000",
            "--format",
            "jsonl",
            "--gate-dbfs",
            "-inf",
            "--holdoff",
            "0",
            "--health",
            "0",
            "--hop",
            &format!("{window}"),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // One full window and a bit more; stdin stays open, as with a live recorder.
    let audio = support::signal(rate, window + 0.5);
    let bytes: Vec<u8> = audio
        .iter()
        .flat_map(|&s| ((s * 32767.0) as i16).to_le_bytes())
        .collect();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&bytes).unwrap();
    stdin.flush().unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let first = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("no caption for the first window");
    let v: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(v["event"], "caption");
    // Let earshot read the rest of the pipe (the last 0.5 s) before the signal.
    std::thread::sleep(Duration::from_millis(500));
    unsafe { libc::kill(child.id() as i32, signal) };
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "did not exit after the signal"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    drop(stdin);
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(0), "stderr: {err}");
    let rest: Vec<serde_json::Value> = rx
        .try_iter()
        .map(|l| serde_json::from_str(&l).unwrap())
        .collect();
    // The partial window (the last 0.5 s) was finished and the summary flushed.
    let last_caption = rest
        .iter()
        .find(|e| e["event"] == "caption")
        .expect("partial window");
    assert!((last_caption["end"].as_f64().unwrap() - (window + 0.5)).abs() < 0.01);
    let summary = rest.last().expect("summary");
    assert_eq!(summary["event"], "summary");
    assert_eq!(summary["captions"], 2);
}

#[test]
fn sigterm_finishes_window_flushes_and_exits_0() {
    signal_run(libc::SIGTERM);
}

#[test]
fn sigint_finishes_window_flushes_and_exits_0() {
    signal_run(libc::SIGINT);
}

#[test]
fn file_source_fast_with_the_tiny_bundle() {
    let Some(bundle) = support::tiny_bundle() else {
        return;
    };
    let wav = support::golden().join("tiny-input.wav");
    let dir = tempfile::tempdir().unwrap();
    let jsonl = dir.path().join("out.jsonl");
    let (code, out, err) = run(&[
        "listen",
        "--model",
        bundle.to_str().unwrap(),
        "--file",
        wav.to_str().unwrap(),
        "--fast",
        "--gate-dbfs",
        "-inf",
        "--format",
        "text",
        "--jsonl-file",
        jsonl.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let lines = json_lines(&std::fs::read_to_string(&jsonl).unwrap());
    let caps: Vec<_> = lines.iter().filter(|e| e["event"] == "caption").collect();
    assert!(!caps.is_empty(), "{out}\n{err}");
    assert_eq!(
        out.lines().count(),
        caps.len(),
        "text and JSON sinks saw the same captions"
    );
    for c in &caps {
        for key in [
            "timestamp",
            "start",
            "end",
            "caption",
            "latency_ms",
            "rtf",
            "dropped_samples",
        ] {
            assert!(!c[key].is_null(), "{key} missing in {c}");
        }
    }
    assert_eq!(lines.last().unwrap()["event"], "summary");
}

#[test]
fn every_sink_at_once_from_the_command_line() {
    let Some(bundle) = support::tiny_bundle() else {
        return;
    };
    let Some(broker) = support::broker::start_broker(support::broker::free_port()) else {
        return;
    };
    let mqtt = support::broker::subscribe(broker.port, "earshot/cli/#");
    let (master, slave, tty) = support::pty::pty_pair();
    let serial = support::pty::collect_pty(&master, Duration::from_secs(60));
    let dir = tempfile::tempdir().unwrap();
    let jsonl = dir.path().join("out.jsonl");
    let wav = support::golden().join("tiny-input.wav");
    let port = broker.port.to_string();
    let (code, out, err) = run(&[
        "listen",
        "--model",
        bundle.to_str().unwrap(),
        "--file",
        wav.to_str().unwrap(),
        "--fast",
        "--gate-dbfs",
        "-inf",
        "--format",
        "jsonl",
        "--jsonl-file",
        jsonl.to_str().unwrap(),
        "--serial",
        &tty,
        "--mqtt-host",
        "127.0.0.1",
        "--mqtt-port",
        &port,
        "--mqtt-topic",
        "earshot/cli/captions",
        "--mqtt-qos",
        "1",
    ]);
    assert_eq!(code, 0, "{err}");
    drop(slave);
    let stdout_caps: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["event"] == "caption")
        .collect();
    assert!(!stdout_caps.is_empty(), "{out}{err}");
    let file = std::fs::read_to_string(&jsonl).unwrap();
    let file_caps = file
        .lines()
        .filter(|l| l.contains("\"event\":\"caption\""))
        .count();
    assert_eq!(file_caps, stdout_caps.len());
    // Serial: one text line per caption.
    let serial = String::from_utf8(serial.recv_timeout(Duration::from_secs(10)).unwrap()).unwrap();
    let serial_lines: Vec<&str> = serial.lines().collect();
    assert_eq!(serial_lines.len(), stdout_caps.len(), "{serial:?}");
    let text = stdout_caps[0]["caption"].as_str().unwrap();
    assert!(serial_lines[0].ends_with(text), "{serial:?}");
    // MQTT: the captions, and the summary on the health topic (flushed before exit).
    let mut got = Vec::new();
    while let Ok(m) = mqtt.recv_timeout(Duration::from_secs(5)) {
        // `online`/`offline` on the availability topic: tests/listen_mqtt_ha.rs.
        if m.0 == "earshot/cli/captions/status" {
            continue;
        }
        got.push(m);
        if got.len() == stdout_caps.len() + 1 {
            break;
        }
    }
    let caps: Vec<_> = got
        .iter()
        .filter(|m| m.0 == "earshot/cli/captions")
        .collect();
    assert_eq!(caps.len(), stdout_caps.len(), "{got:?}");
    let v: serde_json::Value = serde_json::from_slice(&caps[0].1).unwrap();
    assert_eq!(v["caption"], text);
    let summary = got
        .iter()
        .find(|m| m.0 == "earshot/cli/captions/health")
        .expect("summary published");
    let v: serde_json::Value = serde_json::from_slice(&summary.1).unwrap();
    assert_eq!(v["event"], "summary");
}

/// (start, end, caption) of the caption lines of a JSON-lines output.
fn caption_list(jsonl: &str) -> Vec<(f64, f64, String)> {
    jsonl
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e.get("event").is_none_or(|k| k == "caption"))
        .map(|e| {
            (
                e["start"].as_f64().unwrap(),
                e["end"].as_f64().unwrap(),
                e["caption"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn listen_on_a_file_matches_caption_and_stdin() {
    let Some(bundle) = support::tiny_bundle() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("long.wav");
    // 23 s at 44.1 kHz stereo: 10 s windows every 5 s, a padded tail, resampling, downmix.
    let mono = support::signal(44_100, 23.0);
    let stereo: Vec<f32> = mono.iter().flat_map(|&s| [s, s]).collect();
    support::write_wav(&wav, 44_100, 2, support::WavKind::Pcm16, &stereo);
    let (b, w) = (bundle.to_str().unwrap(), wav.to_str().unwrap());
    let (code, caption_out, err) = run(&["caption", "--model", b, w, "--format", "jsonl"]);
    assert_eq!(code, 0, "{err}");
    let expected = caption_list(&caption_out);
    assert_eq!(expected.len(), 4, "{caption_out}");
    let common_args = [
        "--model",
        b,
        "--gate-dbfs",
        "-inf",
        "--holdoff",
        "0",
        "--format",
        "jsonl",
    ];
    let mut args = vec!["listen", "--file", w, "--fast"];
    args.extend(common_args);
    let (code, listen_out, err) = run(&args);
    assert_eq!(code, 0, "{err}");
    assert_eq!(caption_list(&listen_out), expected);
    // The same file as a WAV stream on stdin (its header gives the format). Stdin is a live
    // source (a slow model costs windows), so let every window wait here.
    let cfg = dir.path().join("queue.toml");
    std::fs::write(&cfg, "[captions]\nqueue_windows = 8\n").unwrap();
    let mut args = vec!["listen", "--stdin", "--config", cfg.to_str().unwrap()];
    args.extend(common_args);
    let out = earshot()
        .args(&args)
        .stdin(std::fs::File::open(&wav).unwrap())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        caption_list(&String::from_utf8_lossy(&out.stdout)),
        expected
    );
}

#[test]
fn devices_lists_or_explains() {
    let (code, out, err) = run(&["devices"]);
    // No audio hardware here: either a list (ALSA's null/default devices) or a clear message.
    assert!(code == 0 || code == 1, "{out}{err}");
    assert!(
        out.contains("input devices") || out.contains("No audio input devices") || !err.is_empty(),
        "{out}{err}"
    );
}
