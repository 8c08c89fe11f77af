//! Stage 1, where audio comes from (`earshot listen`), behind one [`Source`] trait: a capture
//! device (cpal, feature `mic`; [`supervise`] rebuilds a failed stream), PCM on standard input,
//! and an audio file played at real-time pace or as fast as possible. Every source delivers
//! interleaved f32 frames into the lock-free [`ring::Ring`] (the sources' contract: counted
//! drop-oldest, no allocation on the writer side); the DSP thread reads the other end.

pub mod file;
#[cfg(feature = "mic")]
pub mod mic;
pub mod ring;
pub mod stdin;
pub mod supervise;

use anyhow::Result;
use ring::Ring;

/// Native format of the delivered audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceFormat {
    pub sample_rate: u32,
    pub channels: u16,
}

/// How a source behaves when the consumer falls behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Live capture that cannot wait: the DSP thread sheds the oldest audio from the ring
    /// when it falls behind (otherwise the source itself waits for room: files, pipes).
    pub shed_oldest: bool,
    /// Windows are dropped (oldest first, counted) when the model is slower than real time: a
    /// capture device or a file played at real-time pace. Otherwise the DSP thread waits for the
    /// model (a file read as fast as possible, standard input).
    pub drop_windows: bool,
}

/// What a source is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceState {
    Running,
    /// A finite source delivered everything.
    Finished,
    /// Cannot continue (the message says why).
    Failed(String),
}

/// An audio source. Created and polled on the supervising thread (a cpal stream need not be
/// `Send`); the audio itself travels through the ring.
pub trait Source {
    /// For log messages and the `file` field of JSON lines.
    fn name(&self) -> String;
    fn format(&self) -> SourceFormat;
    fn policy(&self) -> Policy;
    /// Starts delivering into `ring` (created for [`Source::format`]); returns at once.
    fn start(&mut self, ring: &Ring) -> Result<()>;
    /// Called every ~100 ms by the supervisor: liveness checks, stream rebuilds.
    fn poll(&mut self) -> SourceState;
    /// Stops delivering (idempotent).
    fn stop(&mut self);
}

/// Sleeps in small steps until `cond` is true or `stop` is set; false if stopped.
pub(crate) fn wait_until(
    stop: &std::sync::atomic::AtomicBool,
    mut cond: impl FnMut() -> bool,
) -> bool {
    use std::sync::atomic::Ordering;
    while !cond() {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    !stop.load(Ordering::Relaxed)
}

/// Runs a source thread's body and reports its result through shared state.
pub(crate) struct ThreadState {
    pub stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    pub result: std::sync::Arc<std::sync::Mutex<Option<Result<(), String>>>>,
    pub handle: Option<std::thread::JoinHandle<()>>,
}

impl ThreadState {
    pub fn new() -> ThreadState {
        ThreadState {
            stop: Default::default(),
            result: Default::default(),
            handle: None,
        }
    }

    pub fn spawn(
        &mut self,
        name: &str,
        body: impl FnOnce(&std::sync::atomic::AtomicBool) -> Result<()> + Send + 'static,
    ) -> Result<()> {
        let stop = self.stop.clone();
        let result = self.result.clone();
        self.handle = Some(
            std::thread::Builder::new()
                .name(name.into())
                .spawn(move || {
                    let r = body(&stop).map_err(|e| format!("{e:#}"));
                    *result.lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
                })?,
        );
        Ok(())
    }

    pub fn state(&self) -> SourceState {
        match &*self.result.lock().unwrap_or_else(|p| p.into_inner()) {
            None => SourceState::Running,
            Some(Ok(())) => SourceState::Finished,
            Some(Err(e)) => SourceState::Failed(e.clone()),
        }
    }

    pub fn stop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            // A thread blocked in a read of stdin cannot be interrupted; do not wait for it.
            if h.is_finished() {
                let _ = h.join();
            }
        }
    }
}
