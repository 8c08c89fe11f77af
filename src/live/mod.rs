//! Stage 4, `earshot listen`'s threads: a source fills a lock-free ring; the DSP thread
//! ([`dsp`], `earshot-dsp`) downmixes, resamples and cuts windows
//! ([`crate::audio::stream::WindowStream`]), gates silence ([`gate`]) and queues the windows
//! ([`queue`]); the inference thread ([`infer`], `earshot-infer`) captions them, applies the
//! caption rules ([`filter`]), de-duplicates ([`dedup`]), asks for the clip
//! ([`crate::clips`], written by its own thread `earshot-clips`) and emits events to every
//! sink, plus periodic [`health`] reports. [`run`] is the
//! supervisor that starts the source and both threads and stops them in order.
//!
//! ```text
//! source ──ring──▶ DSP thread ──bounded window queue──▶ inference thread ──▶ sinks
//! (callback/thread)  downmix, resample,  (drops oldest      caption, dedup,
//!                    window, silence gate when full)    health, summary
//! ```
//!
//! Memory is flat: the ring, the resampler and the chunker are fixed-size, and window buffers come
//! from a pool of `queue_windows + 2` buffers allocated at start (one being filled, one being
//! captioned, the rest queued), and with `[clips]` the clip ring is one fixed buffer
//! ([`crate::clips`]). When the model is slower than real time the oldest queued window
//! is dropped and counted (for sources that cannot wait); a file read as fast as possible waits
//! for the model instead.

pub mod dedup;
pub mod dsp;
pub mod filter;
pub mod gate;
pub mod health;
pub mod infer;
pub mod params;
pub mod queue;

pub use health::{Counters, Totals};
pub use params::LiveParams;

use crate::clips::{self, ClipRecorder};
use crate::model::WindowCaptioner;
use crate::sink::EventSink;
use crate::source::ring::{Ring, RingStats};
use crate::source::{Policy, Source, SourceFormat, SourceState};
use anyhow::{anyhow, bail, Context, Result};
use dsp::DspCtx;
use infer::InferCtx;
use queue::WindowQueue;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The running DSP and inference threads of one live run.
pub struct Pipeline {
    finish: Arc<AtomicBool>,
    counters: Arc<Counters>,
    ring_stats: Arc<RingStats>,
    dsp: Option<JoinHandle<Result<()>>>,
    infer: Option<JoinHandle<Result<()>>>,
}

impl Pipeline {
    /// Starts the DSP and inference threads reading `ring`.
    pub fn start(
        params: LiveParams,
        source_name: String,
        format: SourceFormat,
        policy: Policy,
        ring: &Ring,
        captioner: Box<dyn WindowCaptioner>,
        sinks: Vec<Box<dyn EventSink>>,
    ) -> Result<Pipeline> {
        let model_window = captioner.window_samples();
        if params.window_samples == 0 || params.hop_samples == 0 {
            bail!("window and hop must be at least one sample");
        }
        if params.window_samples > model_window {
            bail!(
                "the window ({} samples) is longer than the model input ({model_window})",
                params.window_samples
            );
        }
        let counters = Arc::new(Counters::default());
        let queue = Arc::new(WindowQueue::new(
            params.queue_windows.max(1),
            model_window,
            &counters,
        ));
        let finish = Arc::new(AtomicBool::new(false));
        let reader = ring.reader()?;
        let lossless = !policy.drop_windows;
        let recorder = match &params.clips {
            None => None,
            Some(c) => {
                // The DSP thread runs at most the queued windows (plus the one being cut) ahead;
                // capped at 60 s so a long queue cannot make the ring big (a clip whose start
                // was overwritten then comes out shorter, logged).
                let cap_lead = 60 * params.model_rate as usize;
                let lead = ((params.queue_windows.max(1) + 2) * params.hop_samples).min(cap_lead);
                let cap = clips::ring_samples(params.model_rate, params.window_samples, c, lead);
                let stats = counters.clips.clone();
                Some(ClipRecorder::start(
                    c,
                    params.model_rate,
                    cap,
                    lossless,
                    stats,
                )?)
            }
        };
        let history = recorder.as_ref().map(|r| r.history());
        let dsp_ctx = DspCtx {
            params: params.clone(),
            policy,
            format,
            model_window,
            queue: queue.clone(),
            counters: counters.clone(),
            finish: finish.clone(),
            clips: history.clone(),
        };
        let q = queue.clone();
        let dsp = std::thread::Builder::new()
            .name("earshot-dsp".into())
            .spawn(move || {
                let r = dsp::run(dsp_ctx, reader);
                if let Some(h) = history {
                    h.input_done();
                }
                q.close();
                r
            })?;
        let infer_ctx = InferCtx {
            params,
            source_name,
            src_rate: format.sample_rate,
            queue: queue.clone(),
            counters: counters.clone(),
            ring_stats: ring.stats().clone(),
            started: Instant::now(),
            clips: recorder,
        };
        let q = queue;
        let infer = std::thread::Builder::new()
            .name("earshot-infer".into())
            .spawn(move || {
                let r = infer::run(infer_ctx, captioner, sinks);
                q.consumer_gone();
                r
            })?;
        Ok(Pipeline {
            finish,
            counters,
            ring_stats: ring.stats().clone(),
            dsp: Some(dsp),
            infer: Some(infer),
        })
    }

