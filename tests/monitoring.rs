//! Monitoring users can trust (issue 15): the confidence threshold and the only/ignore lists on a
//! fake model with scripted confidences and on the tiny bundle, the speech privacy modes, the
//! silence gate of `earshot caption`, and the clips: content sample-exact against the source,
//! a full or read-only disk that leaves captioning running, and (ignored, a soak) memory that
//! stays flat with clips on. Retention by count, size and age: `src/clips/retention.rs`.

mod support;

use earshot::clips::{ClipFormat, ClipSettings, Retention};
use earshot::live::filter::{CaptionRules, SpeechPrivacy};
use earshot::live::{self, LiveParams, Totals};
use earshot::sink::Event;
use earshot::source::file::FileSource;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use support::fake::{live_params, MemorySink, ScriptedModel, RATE};
use support::wav::decode_all;
use support::*;

/// Deterministic noise at amplitude ~0.3 (every sample different, so a shifted clip shows).
fn noise(seconds: f64) -> Vec<f32> {
    let mut x: u32 = 0x1234_5678;
    (0..(seconds * f64::from(RATE)) as usize)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x as f32 / u32::MAX as f32 - 0.5) * 0.6
        })
        .collect()
}

/// Plays `samples` (written as a 16-bit WAV at [`RATE`]) through `listen`'s pipeline as fast as
/// possible (lossless) with `model`.
fn run(
    dir: &Path,
    samples: &[f32],
    params: LiveParams,
    model: ScriptedModel,
) -> (Totals, MemorySink, PathBuf) {
    let wav = dir.join("source.wav");
    write_wav(&wav, RATE, 1, WavKind::Pcm16, samples);
    let (t, mem) = run_wav(&wav, params, model);
    (t, mem, wav)
}

/// [`run`] on a WAV file already written.
fn run_wav(wav: &Path, params: LiveParams, model: ScriptedModel) -> (Totals, MemorySink) {
    let mut source = FileSource::open(wav, None).unwrap();
    let mem = MemorySink::default();
    let t = live::run(
        &mut source,
        params,
        Box::new(model),
        support::fake::sinks(&mem),
        &AtomicBool::new(false),
    )
    .unwrap();
    (t, mem)
}

fn params(window: f64, hop: f64, rules: CaptionRules, clips: Option<ClipSettings>) -> LiveParams {
    LiveParams {
        holdoff_seconds: 0.0,
        rules,
        clips,
        ..live_params(window, hop)
    }
}

fn clip_settings(dir: &Path, format: ClipFormat, pre: f64, post: f64) -> ClipSettings {
    ClipSettings {
        dir: dir.to_path_buf(),
        format,
        pre_seconds: pre,
        post_seconds: post,
        retention: Retention::default(),
    }
}

fn words(list: &[&str]) -> Vec<earshot::live::filter::Pattern> {
    CaptionRules::patterns(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>())
}

/// Clip files in `dir` (sorted).
fn clip_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn threshold_and_lists_on_scripted_confidences() {
    let tmp = tempfile::tempdir().unwrap();
    let model = ScriptedModel::new(
        1.0,
        &[
            ("a dog barks", Some(0.95)),        // emitted
            ("a dog barks", Some(0.5)),         // uncertain
            ("rain falls", Some(0.99)),         // not in `only`
            ("a glass breaks", None),           // no confidence: passes the threshold
            ("music plays", Some(0.97)),        // in `ignore`
            ("dogs bark to music", Some(0.93)), // in `only` and `ignore`: ignored
        ],
    );
    let rules = CaptionRules {
        min_confidence: Some(0.9),
        only: words(&["dog", "glass", "music"]),
        ignore: words(&["Music"]),
        ..CaptionRules::none()
    };
    let (t, mem, _) = run(
        tmp.path(),
        &noise(6.0),
        params(1.0, 1.0, rules, None),
        model,
    );
    let texts: Vec<String> = mem
        .captions()
        .iter()
        .map(|c| c.event.caption.text.clone())
        .collect();
    assert_eq!(texts, ["a dog barks", "a glass breaks"], "{t:?}");
    assert_eq!(
        (t.windows, t.captions, t.uncertain, t.filtered),
        (6, 2, 1, 3),
        "{t:?}"
    );
    // Every window is accounted for, and the summary says so.
    assert_eq!(t.windows, t.captions + t.uncertain + t.filtered + t.gated);
    let s = mem.summary().unwrap();
    assert_eq!((s.uncertain, s.filtered, s.privacy_dropped), (1, 3, 0));
    let j = Event::Summary(s).to_json();
    assert_eq!(
        (j["uncertain"].as_u64(), j["filtered"].as_u64()),
        (Some(1), Some(3))
    );
}

