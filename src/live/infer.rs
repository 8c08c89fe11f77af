//! The inference thread (`earshot-infer`): [`WindowQueue`] → [`WindowCaptioner`] → the caption
//! rules ([`filter`]: threshold, only/ignore, speech privacy; each caption left out is counted
//! as `uncertain`, `filtered` or `privacy_dropped`) → [`dedup`] → the clip request
//! ([`ClipRecorder`], never waits for the disk) → every sink at once. A failing sink is counted and logged (with back-off in the log, not in
//! the pipeline) and never stops the others. An output closed by its reader (stdout into
//! `| head -1`: a broken pipe) is no longer written; when every output is gone the run ends,
//! as a Unix tool stops when nobody reads it.

use super::dedup;
use super::filter::Verdict;
use super::health::{self, get, inc, Counters};
use super::params::LiveParams;
use super::queue::{Popped, QueuedWindow, WindowQueue};
use crate::clips::ClipRecorder;
use crate::model::WindowCaptioner;
use crate::sink::line::output_gone;
use crate::sink::{CaptionEvent, Event, EventSink, HealthEvent, LiveCaption};
use crate::source::ring::RingStats;
use anyhow::Result;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Seconds → a duration, 0 for anything negative or not finite.
fn seconds(s: f64) -> Duration {
    Duration::try_from_secs_f64(s.max(0.0)).unwrap_or_default()
}

/// What the inference thread owns.
pub struct InferCtx {
    pub params: LiveParams,
    pub source_name: String,
    pub src_rate: u32,
    pub queue: Arc<WindowQueue>,
    pub counters: Arc<Counters>,
    pub ring_stats: Arc<RingStats>,
    pub started: Instant,
    /// The clip writer, when clips are saved.
    pub clips: Option<ClipRecorder>,
}

struct SinkSet {
    sinks: Vec<Box<dyn EventSink>>,
    failures: Vec<u64>,
    /// The sinks' own background failures already added to `errors`.
    background_failures: u64,
    /// Closed by its reader: no longer written.
    gone: Vec<bool>,
}

impl SinkSet {
    fn new(sinks: Vec<Box<dyn EventSink>>) -> SinkSet {
        let n = sinks.len();
        SinkSet {
            sinks,
            failures: vec![0; n],
            background_failures: 0,
            gone: vec![false; n],
        }
    }

    /// There were outputs and every one has been closed by its reader.
    fn all_gone(&self) -> bool {
        !self.gone.is_empty() && self.gone.iter().all(|&g| g)
    }

    fn emit(&mut self, ev: &Event, counters: &Counters) {
        let all = self.sinks.iter_mut().zip(self.failures.iter_mut());
        for ((s, fails), gone) in all.zip(self.gone.iter_mut()) {
            if *gone {
                continue;
            }
            if let Err(e) = s.emit(ev) {
                if output_gone(&e) && !s.reopens() {
                    *gone = true;
                    log::info!(
                        "output {} was closed by its reader; no longer written",
                        s.name()
                    );
                    continue;
                }
                *fails += 1;
                inc(&counters.errors);
                if *fails == 1 || fails.is_power_of_two() {
                    log::warn!("output {}: {e:#} ({} failures)", s.name(), fails);
                }
            }
        }
    }

    /// Publishes the outputs' own drop counts into the shared counters, and adds their new
    /// background failures to `errors`.
    fn count_dropped(&mut self, counters: &Counters) {
        let n = self.sinks.iter().map(|s| s.dropped()).sum();
        counters.dropped_messages.store(n, Ordering::Relaxed);
        let f: u64 = self.sinks.iter().map(|s| s.failures()).sum();
        let new = f.saturating_sub(self.background_failures);
        self.background_failures = self.background_failures.max(f);
        counters.errors.fetch_add(new, Ordering::Relaxed);
    }

    fn flush(&mut self) {
        for (s, _) in self.sinks.iter_mut().zip(&self.gone).filter(|(_, &g)| !g) {
            if let Err(e) = s.flush() {
                log::warn!("output {}: {e:#}", s.name());
            }
        }
    }
}

fn report(ctx: &InferCtx, rtf: Option<f64>, probes: bool) -> HealthEvent {
    health::report(
        &ctx.counters,
        &ctx.ring_stats,
        ctx.src_rate,
        ctx.started,
        rtf,
        probes,
    )
}

