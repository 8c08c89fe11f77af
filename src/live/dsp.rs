//! The DSP thread (`earshot-dsp`): ring → downmix → [`WindowStream`] (resample, window) →
//! silence [`gate`] → [`WindowQueue`]. Window times follow the wall clock: audio lost to ring
//! overruns shifts the stream clock forward. Only this thread reads the ring. With `[clips]`
//! every model-rate sample is also copied into the clip ring ([`History`]) before its windows
//! are queued.

use super::gate;
use super::health::{inc, Counters};
use super::params::LiveParams;
use super::queue::{QueuedWindow, WindowQueue};
use crate::audio::pcm::downmix;
use crate::audio::stream::WindowStream;
use crate::audio::window::Window;
use crate::clips::history::History;
use crate::source::ring::RingReader;
use crate::source::{Policy, SourceFormat};
use anyhow::Result;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the DSP thread owns.
pub struct DspCtx {
    pub params: LiveParams,
    pub policy: Policy,
    pub format: SourceFormat,
    pub model_window: usize,
    pub queue: Arc<WindowQueue>,
    pub counters: Arc<Counters>,
    pub finish: Arc<AtomicBool>,
    /// The clip ring, when clips are saved.
    pub clips: Option<Arc<History>>,
}

/// Frames read from the ring per step.
const READ_FRAMES: usize = 2048;

/// The DSP thread: reads the ring, downmixes, cuts windows, gates silence, queues windows.
pub fn run(ctx: DspCtx, mut reader: RingReader) -> Result<()> {
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
    let clips = ctx.clips.clone();
    let mut tap = |s: &[f32]| {
        if let Some(h) = &clips {
            h.push(s);
        }
    };
    let mut handle = |w: Window<'_>, offset: f64| -> Result<()> {
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
                stream_start: w.start,
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
        stream.push_tapped(&mono[..frames], &mut tap, |w| handle(w, offset))?;
    }
    let offset = reader.stats().dropped() as f64 / src_rate;
    stream.finish_tapped(&mut tap, |w| handle(w, offset))?;
    Ok(())
}