#[test]
fn privacy_modes_never_store_speech() {
    let script = [
        ("a man speaks", Some(0.99)),
        ("a dog barks", Some(0.99)),
        ("people talking", Some(0.99)),
        ("a dog barks again", Some(0.99)),
    ];
    for mode in [
        SpeechPrivacy::Keep,
        SpeechPrivacy::Mask,
        SpeechPrivacy::Drop,
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let clips = tmp.path().join("clips");
        let rules = CaptionRules {
            speech: mode,
            speech_clips: false,
            ..CaptionRules::none()
        };
        let c = clip_settings(&clips, ClipFormat::Flac, 0.2, 0.2);
        let p = params(1.0, 1.0, rules, Some(c));
        let (t, mem, _) = run(tmp.path(), &noise(4.0), p, ScriptedModel::new(1.0, &script));
        let caps = mem.captions();
        let files = clip_files(&clips);
        // Only the dog windows have clips, whatever the mode.
        assert_eq!(files.len(), 2, "{mode:?}: {files:?}");
        assert!(files.iter().all(|f| f.contains("dog-barks")), "{files:?}");
        assert_eq!(t.clips_written, 2);
        for c in &caps {
            let speech = !c.event.caption.text.contains("dog");
            assert_eq!(c.clip.is_none(), speech, "{mode:?}: {c:?}");
        }
        let all_json: String = mem
            .events
            .lock()
            .unwrap()
            .iter()
            .map(|e| e.to_json().to_string())
            .collect();
        match mode {
            SpeechPrivacy::Keep => {
                assert_eq!(caps.len(), 4);
                assert!(all_json.contains("a man speaks"));
            }
            SpeechPrivacy::Mask => {
                let texts: Vec<&str> = caps.iter().map(|c| c.event.caption.text.as_str()).collect();
                assert_eq!(
                    texts,
                    [
                        "someone speaks",
                        "a dog barks",
                        "someone speaks",
                        "a dog barks again"
                    ]
                );
                assert!(!all_json.contains("a man speaks") && !all_json.contains("talking"));
            }
            SpeechPrivacy::Drop => {
                assert_eq!(caps.len(), 2);
                assert_eq!(t.privacy_dropped, 2);
                // Nothing about the speech windows left: no caption, no window index, no text.
                assert!(!all_json.contains("speak") && !all_json.contains("talking"));
                let idx: Vec<u64> = caps.iter().map(|c| c.window_index).collect();
                assert_eq!(idx, [1, 3]);
            }
        }
    }
}

/// The clip of every caption is the source audio from `pre` before the window to `post` after
/// it (clamped to the file), sample for sample, in FLAC and in WAV; its path is in the JSON event.
#[test]
fn clip_content_is_sample_exact() {
    for format in [ClipFormat::Flac, ClipFormat::Wav] {
        let tmp = tempfile::tempdir().unwrap();
        let clips = tmp.path().join("clips");
        let (pre, post) = (0.5, 0.75);
        let mut model = ScriptedModel::new(2.0, &[("a dog barks", Some(0.99))]);
        model.numbered = true;
        let p = params(
            2.0,
            1.0,
            CaptionRules::none(),
            Some(clip_settings(&clips, format, pre, post)),
        );
        let (t, mem, wav) = run(tmp.path(), &noise(7.3), p, model);
        let (_, source) = decode_all(&wav);
        let caps = mem.captions();
        assert!(caps.len() >= 6, "{t:?}");
        assert_eq!(t.clips_written as usize, caps.len(), "{t:?}");
        assert_eq!(t.clips_failed, 0);
        for c in &caps {
            let path = c.clip.clone().expect("a clip path");
            let json = Event::Caption(c.clone()).to_json();
            assert_eq!(json["clip"], Value::String(path.clone()));
            assert!(
                path.ends_with(&format!(".{}", format.extension())),
                "{path}"
            );
            let (info, got) = decode_all(Path::new(&path));
            assert_eq!((info.sample_rate, info.channels), (RATE, 1));
            let rate = f64::from(RATE);
            let first = ((c.event.start - pre) * rate).round().max(0.0) as usize;
            let last = (((c.event.end + post) * rate).round() as usize).min(source.len());
            assert_eq!(got.len(), last - first, "{path}");
            assert!(got == source[first..last], "{path}: samples differ");
        }
    }
}

