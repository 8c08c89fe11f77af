//! `earshot listen`'s processing: a source fills a lock-free ring; a processing thread downmixes,
//! resamples and cuts windows ([`crate::pipeline::WindowStream`]), gates silence and queues the
//! windows; an inference thread captions them, de-duplicates and emits events to every sink,
//! plus periodic health reports.
//!
//! ```text
//! source ──ring──▶ processing thread ──bounded window queue──▶ inference thread ──▶ sinks
//! (callback/thread)  downmix, resample,        (drops oldest      caption, dedup,
//!                    window, silence gate       when full)         health, summary
//! ```
//!
//! Memory is flat: the ring, the resampler and the chunker are fixed-size, and window buffers come
//! from a pool of `queue_windows + 2` buffers allocated at start (one being filled, one being
//! captioned, the rest queued). When the model is slower than real time the oldest queued window
//! is dropped and counted (for sources that cannot wait); a file read as fast as possible waits
//! for the model instead.

pub mod dedup;
pub mod gate;

use crate::captioner::{Caption, Captioner};
use crate::pipeline::{CaptionEvent, WindowStream};
use crate::ring::{Ring, RingReader, RingStats};
use crate::sink::{Event, EventSink, HealthEvent, LiveCaption};
use crate::source::{Policy, Source, SourceFormat, SourceState};
use anyhow::{anyhow, bail, Context, Result};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

/// Something that captions one window at the model rate (the real [`Captioner`], or a fake
/// model in tests).
pub trait WindowCaptioner: Send {
    /// Model input length in samples (windows are zero-padded to it).
    fn window_samples(&self) -> usize;
    /// `window` has exactly [`Self::window_samples`] samples; the first `valid` are real audio.
    fn caption(&mut self, window: &[f32], valid: usize) -> Result<Caption>;
}

impl WindowCaptioner for Captioner {
    fn window_samples(&self) -> usize {
        Captioner::window_samples(self)
    }
    fn caption(&mut self, window: &[f32], valid: usize) -> Result<Caption> {
        Captioner::caption(self, window, valid)
    }
}

/// Parameters of one live run.
#[derive(Debug, Clone)]
pub struct LiveParams {
    pub model_rate: u32,
    /// Window and hop in model samples (window ≤ the captioner's input length).
    pub window_samples: usize,
    pub hop_samples: usize,
    pub gate_dbfs: Option<f64>,
    pub holdoff_seconds: f64,
    pub similarity: f64,
    pub queue_windows: usize,
    pub ring_seconds: f64,
    pub health_every: Option<Duration>,
}

/// Counters shared by the threads (read by health reports and tests).
#[derive(Debug, Default)]
pub struct Counters {
    /// Windows cut from the stream (captioned, gated, suppressed, failed or dropped).
    pub windows: AtomicU64,
    pub captions: AtomicU64,
    pub gated: AtomicU64,
    pub suppressed: AtomicU64,
    pub dropped_windows: AtomicU64,
    pub errors: AtomicU64,
    /// Source frames read from the ring.
    pub frames_in: AtomicU64,
    /// Largest number of windows waiting at once.
    pub max_queued: AtomicU64,
    /// Window buffers ever allocated (stays at `queue_windows + 2`).
    pub buffers: AtomicU64,
}

/// Totals of a finished run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Totals {
    pub windows: u64,
    pub captions: u64,
    pub gated: u64,
    pub suppressed: u64,
    pub dropped_windows: u64,
    pub dropped_samples: u64,
    pub errors: u64,
    pub frames_in: u64,
    pub max_queued: u64,
    pub buffers: u64,
}