    pub fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    pub fn totals(&self) -> Totals {
        self.counters.totals(&self.ring_stats)
    }

    /// True when a thread ended on its own (an error).
    pub fn has_stopped(&self) -> bool {
        self.dsp.as_ref().is_none_or(|h| h.is_finished())
            || self.infer.as_ref().is_none_or(|h| h.is_finished())
    }

    /// End of input: the DSP thread drains the ring, emits the last (partial) window and
    /// closes the queue; the inference thread captions what is queued, emits the summary and
    /// flushes every sink. Waits for both.
    pub fn finish(mut self) -> Result<Totals> {
        self.finish.store(true, Ordering::Release);
        let join = |h: Option<JoinHandle<Result<()>>>, what: &str| -> Result<()> {
            match h {
                None => Ok(()),
                Some(h) => h
                    .join()
                    .map_err(|_| anyhow!("the {what} thread panicked"))?
                    .with_context(|| format!("{what} thread")),
            }
        };
        let a = join(self.dsp.take(), "dsp");
        let b = join(self.infer.take(), "inference");
        a?;
        b?;
        Ok(self.totals())
    }
}

/// Runs a source to the end (or until `stop` is set): the supervisor loop of `earshot listen`.
/// Returns the totals; a failed source or thread is an error after everything was flushed.
pub fn run(
    source: &mut dyn Source,
    params: LiveParams,
    captioner: Box<dyn WindowCaptioner>,
    sinks: Vec<Box<dyn EventSink>>,
    stop: &AtomicBool,
) -> Result<Totals> {
    let format = source.format();
    if format.sample_rate == 0 || format.channels == 0 {
        bail!("the source reports an empty format ({format:?})");
    }
    let ring_frames = ((params.ring_seconds * f64::from(format.sample_rate)) as usize).max(4096);
    let ring = Ring::new(ring_frames, usize::from(format.channels))?;
    let pipeline = Pipeline::start(
        params,
        source.name(),
        format,
        source.policy(),
        &ring,
        captioner,
        sinks,
    )?;
    let mut failure = None;
    if let Err(e) = source.start(&ring) {
        failure = Some(e.context(format!("cannot start {}", source.name())));
    }
    while failure.is_none() {
        if stop.load(Ordering::Relaxed) {
            log::info!("stopping: finishing the current window and flushing outputs");
            break;
        }
        match source.poll() {
            SourceState::Running => {}
            SourceState::Finished => break,
            SourceState::Failed(e) => {
                failure = Some(anyhow!("{}: {e}", source.name()));
                break;
            }
        }
        if pipeline.has_stopped() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    source.stop();
    let totals = pipeline.finish();
    match (failure, totals) {
        (Some(e), _) => Err(e),
        (None, t) => t,
    }
}