/// A clip folder that cannot take a file: every window is still captioned; the failures are
/// counted.
fn assert_keeps_captioning(clips: &Path, expect_some_written: bool) {
    let tmp = tempfile::tempdir().unwrap();
    let mut model = ScriptedModel::new(1.0, &[("a dog barks", Some(0.99))]);
    model.numbered = true;
    let c = clip_settings(clips, ClipFormat::Wav, 0.0, 0.0);
    let p = params(1.0, 1.0, CaptionRules::none(), Some(c));
    let (t, mem, _) = run(tmp.path(), &noise(20.0), p, model);
    assert_eq!(t.windows, 20, "{t:?}");
    assert_eq!(t.captions, 20, "{t:?}");
    assert_eq!(mem.captions().len(), 20);
    assert!(t.clips_failed > 0, "{t:?}");
    assert_eq!(t.clips_written + t.clips_failed, 20, "{t:?}");
    if expect_some_written {
        assert!(t.clips_written > 0, "{t:?}");
    }
    let s = mem.summary().unwrap();
    assert_eq!(s.clips_failed, t.clips_failed);
    assert!(
        !clip_files(clips).iter().any(|f| f.ends_with(".part")),
        "a failed write leaves no partial file"
    );
}

/// Mounts a tmpfs of `size` with `opts` on `dir`; `false` (with a SKIP line) where that is not
/// allowed (not root, no mount namespace).
fn mount_tmpfs(dir: &Path, opts: &str) -> bool {
    let ok = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", opts, "tmpfs"])
        .arg(dir)
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!(
            "SKIP: cannot mount a tmpfs on {} (needs root): full/read-only disk not tested",
            dir.display()
        );
    }
    ok
}

fn umount(dir: &Path) {
    let _ = std::process::Command::new("umount").arg(dir).status();
}

#[test]
fn a_full_disk_keeps_captioning() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("small");
    std::fs::create_dir(&dir).unwrap();
    // 1 s clips of 16-bit WAV are 32 KB: a few fit, then the disk is full.
    if !mount_tmpfs(&dir, "size=160k") {
        return;
    }
    let result = std::panic::catch_unwind(|| assert_keeps_captioning(&dir, true));
    umount(&dir);
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

#[test]
fn a_read_only_or_missing_clip_folder_keeps_captioning() {
    // A folder that cannot exist (its parent is a file): no root needed.
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("file"), b"x").unwrap();
    assert_keeps_captioning(&tmp.path().join("file/clips"), false);
    // A read-only file system.
    let dir = tmp.path().join("ro");
    std::fs::create_dir(&dir).unwrap();
    if !mount_tmpfs(&dir, "ro,size=64k") {
        return;
    }
    let result = std::panic::catch_unwind(|| assert_keeps_captioning(&dir, false));
    umount(&dir);
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