fn get(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

fn inc(a: &AtomicU64) {
    a.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    fn totals(&self, ring: &RingStats) -> Totals {
        Totals {
            windows: get(&self.windows),
            captions: get(&self.captions),
            gated: get(&self.gated),
            suppressed: get(&self.suppressed),
            dropped_windows: get(&self.dropped_windows),
            dropped_samples: ring.dropped(),
            errors: get(&self.errors),
            frames_in: get(&self.frames_in),
            max_queued: get(&self.max_queued),
            buffers: get(&self.buffers),
        }
    }
}

/// A window waiting for the model.
struct QueuedWindow {
    index: u64,
    start: f64,
    end: f64,
    samples: Vec<f32>,
    valid: usize,
    level: f64,
    ready: Instant,
}

struct QueueState {
    items: VecDeque<QueuedWindow>,
    free: Vec<Vec<f32>>,
    closed: bool,
    consumer_gone: bool,
}

/// Bounded window queue with a fixed pool of buffers.
struct WindowQueue {
    state: Mutex<QueueState>,
    cv: Condvar,
    capacity: usize,
    buffer_len: usize,
}

enum Popped {
    Window(QueuedWindow),
    Timeout,
    Closed,
}

impl WindowQueue {
    fn new(capacity: usize, buffer_len: usize, counters: &Counters) -> WindowQueue {
        let pool = capacity + 2;
        let free = (0..pool).map(|_| Vec::with_capacity(buffer_len)).collect();
        counters.buffers.store(pool as u64, Ordering::Relaxed);
        WindowQueue {
            state: Mutex::new(QueueState {
                items: VecDeque::with_capacity(capacity + 1),
                free,
                closed: false,
                consumer_gone: false,
            }),
            cv: Condvar::new(),
            capacity,
            buffer_len,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn take_buffer(&self, counters: &Counters) -> Vec<f32> {
        let mut s = self.lock();
        s.free.pop().unwrap_or_else(|| {
            // Cannot happen while the pool invariant holds; counted so tests would see it.
            inc(&counters.buffers);
            Vec::with_capacity(self.buffer_len)
        })
    }

    /// Queues a window. Lossy: drops the oldest queued window when full. Lossless: waits.
    fn push(&self, w: QueuedWindow, lossless: bool, counters: &Counters) -> Result<()> {
        let mut s = self.lock();
        while lossless && s.items.len() >= self.capacity && !s.consumer_gone {
            s = self.cv.wait(s).unwrap_or_else(|p| p.into_inner());
        }
        if s.consumer_gone {
            bail!("the inference thread stopped");
        }
        if s.items.len() >= self.capacity {
            if let Some(old) = s.items.pop_front() {
                s.free.push(old.samples);
                let n = counters.dropped_windows.fetch_add(1, Ordering::Relaxed) + 1;
                if n == 1 || n.is_power_of_two() {
                    log::warn!(
                        "the model is slower than real time: dropped the window at {:.1}-{:.1} s ({n} windows dropped so far)",
                        old.start,
                        old.end
                    );
                }
            }
        }
        s.items.push_back(w);
        let depth = s.items.len() as u64;
        counters.max_queued.fetch_max(depth, Ordering::Relaxed);
        drop(s);
        self.cv.notify_all();
        Ok(())
    }

    fn pop(&self, timeout: Duration) -> Popped {
        let deadline = Instant::now() + timeout;
        let mut s = self.lock();
        loop {
            if let Some(w) = s.items.pop_front() {
                drop(s);
                self.cv.notify_all();
                return Popped::Window(w);
            }
            if s.closed {
                return Popped::Closed;
            }
            let now = Instant::now();
            if now >= deadline {
                return Popped::Timeout;
            }
            s = self
                .cv
                .wait_timeout(s, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    fn give_back(&self, mut buf: Vec<f32>) {
        buf.clear();
        self.lock().free.push(buf);
    }

    fn close(&self) {
        self.lock().closed = true;
        self.cv.notify_all();
    }

    fn consumer_gone(&self) {
        self.lock().consumer_gone = true;
        self.cv.notify_all();
    }
}

/// The running processing and inference threads.
pub struct Pipeline {
    finish: Arc<AtomicBool>,
    counters: Arc<Counters>,
    ring_stats: Arc<RingStats>,
    dsp: Option<JoinHandle<Result<()>>>,
    emitter: Option<JoinHandle<Result<()>>>,
}

struct DspCtx {
    params: LiveParams,
    policy: Policy,
    format: SourceFormat,
    model_window: usize,
    queue: Arc<WindowQueue>,
    counters: Arc<Counters>,
    finish: Arc<AtomicBool>,
}

/// Frames read from the ring per step.
const READ_FRAMES: usize = 2048;

fn dsp_thread(ctx: DspCtx, mut reader: RingReader) -> Result<()> {
    let ch = usize::from(ctx.format.channels).max(1);
    let src_rate = f64::from(ctx.format.sample_rate);
    let rate = f64::from(ctx.params.model_rate);
    let mut stream = WindowStream::new(
        ctx.format.sample_rate,
        ctx.params.model_rate,
        ctx.params.window_samples,
        ctx.params.hop_samples,
    )?;
    let mut interleaved = vec![0f32; READ_FRAMES * ch];
    let mut mono = vec![0f32; READ_FRAMES];
    let mut index = 0u64;
    let lossless = !ctx.policy.drop_windows;
    let mut handle = |w: crate::audio::window::Window<'_>, offset: f64| -> Result<()> {
        let i = index;
        index += 1;
        inc(&ctx.counters.windows);
        let level = gate::level_dbfs(&w.samples[..w.valid]);
        if !gate::passes(level, ctx.params.gate_dbfs) {
            inc(&ctx.counters.gated);
            return Ok(());
        }
        let mut buf = ctx.queue.take_buffer(&ctx.counters);
        buf.clear();
        buf.extend_from_slice(w.samples);
        buf.resize(ctx.model_window, 0.0);
        ctx.queue.push(
            QueuedWindow {
                index: i,
                start: offset + w.start as f64 / rate,
                end: offset + w.end() as f64 / rate,
                samples: buf,
                valid: w.valid,
                level,
                ready: Instant::now(),
            },
            lossless,
            &ctx.counters,
        )
    };
    loop {
        let finishing = ctx.finish.load(Ordering::Acquire);
        if ctx.policy.shed_oldest {
            reader.shed_if_behind();
        }
        let n = reader.pop(&mut interleaved);
        if n == 0 {
            if finishing {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
            continue;
        }
        let frames = n / ch;
        downmix(&interleaved[..n], ch, &mut mono[..frames]);
        ctx.counters
            .frames_in
            .fetch_add(frames as u64, Ordering::Relaxed);
        // Audio lost to overruns shifts the stream clock so window times follow the wall clock.
        let offset = reader.stats().dropped() as f64 / src_rate;
        stream.push(&mono[..frames], |w| handle(w, offset))?;
    }
    let offset = reader.stats().dropped() as f64 / src_rate;
    stream.finish(|w| handle(w, offset))?;
    Ok(())
}

/// Averages interleaved channels into `out` (`out.len()` frames).
pub fn downmix(interleaved: &[f32], channels: usize, out: &mut [f32]) {
    if channels == 1 {
        out.copy_from_slice(&interleaved[..out.len()]);
        return;
    }
    let scale = 1.0 / channels as f32;
    for (o, frame) in out.iter_mut().zip(interleaved.chunks_exact(channels)) {
        *o = frame.iter().sum::<f32>() * scale;
    }
}

struct EmitCtx {
    params: LiveParams,
    source_name: String,
    src_rate: u32,
    queue: Arc<WindowQueue>,
    counters: Arc<Counters>,
    ring_stats: Arc<RingStats>,
    started: Instant,
}

struct SinkSet {
    sinks: Vec<Box<dyn EventSink>>,
    failures: Vec<u64>,
}

impl SinkSet {
    fn emit(&mut self, ev: &Event, counters: &Counters) {
        for (s, fails) in self.sinks.iter_mut().zip(self.failures.iter_mut()) {
            if let Err(e) = s.emit(ev) {
                *fails += 1;
                inc(&counters.errors);
                if *fails == 1 || fails.is_power_of_two() {
                    log::warn!("output {}: {e:#} ({} failures)", s.name(), fails);
                }
            }
        }
    }

    fn flush(&mut self) {
        for s in &mut self.sinks {
            if let Err(e) = s.flush() {
                log::warn!("output {}: {e:#}", s.name());
            }
        }
    }
}

fn health(ctx: &EmitCtx, rtf: Option<f64>, probes: bool) -> HealthEvent {
    let t = ctx.counters.totals(&ctx.ring_stats);
    let rate = f64::from(ctx.src_rate.max(1));
    HealthEvent {
        timestamp: Some(SystemTime::now()),
        uptime_s: ctx.started.elapsed().as_secs_f64(),
        audio_s: (t.frames_in + t.dropped_samples) as f64 / rate,
        rtf,
        rss_bytes: crate::health::rss_bytes(),
        dropped_samples: t.dropped_samples,
        dropped_windows: t.dropped_windows,
        windows: t.windows,
        captions: t.captions,
        gated: t.gated,
        suppressed: t.suppressed,
        errors: t.errors,
        cpu_temp_c: if probes {
            crate::health::cpu_temp_c()
        } else {
            None
        },
        throttled: if probes {
            crate::health::throttled()
        } else {
            None
        },
    }
}

fn emitter_thread(
    ctx: EmitCtx,
    mut captioner: Box<dyn WindowCaptioner>,
    sinks: Vec<Box<dyn EventSink>>,
) -> Result<()> {
    let n = sinks.len();
    let mut sinks = SinkSet {
        sinks,
        failures: vec![0; n],
    };
    let mut dedup = dedup::Dedup::new(ctx.params.holdoff_seconds, ctx.params.similarity);
    let hop_s = ctx.params.hop_samples as f64 / f64::from(ctx.params.model_rate);
    let mut next_health = ctx.params.health_every.map(|d| Instant::now() + d);
    let (mut rtf_sum, mut rtf_n, mut all_rtf_sum, mut all_rtf_n) = (0.0, 0u64, 0.0, 0u64);
    loop {
        let wait = next_health
            .map(|t| t.saturating_duration_since(Instant::now()))
            .unwrap_or(Duration::from_secs(1))
            .max(Duration::from_millis(1));
        match ctx.queue.pop(wait) {
            Popped::Closed => break,
            Popped::Timeout => {}
            Popped::Window(w) => {
                let t = Instant::now();
                let res = captioner.caption(&w.samples, w.valid);
                let inference = t.elapsed().as_secs_f64();
                let QueuedWindow {
                    index,
                    start,
                    end,
                    samples,
                    valid: _,
                    level,
                    ready,
                } = w;
                ctx.queue.give_back(samples);
                let rtf = inference / hop_s;
                rtf_sum += rtf;
                rtf_n += 1;
                all_rtf_sum += rtf;
                all_rtf_n += 1;
                match res {
                    Err(e) => {
                        let k = ctx.counters.errors.fetch_add(1, Ordering::Relaxed) + 1;
                        if k == 1 || k.is_power_of_two() {
                            log::warn!("captioning {start:.1}-{end:.1} s failed: {e:#}");
                        }
                    }
                    Ok(caption) => {
                        let text = caption.text.trim();
                        if text.is_empty() || !dedup.admit(text, end) {
                            inc(&ctx.counters.suppressed);
                        } else {
                            inc(&ctx.counters.captions);
                            let ev = Event::Caption(LiveCaption {
                                event: CaptionEvent {
                                    source: ctx.source_name.clone(),
                                    start,
                                    end,
                                    caption,
                                },
                                timestamp: SystemTime::now(),
                                window_index: index,
                                latency_ms: ready.elapsed().as_secs_f64() * 1e3,
                                inference_ms: inference * 1e3,
                                rtf,
                                dropped_samples: ctx.ring_stats.dropped(),
                                dropped_windows: get(&ctx.counters.dropped_windows),
                                level_dbfs: level,
                            });
                            sinks.emit(&ev, &ctx.counters);
                        }
                    }
                }
            }
        }
        if let (Some(at), Some(every)) = (next_health, ctx.params.health_every) {
            if Instant::now() >= at {
                let rtf = (rtf_n > 0).then(|| rtf_sum / rtf_n as f64);
                let h = health(&ctx, rtf, true);
                eprintln!("earshot: {}", Event::Health(h.clone()).to_text());
                sinks.emit(&Event::Health(h), &ctx.counters);
                rtf_sum = 0.0;
                rtf_n = 0;
                next_health = Some(at + every);
                if Instant::now() > at + every {
                    next_health = Some(Instant::now() + every);
                }
            }
        }
    }
    let rtf = (all_rtf_n > 0).then(|| all_rtf_sum / all_rtf_n as f64);
    let summary = health(&ctx, rtf, false);
    log::info!("{}", Event::Summary(summary.clone()).to_text());
    sinks.emit(&Event::Summary(summary), &ctx.counters);
    sinks.flush();
    Ok(())
}

impl Pipeline {
    /// Starts the processing and inference threads reading `ring`.
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
        let dsp_ctx = DspCtx {
            params: params.clone(),
            policy,
            format,
            model_window,
            queue: queue.clone(),
            counters: counters.clone(),
            finish: finish.clone(),
        };
        let q = queue.clone();
        let dsp = std::thread::Builder::new()
            .name("earshot-dsp".into())
            .spawn(move || {
                let r = dsp_thread(dsp_ctx, reader);
                q.close();
                r
            })?;
        let emit_ctx = EmitCtx {
            params,
            source_name,
            src_rate: format.sample_rate,
            queue: queue.clone(),
            counters: counters.clone(),
            ring_stats: ring.stats().clone(),
            started: Instant::now(),
        };
        let q = queue;
        let emitter = std::thread::Builder::new()
            .name("earshot-infer".into())
            .spawn(move || {
                let r = emitter_thread(emit_ctx, captioner, sinks);
                q.consumer_gone();
                r
            })?;
        Ok(Pipeline {
            finish,
            counters,
            ring_stats: ring.stats().clone(),
            dsp: Some(dsp),
            emitter: Some(emitter),
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
            || self.emitter.as_ref().is_none_or(|h| h.is_finished())
    }

    /// End of input: the processing thread drains the ring, emits the last (partial) window and
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
        let a = join(self.dsp.take(), "processing");
        let b = join(self.emitter.take(), "inference");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downmix_averages() {
        let mut out = [0.0; 2];
        downmix(&[1.0, 0.0, 0.5, 0.5], 2, &mut out);
        assert_eq!(out, [0.5, 0.5]);
    }
}
