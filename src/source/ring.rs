//! Lock-free single-producer/single-consumer audio ring between a capture thread (or the cpal
//! callback) and the DSP thread.
//!
//! Samples are interleaved f32 frames. The producer only ever pushes whole frames and the consumer
//! only pops whole frames, so the channel alignment can never slip.
//!
//! Overrun policy: the consumer sheds the *oldest* audio whenever the ring is more than
//! [`SHED_HIGH`] full (it has fallen behind), keeping the newest [`SHED_KEEP`] of it; if the ring is
//! ever completely full the producer drops the incoming block. Both are counted in
//! [`RingStats::dropped_frames`]. Neither side allocates, locks or logs.

use anyhow::{bail, Result};
use ringbuf::traits::{Consumer, Observer, Producer};
use ringbuf::{HeapCons, HeapProd, HeapRb};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Occupancy fraction above which the consumer sheds the oldest audio.
pub const SHED_HIGH: f64 = 0.9;
/// Fraction of the capacity the consumer keeps after shedding.
pub const SHED_KEEP: f64 = 0.5;

/// Counters shared by both ends (all in frames = samples per channel).
#[derive(Debug, Default)]
pub struct RingStats {
    /// Frames accepted into the ring since it was created.
    pub frames_written: AtomicU64,
    /// Frames lost to overruns (either end).
    pub frames_dropped: AtomicU64,
}

impl RingStats {
    pub fn written(&self) -> u64 {
        self.frames_written.load(Ordering::Relaxed)
    }
    pub fn dropped(&self) -> u64 {
        self.frames_dropped.load(Ordering::Relaxed)
    }
}

/// The ring plus its counters. Cloning shares the same ring.
#[derive(Clone)]
pub struct Ring {
    rb: Arc<HeapRb<f32>>,
    stats: Arc<RingStats>,
    channels: usize,
}

impl std::fmt::Debug for Ring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring")
            .field("capacity", &self.rb.capacity())
            .field("channels", &self.channels)
            .finish()
    }
}

impl Ring {
    /// A ring holding `frames` frames of `channels` interleaved channels.
    pub fn new(frames: usize, channels: usize) -> Result<Ring> {
        if channels == 0 || frames == 0 {
            bail!("ring needs at least one frame and one channel");
        }
        Ok(Ring {
            rb: Arc::new(HeapRb::new(frames * channels)),
            stats: Arc::new(RingStats::default()),
            channels,
        })
    }

    pub fn channels(&self) -> usize {
        self.channels
    }

    pub fn capacity_frames(&self) -> usize {
        self.rb.capacity().get() / self.channels
    }

    pub fn stats(&self) -> &Arc<RingStats> {
        &self.stats
    }

    /// Frames currently buffered.
    pub fn occupied_frames(&self) -> usize {
        self.rb.occupied_len() / self.channels
    }

    /// True while a writer exists (e.g. a cpal stream that has not been dropped yet).
    pub fn writer_held(&self) -> bool {
        self.rb.write_is_held()
    }

    /// The producer end. Only one may exist at a time; a new one can be made after the previous
    /// one was dropped (a rebuilt capture stream).
    pub fn writer(&self) -> Result<RingWriter> {
        if self.rb.write_is_held() {
            bail!("the audio ring already has a writer");
        }
        Ok(RingWriter {
            prod: HeapProd::new(self.rb.clone()),
            stats: self.stats.clone(),
            channels: self.channels,
        })
    }

    /// The consumer end (one at a time).
    pub fn reader(&self) -> Result<RingReader> {
        if self.rb.read_is_held() {
            bail!("the audio ring already has a reader");
        }
        Ok(RingReader {
            cons: HeapCons::new(self.rb.clone()),
            stats: self.stats.clone(),
            channels: self.channels,
        })
    }
}

/// Producer end: real-time safe (no allocation, lock or syscall).
pub struct RingWriter {
    prod: HeapProd<f32>,
    stats: Arc<RingStats>,
    channels: usize,
}

