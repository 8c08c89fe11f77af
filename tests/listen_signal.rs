//! SIGTERM handling of the live pipeline without a model bundle: the signal sets the stop flag
//! (signal-hook, as `earshot listen` does), the current partial window is still captioned, the
//! summary is emitted and the sinks flushed. (The process-level test is in listen_cli.rs.)

mod support;

use earshot::live::{run, LiveParams};
use earshot::source::file::FileSource;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::fake::*;
use support::signal::tone;
use support::{write_wav, WavKind};

#[test]
fn sigterm_finishes_the_partial_window_and_flushes() {
    let rate = RATE;
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("long.wav");
    write_wav(&wav, rate, 1, WavKind::Pcm16, &tone(rate, 30.0, 440.0, 0.5));
    let stop = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(libc::SIGTERM, stop.clone()).unwrap();

    let mut source = FileSource::open(&wav, Some(1.0)).unwrap();
    let mem = MemorySink::default();
    let mut model = FakeModel::new(rate, 1.0);
    model.numbered = true;
    let params = LiveParams {
        holdoff_seconds: 0.0,
        ..live_params(1.0, 1.0)
    };
    let killer = std::thread::spawn(|| {
        std::thread::sleep(Duration::from_millis(1500));
        unsafe { libc::raise(libc::SIGTERM) };
        Instant::now()
    });
    let totals = run(
        &mut source,
        params,
        Box::new(model),
        vec![Box::new(mem.clone())],
        &stop,
    )
    .expect("a signal is a clean stop");
    let signalled = killer.join().unwrap();
    assert!(
        signalled.elapsed() < Duration::from_millis(1500),
        "stopped promptly"
    );
    let caps = mem.captions();
    // 1.5 s of audio: the full window 0-1 s and the partial window from 1 s to the stop.
    assert_eq!(caps.len(), 2, "{totals:?}");
    assert_eq!((caps[0].event.start, caps[0].event.end), (0.0, 1.0));
    assert_eq!(caps[1].event.start, 1.0);
    assert!(
        caps[1].event.end > 1.3 && caps[1].event.end < 2.0,
        "{}",
        caps[1].event.end
    );
    assert!(mem.summary().is_some());
    assert!(*mem.flushed.lock().unwrap());
}
