//! Keeps a capture stream alive: rebuilds it after a stream error, or when no samples arrived
//! for the watchdog period (a stuck or vanished device), with exponential backoff between
//! failed attempts. Independent of cpal so that it can be tested without audio hardware; the
//! microphone source plugs its stream builder in.

use super::ring::Ring;
use anyhow::Result;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const BACKOFF_MIN: Duration = Duration::from_millis(500);
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Builds a stream writing into the ring; the stream sets the flag on a stream error. Dropping
/// the handle stops the stream and releases the ring's writer.
pub type BuildFn<H> = Box<dyn FnMut(&Ring, Arc<AtomicBool>) -> Result<H>>;

/// What [`Supervisor::poll`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Nothing,
    /// The stream was (re)built.
    Rebuilt,
    /// A rebuild failed; the next attempt is scheduled.
    Failed(String),
    /// Waiting for the next attempt.
    Waiting,
}

pub struct Supervisor<H> {
    build: BuildFn<H>,
    handle: Option<H>,
    ring: Ring,
    failed: Arc<AtomicBool>,
    watchdog: Duration,
    last_written: u64,
    last_progress: Instant,
    backoff: Duration,
    backoff_min: Duration,
    backoff_max: Duration,
    next_attempt: Option<Instant>,
    rebuilds: u64,
}

impl<H> Supervisor<H> {
    /// Builds the first stream (an error here is returned: the device is not usable at all).
    pub fn start(ring: &Ring, watchdog: Duration, mut build: BuildFn<H>) -> Result<Supervisor<H>> {
        let failed = Arc::new(AtomicBool::new(false));
        let handle = build(ring, failed.clone())?;
        Ok(Supervisor {
            build,
            handle: Some(handle),
            ring: ring.clone(),
            failed,
            watchdog,
            last_written: ring.stats().written(),
            last_progress: Instant::now(),
            backoff: BACKOFF_MIN,
            backoff_min: BACKOFF_MIN,
            backoff_max: BACKOFF_MAX,
            next_attempt: None,
            rebuilds: 0,
        })
    }

    /// Changes the backoff range (default [`BACKOFF_MIN`]..[`BACKOFF_MAX`]).
    pub fn set_backoff(&mut self, min: Duration, max: Duration) {
        self.backoff_min = min;
        self.backoff_max = max.max(min);
        self.backoff = min;
    }

    /// Streams rebuilt so far.
    pub fn rebuilds(&self) -> u64 {
        self.rebuilds
    }

    /// Delay before the next attempt after another failure.
    pub fn backoff(&self) -> Duration {
        self.backoff
    }

    pub fn has_stream(&self) -> bool {
        self.handle.is_some()
    }

