//! Regression tests for issue 13 (caption / listen / config): each test failed on the main
//! branch before its fix. Runs that caption need the committed tiny bundle (skipped without it).

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
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

fn bundle() -> Option<String> {
    support::tiny_bundle().map(|p| p.to_str().unwrap().to_string())
}

/// A 16 kHz mono 16-bit WAV of `seconds` of the test signal.
fn wav(dir: &Path, name: &str, seconds: f64) -> PathBuf {
    let p = dir.join(name);
    support::write_wav(
        &p,
        16_000,
        1,
        support::WavKind::Pcm16,
        &support::signal(16_000, seconds),
    );
    p
}

fn ends(jsonl: &str) -> Vec<f64> {
    json_lines(jsonl)
        .iter()
        .map(|e| e["end"].as_f64().unwrap())
        .collect()
}

// ---- item 4: the last, partial window before a decode error ----

#[test]
fn caption_prints_the_part_before_a_cut() {
    let Some(b) = bundle() else { return };
    let dir = tempfile::tempdir().unwrap();
    let full = wav(dir.path(), "full.wav", 30.0);
    // Cut at 22 s: the header still announces 30 s.
    let bytes = std::fs::read(&full).unwrap();
    let cut = dir.path().join("cut.wav");
    std::fs::write(&cut, &bytes[..44 + 22 * 16_000 * 2]).unwrap();
    let (code, out, err) = run(&[
        "caption",
        "--model",
        &b,
        cut.to_str().unwrap(),
        "--format",
        "jsonl",
    ]);
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(err.trim().lines().count(), 1, "one error line: {err}");
    let e = ends(&out);
    assert!(
        e.iter().any(|&t| (t - 22.0).abs() < 0.05),
        "the window 15–22 s is captioned: {out}"
    );
}

#[test]
fn caption_prints_the_readable_part_of_a_flac_with_a_flipped_byte() {
    let Some(b) = bundle() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = std::fs::read(support::repo().join("tests/data/tone-22k-stereo.flac")).unwrap();
    // One byte in the middle of the audio frames: the frames after it cannot be decoded.
    let k = bytes.len() / 2;
    bytes[k] ^= 0xFF;
    let bad = dir.path().join("flipped.flac");
    std::fs::write(&bad, &bytes).unwrap();
    let (code, out, err) = run(&[
        "caption",
        "--model",
        &b,
        bad.to_str().unwrap(),
        "--format",
        "jsonl",
    ]);
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(err.trim().lines().count(), 1, "one error line: {err}");
    let e = ends(&out);
    assert_eq!(
        e.len(),
        1,
        "the readable part (one partial window) is captioned: {out}"
    );
    assert!(
        e[0] > 0.5 && e[0] < 1.0,
        "ends where decoding stopped: {out}"
    );
}

// ---- item 11: --window / --hop are usage errors naming the setting ----