/// Soak: 20 minutes of audio with a clip for every caption (FLAC, retention 5 files) keeps the
/// resident memory flat. Not a unit test (it takes minutes): `cargo test --release --test
/// monitoring -- --ignored --nocapture memory_stays_flat`. Prints the RSS it saw.
#[test]
#[ignore]
fn memory_stays_flat_with_clips_on() {
    use std::sync::atomic::Ordering;
    use std::sync::Arc;
    let minutes: f64 = std::env::var("EARSHOT_SOAK_MINUTES")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(20.0);
    let tmp = tempfile::tempdir().unwrap();
    let clips = tmp.path().join("clips");
    let mut c = clip_settings(&clips, ClipFormat::Flac, 2.0, 2.0);
    c.retention.max_files = Some(5);
    let mut model = ScriptedModel::new(2.0, &[("a dog barks", Some(0.99))]);
    model.numbered = true;
    let p = params(2.0, 1.0, CaptionRules::none(), Some(c));
    // The source samples are written and dropped before the run, so the RSS is the pipeline's.
    let wav = tmp.path().join("source.wav");
    write_wav(&wav, RATE, 1, WavKind::Pcm16, &noise(minutes * 60.0));
    let done = Arc::new(AtomicBool::new(false));
    let d = done.clone();
    let sampler = std::thread::spawn(move || {
        let mut rss = Vec::new();
        while !d.load(Ordering::Relaxed) {
            rss.extend(earshot::live::health::rss_bytes());
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        rss
    });
    let (t, _) = run_wav(&wav, p, model);
    done.store(true, Ordering::Relaxed);
    let rss = sampler.join().unwrap();
    let n = rss.len();
    assert!(n >= 8, "too short a run to judge ({n} samples)");
    let quarter = n / 4;
    let early = *rss[quarter..2 * quarter].iter().max().unwrap();
    let late = *rss[3 * quarter..].iter().max().unwrap();
    let mb = |b: u64| b as f64 / 1048576.0;
    println!(
        "soak: {minutes} min of audio, {} captions, clips written {} pruned {} failed {}; \
         RSS max in the 2nd quarter {:.1} MB, in the last quarter {:.1} MB ({n} samples)",
        t.captions,
        t.clips_written,
        t.clips_pruned,
        t.clips_failed,
        mb(early),
        mb(late)
    );
    assert_eq!(t.clips_failed, 0);
    assert!(clip_files(&clips).len() <= 5);
    assert!(
        late <= early + 4 * 1048576,
        "RSS grew from {:.1} MB to {:.1} MB",
        mb(early),
        mb(late)
    );
}

// ---- earshot caption and listen on the tiny bundle ----

fn run_cli(args: &[&str]) -> Run {
    finished(earshot().args(args).output().unwrap())
}

/// The tiny bundle with a `confidence` section (a = 2.5, b = 4), and its one caption of the
/// golden input with that confidence.
fn confident_bundle() -> Option<(tempfile::TempDir, PathBuf, String, f64)> {
    let (tmp, dir) = bundle_copy(|m| {
        m["confidence"] = serde_json::json!({"method": "platt", "a": 2.5, "b": 4.0});
    })?;
    let w = golden().join("tiny-input.wav");
    let out = run_cli(&[
        "caption",
        "--model",
        dir.to_str().unwrap(),
        w.to_str().unwrap(),
        "--format",
        "jsonl",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let row: Value = serde_json::from_str(out.stdout.lines().next().unwrap()).unwrap();
    let text = row["caption"].as_str().unwrap().to_string();
    let conf = row["confidence"].as_f64().unwrap();
    Some((tmp, dir, text, conf))
}

#[test]
fn caption_threshold_and_lists_on_the_tiny_bundle() {
    let Some((_tmp, dir, text, conf)) = confident_bundle() else {
        return;
    };
    let d = dir.to_str().unwrap();
    let w = golden().join("tiny-input.wav");
    let w = w.to_str().unwrap();
    let base = ["caption", "--model", d, w, "--format", "jsonl"];
    let with = |extra: &[&str]| {
        let mut a = base.to_vec();
        a.extend_from_slice(extra);
        run_cli(&a)
    };
    let above = format!("{:.3}", (conf + 0.002).min(1.0));
    let below = format!("{:.3}", (conf - 0.002).max(0.0));
    let r = with(&["--min-confidence", &above]);
    assert_eq!((r.code, r.stdout.as_str()), (0, ""), "{}", r.stderr);
    assert!(r.stderr.contains("1 uncertain"), "{}", r.stderr);
    let r = with(&["--min-confidence", &below]);
    assert!(r.stdout.contains(&text), "{}", r.stderr);

    // Lists on the caption's words (the tiny caption names a rooster), any case.
    let r = with(&["--only", "ROOSTER,glass"]);
    assert!(
        r.stdout.contains(&text) && text.contains("rooster"),
        "{}",
        r.stdout
    );
    let r = with(&["--only", "dog"]);
    assert_eq!(r.stdout, "");
    assert!(r.stderr.contains("1 filtered"), "{}", r.stderr);
    let r = with(&["--ignore", "dog", "--ignore", "Rooster"]);
    assert_eq!(r.stdout, "");
    assert!(r.stderr.contains("1 filtered"), "{}", r.stderr);
    // Bad values are usage errors that name the flag.
    let r = with(&["--min-confidence", "1.5"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("--min-confidence"), "{}", r.stderr);
    let r = with(&["--only", "?!"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("--only"), "{}", r.stderr);

    // listen: the same threshold, counted in the summary.
    let listen = |min: &str| {
        let r = run_cli(&[
            "listen",
            "--file",
            w,
            "--fast",
            "--model",
            d,
            "--gate-dbfs",
            "-inf",
            "--format",
            "jsonl",
            "--min-confidence",
            min,
        ]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        (support::json::json_lines(&r.stdout), r.stderr)
    };
    let (ev, err) = listen(&above);
    assert!(!ev.iter().any(|e| e["event"] == "caption"));
    assert!(err.contains("1 captions held back: 1 below"), "{err}");
    let summary = ev.iter().find(|e| e["event"] == "summary").unwrap();
    assert_eq!(summary["uncertain"], 1);
    let (ev, err) = listen(&below);
    assert_eq!(ev.iter().filter(|e| e["event"] == "caption").count(), 1);
    assert!(!err.contains("held back"), "{err}");
}

#[test]
fn caption_gate_prints_silence() {
    let Some(tiny) = tiny_bundle() else { return };
    let tmp = tempfile::tempdir().unwrap();
    // 10 s of digital silence, then 10 s of noise: windows of 10 s every 5 s.
    let mut x = vec![0.0f32; 10 * RATE as usize];
    x.extend(noise(10.0));
    let wav = tmp.path().join("quiet.wav");
    write_wav(&wav, RATE, 1, WavKind::Pcm16, &x);
    let (m, w) = (tiny.to_str().unwrap(), wav.to_str().unwrap());
    let r = run_cli(&[
        "caption",
        "--model",
        m,
        w,
        "--gate-dbfs",
        "-50",
        "--format",
        "jsonl",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let rows = support::json::json_lines(&r.stdout);
    assert_eq!(rows.len(), 3, "{}", r.stdout);
    assert_eq!(rows[0]["caption"], Value::Null);
    assert_eq!(rows[0]["gated"], true);
    assert_eq!(rows[0]["confidence"], Value::Null);
    assert_eq!(rows[0]["start"], 0.0);
    for row in &rows[1..] {
        assert!(row["caption"].is_string(), "{row}");
        assert!(row.get("gated").is_none());
    }
    assert!(
        r.stderr.contains("3 windows: 2 captions, 1 silence"),
        "{}",
        r.stderr
    );
    let r = run_cli(&["caption", "--model", m, w, "--gate-dbfs", "-50"]);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines[0], "[00:00.0–00:10.0] (silence)");
    assert!(!lines[1].contains("(silence)"));
    // Without the flag every window gets a caption, as before.
    let r = run_cli(&["caption", "--model", m, w]);
    assert!(
        !r.stdout.contains("(silence)") && r.stderr.is_empty(),
        "{}",
        r.stderr
    );
}

#[test]
fn listen_check_config_shows_the_new_sections() {
    let Some(tiny) = tiny_bundle() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let clips = tmp.path().join("clips");
    let cfg = tmp.path().join("earshot.toml");
    std::fs::write(
        &cfg,
        format!(
            "[captions]\nmin_confidence = 0.8\nonly = [\"dog\"]\n[privacy]\nspeech = \"drop\"\n\
             [clips]\ndir = \"{}\"\nmax_files = 10\n",
            clips.display()
        ),
    )
    .unwrap();
    let r = run_cli(&[
        "listen",
        "--check-config",
        "--config",
        cfg.to_str().unwrap(),
        "--model",
        tiny.to_str().unwrap(),
        "--stdin",
        "--rate",
        "16000",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    for want in [
        "captions.min_confidence = 0.8  # this model has no confidence",
        "captions.only = [\"dog\"]",
        "privacy.speech = \"drop\"",
        "clips.format = \"flac\"",
        "clips.max_files = 10\n",
    ] {
        assert!(r.stdout.contains(want), "{want:?} in\n{}", r.stdout);
    }
    assert!(!clips.exists(), "--check-config leaves nothing behind");
    // A clip folder that cannot be made is a start-up error of the check.
    std::fs::write(tmp.path().join("file"), b"x").unwrap();
    let r = run_cli(&[
        "listen",
        "--check-config",
        "--model",
        tiny.to_str().unwrap(),
        "--stdin",
        "--rate",
        "16000",
        "--clips-dir",
        tmp.path().join("file/clips").to_str().unwrap(),
    ]);
    assert_ne!(r.code, 0, "{}", r.stdout);
    assert!(r.stderr.contains("clips.dir"), "{}", r.stderr);
}

#[test]
fn listen_saves_the_clip_of_each_caption() {
    let Some(tiny) = tiny_bundle() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let clips = tmp.path().join("clips");
    let w = golden().join("tiny-input.wav");
    let r = run_cli(&[
        "listen",
        "--file",
        w.to_str().unwrap(),
        "--fast",
        "--model",
        tiny.to_str().unwrap(),
        "--gate-dbfs",
        "-inf",
        "--format",
        "jsonl",
        "--clips-dir",
        clips.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("saving clips to"), "{}", r.stderr);
    let ev = support::json::json_lines(&r.stdout);
    let cap = ev.iter().find(|e| e["event"] == "caption").unwrap();
    let path = PathBuf::from(cap["clip"].as_str().unwrap());
    assert!(path.starts_with(&clips) && path.is_file(), "{path:?}");
    let name = path.file_name().unwrap().to_str().unwrap();
    assert!(
        name.ends_with("Z_moos-cries-man-coughs-chirp-rooster-as-chirp.flac"),
        "{name}"
    );
    // The whole 3 s input (the window, nothing before or after it).
    let (_, got) = decode_all(&path);
    let (_, source) = decode_all(&w);
    assert_eq!(got.len(), source.len());
    let summary = ev.iter().find(|e| e["event"] == "summary").unwrap();
    assert_eq!(
        (
            summary["clips_written"].as_u64(),
            summary["clips_failed"].as_u64()
        ),
        (Some(1), Some(0))
    );
}

/// The commented keys of `[captions]`, `[privacy]` and `[clips]` in config/earshot.toml, all
/// uncommented, are a valid config (the example cannot drift from the validation).
#[test]
fn example_config_rules_privacy_and_clips_keys_are_valid() {
    let text = std::fs::read_to_string(repo().join("config/earshot.toml")).unwrap();
    let mut section = String::new();
    let mut out = String::new();
    let mut uncommented = 0;
    for line in text.lines() {
        if line.starts_with('[') {
            section = line.trim_matches(|c| c == '[' || c == ']').to_string();
        }
        let key = line
            .strip_prefix("# ")
            .and_then(|l| l.split_once(" = "))
            .map(|(k, _)| k)
            .filter(|k| k.chars().all(|c| c.is_ascii_lowercase() || c == '_'));
        if key.is_some() && ["captions", "privacy", "clips"].contains(&section.as_str()) {
            out.push_str(&line[2..]);
            uncommented += 1;
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    assert!(uncommented >= 18, "{uncommented} keys");
    let raw = earshot::config::RawConfig::parse(&out).unwrap();
    let s = earshot::config::validate(raw, &|_| None).unwrap_or_else(|e| panic!("{e:#}\n{out}"));
    assert_eq!(s.captions.min_confidence, Some(0.71));
    assert_eq!(s.captions.only, ["dog", "glass"]);
    let c = s.clips.unwrap();
    assert_eq!(c.dir, PathBuf::from("/var/lib/earshot/clips"));
    assert_eq!(c.retention.max_files, Some(1000));
}

/// The default `captions.min_confidence` is the shipped model's fitted threshold (its validation
/// split; `python -m earshot_train.calibrate --v2`): a new default model must carry it over.
#[test]
fn default_threshold_is_the_shipped_models_fitted_one() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("models/default/manifest.json")).unwrap(),
    )
    .unwrap();
    let fitted = manifest["confidence"]["fit"]["threshold"].as_f64().unwrap();
    let raw = earshot::config::RawConfig::parse("").unwrap();
    let s = earshot::config::validate(raw, &|_| None).unwrap();
    assert_eq!(s.captions.min_confidence, Some(fitted));
}