    /// Drops the stream and waits (bounded) until its callback released the ring's writer.
    pub fn teardown(&mut self) {
        self.handle = None;
        let t = Instant::now();
        while self.ring.writer_held() && t.elapsed() < Duration::from_secs(2) {
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn attempt(&mut self) -> Action {
        self.failed.store(false, Ordering::Relaxed);
        match (self.build)(&self.ring, self.failed.clone()) {
            Ok(h) => {
                self.handle = Some(h);
                self.rebuilds += 1;
                self.backoff = self.backoff_min;
                self.next_attempt = None;
                self.last_progress = Instant::now();
                self.last_written = self.ring.stats().written();
                Action::Rebuilt
            }
            Err(e) => {
                self.next_attempt = Some(Instant::now() + self.backoff);
                self.backoff = (self.backoff * 2).min(self.backoff_max);
                Action::Failed(format!("{e:#}"))
            }
        }
    }

    /// Checks the stream; call every few tens of milliseconds.
    pub fn poll(&mut self) -> Action {
        if let Some(at) = self.next_attempt {
            if Instant::now() < at {
                return Action::Waiting;
            }
            return self.attempt();
        }
        let written = self.ring.stats().written();
        if written != self.last_written {
            self.last_written = written;
            self.last_progress = Instant::now();
        }
        let stalled = self.last_progress.elapsed() >= self.watchdog;
        if self.failed.load(Ordering::Relaxed) || stalled {
            self.teardown();
            return self.attempt();
        }
        Action::Nothing
    }

    /// True when the last trigger was the watchdog (no error flag set).
    pub fn error_flagged(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    /// Stops for good.
    pub fn stop(&mut self) {
        self.teardown();
        self.next_attempt = None;
    }

    pub fn handle(&self) -> Option<&H> {
        self.handle.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Mutex;

    /// A fake stream: a thread that pushes audio until dropped, or until told to stall.
    struct FakeStream {
        stop: Arc<AtomicBool>,
        thread: Option<std::thread::JoinHandle<()>>,
    }

    impl Drop for FakeStream {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Relaxed);
            if let Some(t) = self.thread.take() {
                t.join().unwrap();
            }
        }
    }

    struct Plan {
        /// Results of successive build attempts (true = success); afterwards success.
        outcomes: Vec<bool>,
        attempts: usize,
        /// The built stream pushes this many blocks, then stalls.
        blocks_before_stall: Option<usize>,
        /// The built stream reports an error after its first block.
        error_after_first_block: bool,
    }

    fn builder(plan: Arc<Mutex<Plan>>, built: Arc<AtomicUsize>) -> BuildFn<FakeStream> {
        Box::new(move |ring: &Ring, failed: Arc<AtomicBool>| {
            let mut p = plan.lock().unwrap();
            let ok = p.outcomes.get(p.attempts).copied().unwrap_or(true);
            p.attempts += 1;
            if !ok {
                anyhow::bail!("device not found");
            }
            built.fetch_add(1, Ordering::Relaxed);
            let mut writer = ring.writer()?;
            let stop = Arc::new(AtomicBool::new(false));
            let s = stop.clone();
            let limit = p.blocks_before_stall;
            let error = p.error_after_first_block;
            let thread = std::thread::spawn(move || {
                let block = [0.1f32; 64];
                let mut n = 0;
                while !s.load(Ordering::Relaxed) {
                    if limit.is_none_or(|l| n < l) {
                        writer.push(&block);
                        n += 1;
                        if error && n == 1 {
                            failed.store(true, Ordering::Relaxed);
                        }
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
            });
            Ok(FakeStream {
                stop,
                thread: Some(thread),
            })
        })
    }

    fn poll_until(s: &mut Supervisor<FakeStream>, want: fn(&Action) -> bool) -> Action {
        let t = Instant::now();
        loop {
            let a = s.poll();
            if want(&a) {
                return a;
            }
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "timed out; last {a:?}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn healthy_stream_is_left_alone() {
        let ring = Ring::new(1 << 20, 1).unwrap();
        let plan = Arc::new(Mutex::new(Plan {
            outcomes: vec![],
            attempts: 0,
            blocks_before_stall: None,
            error_after_first_block: false,
        }));
        let built = Arc::new(AtomicUsize::new(0));
        let mut s = Supervisor::start(
            &ring,
            Duration::from_millis(100),
            builder(plan, built.clone()),
        )
        .unwrap();
        for _ in 0..30 {
            assert_eq!(s.poll(), Action::Nothing);
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!((s.rebuilds(), built.load(Ordering::Relaxed)), (0, 1));
        s.stop();
        assert!(!ring.writer_held(), "the writer is released on stop");
    }

    #[test]
    fn watchdog_rebuilds_a_silent_stream() {
        let ring = Ring::new(1 << 20, 1).unwrap();
        let plan = Arc::new(Mutex::new(Plan {
            outcomes: vec![],
            attempts: 0,
            blocks_before_stall: Some(3),
            error_after_first_block: false,
        }));
        let built = Arc::new(AtomicUsize::new(0));
        let mut s = Supervisor::start(
            &ring,
            Duration::from_millis(80),
            builder(plan, built.clone()),
        )
        .unwrap();
        let t = Instant::now();
        assert_eq!(
            poll_until(&mut s, |a| *a == Action::Rebuilt),
            Action::Rebuilt
        );
        assert!(
            t.elapsed() >= Duration::from_millis(80),
            "not before the watchdog period"
        );
        assert_eq!(built.load(Ordering::Relaxed), 2);
        assert!(s.has_stream());
    }

    #[test]
    fn stream_error_rebuilds_with_backoff_while_the_device_is_gone() {
        let ring = Ring::new(1 << 20, 1).unwrap();
        // First stream errors at once; the device then "vanishes" for three attempts.
        let plan = Arc::new(Mutex::new(Plan {
            outcomes: vec![true, false, false, false],
            attempts: 0,
            blocks_before_stall: None,
            error_after_first_block: true,
        }));
        let built = Arc::new(AtomicUsize::new(0));
        let mut s = Supervisor::start(
            &ring,
            Duration::from_secs(60),
            builder(plan.clone(), built.clone()),
        )
        .unwrap();
        let ms = Duration::from_millis;
        s.set_backoff(ms(50), ms(300));
        plan.lock().unwrap().error_after_first_block = false;
        let mut failures = Vec::new();
        let t = Instant::now();
        loop {
            match s.poll() {
                Action::Failed(e) => {
                    assert!(e.contains("device not found"));
                    failures.push((t.elapsed(), s.backoff()));
                }
                Action::Rebuilt => break,
                _ => {}
            }
            assert!(t.elapsed() < Duration::from_secs(10), "never rebuilt");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(failures.len(), 3, "{failures:?}");
        // Backoff doubles after each failure (50 ms, 100 ms, 200 ms waits), capped at 300 ms.
        let next: Vec<Duration> = failures.iter().map(|f| f.1).collect();
        assert_eq!(next, vec![ms(100), ms(200), ms(300)]);
        // Attempts were spaced by the backoff.
        assert!(failures[1].0 - failures[0].0 >= ms(50));
        assert!(failures[2].0 - failures[1].0 >= ms(100));
        assert!(t.elapsed() >= ms(350));
        assert_eq!(s.rebuilds(), 1);
        assert_eq!(s.backoff(), ms(50), "reset after success");
        assert!(s.has_stream());
    }
}