/// The inference thread: captions queued windows, de-duplicates, emits events to every sink,
/// plus the periodic health reports and the final summary; flushes every sink at the end.
pub fn run(
    mut ctx: InferCtx,
    mut captioner: Box<dyn WindowCaptioner>,
    sinks: Vec<Box<dyn EventSink>>,
) -> Result<()> {
    let mut sinks = SinkSet::new(sinks);
    let mut dedup = dedup::Dedup::new(ctx.params.holdoff_seconds, ctx.params.similarity);
    let hop_s = ctx.params.hop_samples as f64 / f64::from(ctx.params.model_rate);
    let mut next_health = ctx.params.health_every.map(|d| Instant::now() + d);
    let (mut rtf_sum, mut rtf_n, mut all_rtf_sum, mut all_rtf_n) = (0.0, 0u64, 0.0, 0u64);
    while !sinks.all_gone() {
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
                    stream_start,
                    start,
                    end,
                    samples,
                    valid,
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
                    Ok(caption) if caption.text.trim().is_empty() => {
                        inc(&ctx.counters.suppressed);
                    }
                    Ok(caption) => match ctx.params.rules.judge(caption) {
                        Verdict::Uncertain => inc(&ctx.counters.uncertain),
                        Verdict::Filtered => inc(&ctx.counters.filtered),
                        Verdict::PrivacyDropped => inc(&ctx.counters.privacy_dropped),
                        Verdict::Emit { caption, clip } => {
                            if !dedup.admit(caption.text.trim(), end) {
                                inc(&ctx.counters.suppressed);
                            } else {
                                inc(&ctx.counters.captions);
                                let rate = f64::from(ctx.params.model_rate);
                                let clip = match (clip, ctx.clips.as_mut()) {
                                    (true, Some(rec)) => {
                                        // Wall-clock time of the window's first sample.
                                        let age = ready.elapsed() + seconds(valid as f64 / rate);
                                        let at = SystemTime::now()
                                            .checked_sub(age)
                                            .unwrap_or_else(SystemTime::now);
                                        rec.request(
                                            stream_start,
                                            stream_start + valid as u64,
                                            at,
                                            &caption.text,
                                        )
                                        .map(|p| p.display().to_string())
                                    }
                                    _ => None,
                                };
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
                                    clip,
                                });
                                sinks.emit(&ev, &ctx.counters);
                            }
                        }
                    },
                }
            }
        }
        if let (Some(at), Some(every)) = (next_health, ctx.params.health_every) {
            if Instant::now() >= at {
                let rtf = (rtf_n > 0).then(|| rtf_sum / rtf_n as f64);
                sinks.count_dropped(&ctx.counters);
                let h = report(&ctx, rtf, true);
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
    if sinks.all_gone() {
        log::warn!("every output was closed by its reader: stopping");
    }
    if let Some(rec) = ctx.clips.as_mut() {
        // The last clips (their audio ends with the stream), so the summary counts them.
        rec.finish();
    }
    let rtf = (all_rtf_n > 0).then(|| all_rtf_sum / all_rtf_n as f64);
    sinks.count_dropped(&ctx.counters);
    let summary = report(&ctx, rtf, false);
    log::info!("{}", Event::Summary(summary.clone()).to_text());
    sinks.emit(&Event::Summary(summary), &ctx.counters);
    sinks.flush();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A sink whose reader goes away (every write a broken pipe) until `back` is set.
    struct Flaky {
        reopens: bool,
        back: Arc<Mutex<bool>>,
        written: Arc<Mutex<usize>>,
    }

    impl EventSink for Flaky {
        fn name(&self) -> String {
            "flaky".into()
        }
        fn emit(&mut self, _event: &Event) -> Result<()> {
            if !*self.back.lock().unwrap() {
                let pipe = std::io::Error::from(std::io::ErrorKind::BrokenPipe);
                return Err(anyhow::Error::new(pipe).context("writing"));
            }
            *self.written.lock().unwrap() += 1;
            Ok(())
        }
        fn flush(&mut self) -> Result<()> {
            Ok(())
        }
        fn reopens(&self) -> bool {
            self.reopens
        }
    }

    /// A sink counting failures of its own (a webhook's failed POSTs).
    struct Failing(Arc<Mutex<u64>>);

    impl EventSink for Failing {
        fn name(&self) -> String {
            "failing".into()
        }
        fn emit(&mut self, _event: &Event) -> Result<()> {
            Ok(())
        }
        fn flush(&mut self) -> Result<()> {
            Ok(())
        }
        fn failures(&self) -> u64 {
            *self.0.lock().unwrap()
        }
    }

    #[test]
    fn background_failures_are_added_to_errors_once() {
        let n = Arc::new(Mutex::new(0));
        let mut set = SinkSet::new(vec![Box::new(Failing(n.clone()))]);
        let counters = Counters::default();
        counters.errors.fetch_add(1, Ordering::Relaxed); // a captioning error
        *n.lock().unwrap() = 3;
        set.count_dropped(&counters);
        set.count_dropped(&counters);
        assert_eq!(get(&counters.errors), 4);
        *n.lock().unwrap() = 5;
        set.count_dropped(&counters);
        assert_eq!(get(&counters.errors), 6);
    }

    /// A serial port whose pty was closed must be written again once it is back (the soak found
    /// it given up for good); a pipe whose reader left (`listen | head`) is given up.
    #[test]
    fn a_reopening_sink_is_never_given_up_on_a_broken_pipe() {
        for reopens in [true, false] {
            let back = Arc::new(Mutex::new(false));
            let written = Arc::new(Mutex::new(0));
            let sink = Flaky {
                reopens,
                back: back.clone(),
                written: written.clone(),
            };
            let mut set = SinkSet::new(vec![Box::new(sink)]);
            let counters = Counters::default();
            let ev = Event::Health(HealthEvent::default());
            set.emit(&ev, &counters);
            *back.lock().unwrap() = true;
            set.emit(&ev, &counters);
            assert_eq!(
                *written.lock().unwrap(),
                usize::from(reopens),
                "reopens {reopens}"
            );
            assert_eq!(set.all_gone(), !reopens);
        }
    }
}