impl RingWriter {
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Pushes interleaved samples (a whole number of frames; a trailing partial frame is
    /// ignored). Frames that do not fit are dropped and counted. Returns frames accepted.
    #[inline]
    pub fn push(&mut self, samples: &[f32]) -> usize {
        let frames = samples.len() / self.channels;
        let room = self.prod.vacant_len() / self.channels;
        let take = frames.min(room);
        if take > 0 {
            self.prod.push_slice(&samples[..take * self.channels]);
            self.stats
                .frames_written
                .fetch_add(take as u64, Ordering::Relaxed);
        }
        if take < frames {
            self.stats
                .frames_dropped
                .fetch_add((frames - take) as u64, Ordering::Relaxed);
        }
        take
    }

    /// Free room in frames (a lossless writer such as a fast file reader waits for room).
    pub fn vacant_frames(&self) -> usize {
        self.prod.vacant_len() / self.channels
    }

    pub fn stats(&self) -> &Arc<RingStats> {
        &self.stats
    }
}

/// Consumer end.
pub struct RingReader {
    cons: HeapCons<f32>,
    stats: Arc<RingStats>,
    channels: usize,
}

impl RingReader {
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Pops up to `out.len()` samples (whole frames only); returns samples written to `out`.
    pub fn pop(&mut self, out: &mut [f32]) -> usize {
        let want = (out.len() / self.channels) * self.channels;
        let have = (self.cons.occupied_len() / self.channels) * self.channels;
        let n = want.min(have);
        if n == 0 {
            return 0;
        }
        self.cons.pop_slice(&mut out[..n])
    }

    /// Sheds the oldest audio when the ring is more than [`SHED_HIGH`] full. Returns the frames
    /// dropped (also added to the shared counter).
    pub fn shed_if_behind(&mut self) -> u64 {
        let cap = self.cons.capacity().get();
        let occupied = self.cons.occupied_len();
        if (occupied as f64) <= cap as f64 * SHED_HIGH {
            return 0;
        }
        let keep = ((cap as f64 * SHED_KEEP) as usize / self.channels) * self.channels;
        let drop = ((occupied - keep.min(occupied)) / self.channels) * self.channels;
        let dropped = self.cons.skip(drop) / self.channels;
        self.stats
            .frames_dropped
            .fetch_add(dropped as u64, Ordering::Relaxed);
        dropped as u64
    }

    pub fn stats(&self) -> &Arc<RingStats> {
        &self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_frames_and_incoming_drop_when_full() {
        let ring = Ring::new(4, 2).unwrap();
        let mut w = ring.writer().unwrap();
        let mut r = ring.reader().unwrap();
        assert_eq!(w.push(&[1.0, 2.0, 3.0, 4.0, 5.0]), 2); // trailing half frame ignored
        assert_eq!(w.push(&[5.0, 6.0, 7.0, 8.0, 9.0, 10.0]), 2); // only 2 of 3 frames fit
        assert_eq!(ring.stats().dropped(), 1);
        assert_eq!(ring.stats().written(), 4);
        let mut out = [0.0; 5];
        assert_eq!(r.pop(&mut out), 4); // 5 slots -> 2 whole frames
        assert_eq!(&out[..4], &[1.0, 2.0, 3.0, 4.0]);
        assert!(ring.writer().is_err(), "second writer must be refused");
        drop(w);
        assert!(ring.writer().is_ok(), "writer can be recreated after drop");
    }

    #[test]
    fn consumer_sheds_oldest() {
        let ring = Ring::new(10, 1).unwrap();
        let mut w = ring.writer().unwrap();
        let mut r = ring.reader().unwrap();
        let data: Vec<f32> = (0..10).map(|i| i as f32).collect();
        w.push(&data);
        assert_eq!(r.shed_if_behind(), 5);
        let mut out = [0.0; 10];
        let n = r.pop(&mut out);
        assert_eq!(&out[..n], &[5.0, 6.0, 7.0, 8.0, 9.0]); // newest kept
        assert_eq!(ring.stats().dropped(), 5);
        assert_eq!(r.shed_if_behind(), 0);
    }
}
