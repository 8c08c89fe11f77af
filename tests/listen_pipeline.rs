//! `earshot listen` pipeline without audio hardware: file and stdin sources, a fake model.
//! Checks windows, timestamps, the silence gate, de-duplication, downmixing, real-time cadence
//! and backpressure (a model slower than real time).

mod support;

use earshot::audio::pcm::PcmFormat;
use earshot::live::run;
use earshot::source::{file::FileSource, stdin::StdinSource};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};
use support::fake::*;
use support::signal::*;
use support::{write_wav, WavKind};

#[test]
fn file_source_windows_gate_and_dedup() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("three.wav");
    // 48 kHz stereo file: exercises decoding, downmix and resampling to the model rate.
    let mono = three_segments(48_000);
    let stereo: Vec<f32> = mono.iter().flat_map(|&s| [s, s]).collect();
    write_wav(&wav, 48_000, 2, WavKind::Float32, &stereo);

    let mut source = FileSource::open(&wav, None).unwrap();
    let mem = MemorySink::default();
    let stop = AtomicBool::new(false);
    let model = FakeModel::new(RATE, 2.0);
    let totals = run(
        &mut source,
        live_params(2.0, 1.0),
        Box::new(model),
        sinks(&mem),
        &stop,
    )
    .unwrap();

    // 12 s, 2 s windows every 1 s: starts 0..=10 s.
    assert_eq!(totals.windows, 11, "{totals:?}");
    // Windows 4-6, 5-7, 6-8 are silent.
    assert_eq!(totals.gated, 3, "{totals:?}");
    // Repeats of "a low tone" (1-3, 2-4, 3-5) and "a high tone" (8-10, 9-11, 10-12).
    assert_eq!(totals.suppressed, 6, "{totals:?}");
    assert_eq!(totals.dropped_windows, 0);
    assert_eq!(totals.dropped_samples, 0);
    assert_eq!(totals.frames_in, 12 * 48_000);

    let caps = mem.captions();
    let got: Vec<(f64, f64, &str)> = caps
        .iter()
        .map(|c| (c.event.start, c.event.end, c.event.caption.text.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![(0.0, 2.0, "a low tone"), (7.0, 9.0, "a high tone")]
    );
    assert_eq!(caps[0].window_index, 0);
    assert_eq!(caps[1].window_index, 7);
    // A 0.5-amplitude sine is -9.03 dBFS; the 7-9 s window is half silence (-3 dB more).
    assert!(
        (caps[0].level_dbfs + 9.03).abs() < 0.1,
        "{}",
        caps[0].level_dbfs
    );
    assert!(
        (caps[1].level_dbfs + 12.04).abs() < 0.2,
        "{}",
        caps[1].level_dbfs
    );
    let s = mem.summary().expect("summary event");
    assert_eq!((s.windows, s.captions, s.gated), (11, 2, 3));
    assert!(*mem.flushed.lock().unwrap(), "sinks are flushed at the end");
}

#[test]
fn gate_off_captions_silence() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("three.wav");
    write_wav(&wav, RATE, 1, WavKind::Pcm16, &three_segments(RATE));
    let mut source = FileSource::open(&wav, None).unwrap();
    let mem = MemorySink::default();
    let mut p = live_params(2.0, 1.0);
    p.gate_dbfs = None;
    p.holdoff_seconds = 0.0;
    let totals = run(
        &mut source,
        p,
        Box::new(FakeModel::new(RATE, 2.0)),
        sinks(&mem),
        &AtomicBool::new(false),
    )
    .unwrap();
    assert_eq!((totals.windows, totals.gated, totals.captions), (11, 0, 11));
}

fn s16(samples: &[f32]) -> Vec<u8> {
    samples
        .iter()
        .flat_map(|&s| ((s * 32767.0).round() as i16).to_le_bytes())
        .collect()
}

#[test]
fn stdin_stereo_is_downmixed() {
    let left = tone(RATE, 4.0, 440.0, 0.5);
    for (sign, expect_captions) in [(-1.0f32, 0u64), (1.0, 1)] {
        let inter: Vec<f32> = left.iter().flat_map(|&s| [s, sign * s]).collect();
        let reader = std::io::Cursor::new(s16(&inter));
        let mut source =
            StdinSource::from_reader(Box::new(reader), PcmFormat::S16Le, Some(RATE), 2).unwrap();
        let mem = MemorySink::default();
        let mut p = live_params(2.0, 1.0);
        p.queue_windows = 8; // nothing may be dropped here
        let totals = run(
            &mut source,
            p,
            Box::new(FakeModel::new(RATE, 2.0)),
            sinks(&mem),
            &AtomicBool::new(false),
        )
        .unwrap();
        // Opposite channels cancel to silence: every window is gated.
        assert_eq!(totals.windows, 3, "{totals:?}");
        assert_eq!(totals.captions, expect_captions, "sign {sign}: {totals:?}");
        assert_eq!(totals.gated, 3 - expect_captions.min(1) * 3, "{totals:?}");
    }
}