#[test]
fn caption_window_and_hop_are_checked_like_listen() {
    let Some(b) = bundle() else { return };
    let dir = tempfile::tempdir().unwrap();
    let w = wav(dir.path(), "a.wav", 3.0);
    let w = w.to_str().unwrap();
    for (args, key) in [
        (vec!["--window", "5"], "--window"),
        (vec!["--hop", "11"], "--hop"),
        (vec!["--hop", "3600"], "--hop"),
    ] {
        let mut a = vec!["caption", "--model", &b, w];
        a.extend(&args);
        let (code, out, err) = run(&a);
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert!(err.contains(key), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
    // listen names its key for the same mistake.
    let (code, _, err) = run(&[
        "listen", "--model", &b, "--file", w, "--fast", "--window", "5",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("captions.window_seconds"), "{err}");
}

// ---- item 14: closed outputs, stdin, SIGHUP ----

#[test]
fn caption_into_a_closed_pipe_stops_quietly() {
    let Some(b) = bundle() else { return };
    let dir = tempfile::tempdir().unwrap();
    let w = wav(dir.path(), "a.wav", 12.0);
    let w = w.to_str().unwrap();
    let mut child = earshot()
        .args(["caption", "--model", &b, w, w, w])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // `| head -0`: the reader is gone
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(err, "", "no message for a closed pipe");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn caption_with_stdout_closed_fails_with_one_message() {
    let Some(b) = bundle() else { return };
    let dir = tempfile::tempdir().unwrap();
    let w = wav(dir.path(), "a.wav", 3.0);
    let bin = earshot().get_program().to_owned();
    let out = Command::new("sh")
        .arg("-c")
        .arg("exec \"$0\" caption --model \"$1\" \"$2\" >&-")
        .arg(&bin)
        .arg(&b)
        .arg(&w)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("stdout") || err.contains("standard output"),
        "{err}"
    );
}

#[test]
fn caption_dash_reads_stdin() {
    let Some(b) = bundle() else { return };
    let dir = tempfile::tempdir().unwrap();
    let w = wav(dir.path(), "a.wav", 12.0);
    let (code, expected, err) = run(&[
        "caption",
        "--model",
        &b,
        w.to_str().unwrap(),
        "--format",
        "jsonl",
    ]);
    assert_eq!(code, 0, "{err}");
    let out = earshot()
        .args(["caption", "--model", &b, "-", "--format", "jsonl"])
        .stdin(std::fs::File::open(&w).unwrap())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let got = String::from_utf8_lossy(&out.stdout);
    let strip = |s: &str| -> Vec<(f64, f64, String)> {
        json_lines(s)
            .iter()
            .map(|e| {
                (
                    e["start"].as_f64().unwrap(),
                    e["end"].as_f64().unwrap(),
                    e["caption"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    assert_eq!(strip(&got), strip(&expected));
}

/// Streams `seconds` of raw 16 kHz PCM into `earshot listen --stdin`, waits for the first
/// caption line, then returns the child (stdin still open) and the stdout line receiver.
fn listen_stdin(
    b: &str,
    extra: &[&str],
    seconds: f64,
) -> (
    std::process::Child,
    std::process::ChildStdin,
    std::sync::mpsc::Receiver<String>,
) {
    let mut args = vec![
        "listen",
        "--model",
        b,
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
        "10",
    ];
    args.extend(extra);
    let mut child = earshot()
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let bytes: Vec<u8> = support::signal(16_000, seconds)
        .iter()
        .flat_map(|&s| ((s * 32767.0) as i16).to_le_bytes())
        .collect();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&bytes).unwrap();
    stdin.flush().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, stdin, rx)
}

fn wait_exit(child: &mut std::process::Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let t = Instant::now();
    while t.elapsed() < limit {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[test]
fn sighup_stops_listen_gracefully() {
    let Some(b) = bundle() else { return };
    let (mut child, stdin, rx) = listen_stdin(&b, &[], 10.5);
    let first = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("first caption");
    assert!(first.contains("\"caption\""), "{first}");
    std::thread::sleep(Duration::from_millis(500));
    unsafe { libc::kill(child.id() as i32, libc::SIGHUP) };
    let status = wait_exit(&mut child, Duration::from_secs(60)).expect("exit after SIGHUP");
    drop(stdin);
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
    let rest: Vec<serde_json::Value> = rx
        .try_iter()
        .map(|l| serde_json::from_str(&l).unwrap())
        .collect();
    let partial = rest
        .iter()
        .find(|e| e["event"] == "caption")
        .expect("the partial window is captioned");
    assert!((partial["end"].as_f64().unwrap() - 10.5).abs() < 0.01);
    assert_eq!(rest.last().unwrap()["event"], "summary");
}

#[test]
fn listen_stops_when_its_only_output_is_gone() {
    let Some(b) = bundle() else { return };
    let (mut child, mut stdin, rx) = listen_stdin(&b, &[], 10.5);
    rx.recv_timeout(Duration::from_secs(60))
        .expect("first caption");
    drop(rx); // the reader thread ends at the next line: stdout is a dead pipe
              // Keep the source alive, as `arecord | earshot listen | head -1` would.
    let feeder = std::thread::spawn(move || {
        let chunk = vec![0x10u8; 32_000];
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(90) {
            if stdin.write_all(&chunk).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let status = wait_exit(&mut child, Duration::from_secs(90));
    if status.is_none() {
        let _ = child.kill();
    }
    let _ = feeder.join();
    assert!(
        status.is_some(),
        "listen kept running with its only output dead"
    );
}

#[test]
fn listen_with_stdout_closed_fails_with_one_message() {
    let Some(b) = bundle() else { return };
    let bin = earshot().get_program().to_owned();
    let out = Command::new("sh")
        .arg("-c")
        .arg("exec \"$0\" listen --model \"$1\" --stdin --rate 16000 </dev/null >&-")
        .arg(&bin)
        .arg(&b)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("standard output"), "{err}");
}

#[test]
fn missing_serial_port_at_start_is_retried_unless_required() {
    let Some(b) = bundle() else { return };
    let dir = tempfile::tempdir().unwrap();
    let w = wav(dir.path(), "a.wav", 3.0);
    let w = w.to_str().unwrap();
    let jsonl = dir.path().join("out.jsonl");
    let (code, _, err) = run(&[
        "listen",
        "--model",
        &b,
        "--file",
        w,
        "--fast",
        "--gate-dbfs",
        "-inf",
        "--format",
        "none",
        "--jsonl-file",
        jsonl.to_str().unwrap(),
        "--serial",
        "/dev/nonexistent-tty",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("/dev/nonexistent-tty"),
        "a warning names the port: {err}"
    );
    let lines = json_lines(&std::fs::read_to_string(&jsonl).unwrap());
    assert!(lines.iter().any(|e| e["event"] == "caption"));
    // serial.required = true makes it fatal at start.
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        "[serial]\ndevice = \"/dev/nonexistent-tty\"\nrequired = true\n",
    )
    .unwrap();
    let (code, _, err) = run(&[
        "listen",
        "--model",
        &b,
        "--config",
        cfg.to_str().unwrap(),
        "--file",
        w,
        "--fast",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("/dev/nonexistent-tty"), "{err}");
}

#[cfg(feature = "mic")]
#[test]
fn missing_capture_device_at_start_is_retried_unless_required() {
    let Some(b) = bundle() else { return };
    let mut child = earshot()
        .args([
            "listen",
            "--model",
            &b,
            "--device",
            "no-such-device-xyz",
            "--health",
            "0",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let early = wait_exit(&mut child, Duration::from_secs(4));
    if early.is_none() {
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    }
    let status = wait_exit(&mut child, Duration::from_secs(30)).expect("exit after SIGTERM");
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(
        early.is_none(),
        "a missing device is retried, not fatal: {err}"
    );
    assert_eq!(status.code(), Some(0), "{err}");
    let (code, _, err) = run(&[
        "listen",
        "--model",
        &b,
        "--device",
        "no-such-device-xyz",
        "--device-required",
    ]);
    assert_eq!(code, 1, "{err}");
}

// ---- item 6: one NaN policy ----

// Item 6, a file with a NaN: one policy on every path (zeroed, one warning) is tested in
// tests/audio_hardening.rs (non_finite_samples_are_zeroed_and_warned_about_on_every_path).

#[test]
fn nan_on_stdin_is_zeroed_and_warned_once() {
    let Some(b) = bundle() else { return };
    let mut s = support::signal(16_000, 3.0);
    s[100] = f32::NAN;
    s[200] = f32::INFINITY;
    let bytes: Vec<u8> = s.iter().flat_map(|v| v.to_le_bytes()).collect();
    let mut child = earshot()
        .args([
            "listen",
            "--model",
            &b,
            "--stdin",
            "--rate",
            "16000",
            "--sample-format",
            "f32le",
            "--format",
            "jsonl",
            "--gate-dbfs",
            "-inf",
            "--health",
            "0",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(err.matches("non-finite").count(), 1, "warned once: {err}");
    let lines = json_lines(&String::from_utf8_lossy(&out.stdout));
    assert!(lines.iter().any(|e| e["event"] == "caption"));
}

// ---- items 8 and 9: --check-config ----

fn check(cfg: &str, extra: &[&str]) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.toml");
    std::fs::write(&p, cfg).unwrap();
    let mut a = vec!["listen", "--config", p.to_str().unwrap(), "--check-config"];
    a.extend(extra);
    run(&a)
}

#[test]
fn check_config_runs_the_start_up_checks() {
    let Some(b) = bundle() else { return };
    let dir = tempfile::tempdir().unwrap();
    let w = wav(dir.path(), "a.wav", 3.0);
    let w = w.to_str().unwrap();
    let src = format!("[model]\nbundle = \"{b}\"\n[source]\nfile = \"{w}\"\n");
    let (code, out, err) = check(&src, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("captions.window_seconds = 10"), "{out}");
    assert!(out.contains("captions.hop_seconds = 5"), "{out}");
    assert!(
        !out.contains("None") && !out.contains("Settings {"),
        "{out}"
    );
    let dirpath = dir.path().to_str().unwrap();
    for (extra, code_want, key) in [
        (
            "[captions]\nwindow_seconds = 5\n".to_string(),
            2,
            "captions.window_seconds",
        ),
        (
            "[captions]\nhop_seconds = 12\n".to_string(),
            2,
            "captions.hop_seconds",
        ),
        (format!("[output]\ntext_file = \"{dirpath}\"\n"), 1, dirpath),
        (
            "[output]\njsonl_file = \"/nonexistent-dir/x.jsonl\"\n".to_string(),
            1,
            "/nonexistent-dir/x.jsonl",
        ),
    ] {
        let (code, out, err) = check(&format!("{src}{extra}"), &[]);
        assert_eq!(code, code_want, "{extra}: {out}{err}");
        assert!(err.contains(key), "{extra}: {err}");
    }
    let (code, _, err) = check(
        &format!("[model]\nbundle = \"{b}\"\n[source]\nfile = \"/nonexistent.wav\"\n"),
        &[],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("/nonexistent.wav"), "{err}");
    let (code, _, err) = check("[model]\nbundle = \"/nonexistent-bundle\"\n", &[]);
    assert_eq!(code, 3, "{err}");
}

#[test]
fn check_config_redacts_and_resolves_the_mqtt_password() {
    let Some(b) = bundle() else { return };
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "s3cret-from-file\n").unwrap();
    let base = format!(
        "[model]\nbundle = \"{b}\"\n[source]\nkind = \"stdin\"\nstdin_rate = 16000\n\
         [mqtt]\nhost = \"broker\"\nusername = \"u\"\n"
    );
    let (code, out, err) = check(&format!("{base}password = \"hunter2-secret\"\n"), &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        !out.contains("hunter2") && !err.contains("hunter2"),
        "{out}"
    );
    assert!(out.contains("mqtt.password = <redacted>"), "{out}");
    assert!(
        out.contains("mqtt.health_topic = \"earshot/captions/health\""),
        "{out}"
    );
    let (code, out, err) = check(
        &format!("{base}password_file = \"{}\"\n", pw.display()),
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("s3cret"), "{out}");
    assert!(out.contains("mqtt.password = <redacted>"), "{out}");
    let (code, _, err) = check(
        &format!("{base}password_env = \"EARSHOT_TEST_NO_SUCH_VAR\"\n"),
        &[],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("mqtt.password_env"), "{err}");
}

#[test]
fn check_config_takes_the_password_from_the_environment_and_never_logs_it() {
    let Some(b) = bundle() else { return };
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.toml");
    std::fs::write(
        &p,
        format!(
            "[model]\nbundle = \"{b}\"\n[source]\nkind = \"stdin\"\n\
             [mqtt]\nhost = \"broker\"\nusername = \"u\"\n"
        ),
    )
    .unwrap();
    let out = earshot()
        .args(["listen", "--config", p.to_str().unwrap(), "--check-config"])
        .env("EARSHOT_MQTT_PASSWORD", "env-s3cret")
        .env("RUST_LOG", "earshot=debug")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("settings:"),
        "the settings are logged: {stderr}"
    );
    assert!(!stdout.contains("env-s3cret") && !stderr.contains("env-s3cret"));
    assert!(
        stdout.contains("mqtt.password = <redacted>  # from $EARSHOT_MQTT_PASSWORD"),
        "{stdout}"
    );
}

#[test]
fn check_config_leaves_no_output_file_behind() {
    let Some(b) = bundle() else { return };
    let dir = tempfile::tempdir().unwrap();
    let jsonl = dir.path().join("new.jsonl");
    let cfg = format!(
        "[model]\nbundle = \"{b}\"\n[source]\nkind = \"stdin\"\n[output]\njsonl_file = \"{}\"\n",
        jsonl.display()
    );
    let (code, out, err) = check(&cfg, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("output.jsonl_file = \"{}\"", jsonl.display())),
        "{out}"
    );
    assert!(!jsonl.exists(), "the check removed the file it created");
    // An existing file is kept as it is.
    std::fs::write(&jsonl, "{}\n").unwrap();
    let (code, _, err) = check(&cfg, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read_to_string(&jsonl).unwrap(), "{}\n");
}

#[test]
fn check_config_checks_the_serial_port_as_start_up_does() {
    let Some(b) = bundle() else { return };
    let base = format!(
        "[model]\nbundle = \"{b}\"\n[source]\nkind = \"stdin\"\n\
         [serial]\ndevice = \"/dev/nonexistent-tty\"\n"
    );
    // Retried while listening: a warning, not a failure.
    let (code, out, err) = check(&base, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("/dev/nonexistent-tty"), "warned: {err}");
    assert!(out.contains("serial.required = false"), "{out}");
    let (code, _, err) = check(&format!("{base}required = true\n"), &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("/dev/nonexistent-tty"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}
