//! The inference thread (`earshot-infer`): [`WindowQueue`] → [`WindowCaptioner`] → [`dedup`]
//! → every sink at once. A failing sink is counted and logged (with back-off in the log, not in
//! the pipeline) and never stops the others.

use super::dedup;
use super::health::{self, get, inc, Counters};
use super::params::LiveParams;
use super::queue::{Popped, QueuedWindow, WindowQueue};
use crate::model::WindowCaptioner;
use crate::sink::{CaptionEvent, Event, EventSink, HealthEvent, LiveCaption};
use crate::source::ring::RingStats;
use anyhow::Result;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// What the inference thread owns.
pub struct InferCtx {
    pub params: LiveParams,
    pub source_name: String,
    pub src_rate: u32,
    pub queue: Arc<WindowQueue>,
    pub counters: Arc<Counters>,
    pub ring_stats: Arc<RingStats>,
    pub started: Instant,
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
    ctx: InferCtx,
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
    let rtf = (all_rtf_n > 0).then(|| all_rtf_sum / all_rtf_n as f64);
    let summary = report(&ctx, rtf, false);
    log::info!("{}", Event::Summary(summary.clone()).to_text());
    sinks.emit(&Event::Summary(summary), &ctx.counters);
    sinks.flush();
    Ok(())
}