#[test]
fn real_time_cadence() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("tone.wav");
    write_wav(&wav, RATE, 1, WavKind::Pcm16, &tone(RATE, 4.0, 440.0, 0.5));
    // Played at 2x real time: 1 s windows every 0.5 s of audio = a caption every 0.25 s.
    let mut source = FileSource::open(&wav, Some(2.0)).unwrap();
    let mem = MemorySink::default();
    let mut model = FakeModel::new(RATE, 1.0);
    model.numbered = true;
    let mut p = live_params(1.0, 0.5);
    p.holdoff_seconds = 0.0;
    let t0 = Instant::now();
    let totals = run(
        &mut source,
        p,
        Box::new(model),
        sinks(&mem),
        &AtomicBool::new(false),
    )
    .unwrap();
    let elapsed = t0.elapsed().as_secs_f64();
    assert!(
        elapsed >= 1.9,
        "4 s of audio at 2x cannot take {elapsed:.2} s"
    );
    assert_eq!(totals.captions, 7, "{totals:?}");
    let caps = mem.captions();
    let ends: Vec<f64> = caps.iter().map(|c| c.event.end).collect();
    assert_eq!(ends, vec![1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0]);
    let times: Vec<f64> = caps
        .iter()
        .map(|c| {
            c.timestamp
                .duration_since(caps[0].timestamp)
                .unwrap()
                .as_secs_f64()
        })
        .collect();
    let mean_gap = times.last().unwrap() / (times.len() - 1) as f64;
    assert!(
        (mean_gap - 0.25).abs() < 0.05,
        "mean gap {mean_gap:.3} s, times {times:?}"
    );
    for c in &caps {
        assert!(c.latency_ms < 500.0, "latency {} ms", c.latency_ms);
        assert!(
            c.rtf < 0.5,
            "a fast fake model has a small real-time factor: {}",
            c.rtf
        );
    }
}

#[test]
fn slow_model_drops_whole_windows_with_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("tone.wav");
    write_wav(&wav, RATE, 1, WavKind::Pcm16, &tone(RATE, 10.0, 440.0, 0.5));
    // 10 s at 20x = 0.5 s; 37 windows of 1 s every 0.25 s, but the model needs 150 ms each.
    let mut source = FileSource::open(&wav, Some(20.0)).unwrap();
    let mem = MemorySink::default();
    let mut model = FakeModel::new(RATE, 1.0);
    model.numbered = true;
    model.delay = Duration::from_millis(150);
    let mut p = live_params(1.0, 0.25);
    p.holdoff_seconds = 0.0;
    let totals = run(
        &mut source,
        p,
        Box::new(model),
        sinks(&mem),
        &AtomicBool::new(false),
    )
    .unwrap();
    assert_eq!(totals.windows, 37, "{totals:?}");
    assert!(totals.dropped_windows >= 20, "{totals:?}");
    assert_eq!(
        totals.windows,
        totals.captions + totals.suppressed + totals.gated + totals.dropped_windows + totals.errors,
        "every window is accounted for: {totals:?}"
    );
    // Memory: at most queue_windows waiting; the buffer pool never grew.
    assert!(totals.max_queued <= 2, "{totals:?}");
    assert_eq!(totals.buffers, 4, "{totals:?}");
    assert_eq!(
        totals.dropped_samples, 0,
        "the audio ring itself never overran"
    );
    let caps = mem.captions();
    assert_eq!(caps.len() as u64, totals.captions);
    assert!(caps
        .windows(2)
        .all(|w| w[0].dropped_windows <= w[1].dropped_windows));
    assert!(caps.windows(2).all(|w| w[0].event.start < w[1].event.start));
    // Window starts stay on the hop grid even with drops.
    for c in &caps {
        let k = c.event.start / 0.25;
        assert!((k - k.round()).abs() < 1e-9, "start {}", c.event.start);
        assert!(c.rtf > 0.5, "150 ms per 250 ms hop: rtf {}", c.rtf);
    }
    assert_eq!(
        mem.summary().unwrap().dropped_windows,
        totals.dropped_windows
    );
}

#[test]
fn fast_file_waits_for_a_slow_model() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("tone.wav");
    write_wav(&wav, RATE, 1, WavKind::Pcm16, &tone(RATE, 3.0, 440.0, 0.5));
    let mut source = FileSource::open(&wav, None).unwrap();
    let mem = MemorySink::default();
    let mut model = FakeModel::new(RATE, 1.0);
    model.delay = Duration::from_millis(30);
    model.numbered = true;
    let mut p = live_params(1.0, 0.25);
    p.holdoff_seconds = 0.0;
    let totals = run(
        &mut source,
        p,
        Box::new(model),
        sinks(&mem),
        &AtomicBool::new(false),
    )
    .unwrap();
    assert_eq!(
        (totals.windows, totals.captions, totals.dropped_windows),
        (9, 9, 0)
    );
}
