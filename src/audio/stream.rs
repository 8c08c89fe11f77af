//! [`WindowStream`]: mono samples at the source rate → resampled to the model rate → sliding
//! windows with their sample positions. Source-agnostic (files, microphones, stdin, synthetic
//! signals): `earshot caption`'s driver and `listen`'s DSP thread both cut their windows here.
//!
//! Memory is bounded: the resampler holds one chunk, the chunker one window — independent of
//! the length of the stream.

use super::resample::Resampler;
use super::window::{Chunker, Window};
use anyhow::Result;

/// Resampler + chunker for one stream.
#[derive(Debug)]
pub struct WindowStream {
    resampler: Resampler,
    chunker: Chunker,
    scratch: Vec<f32>,
    rate: u32,
}

impl WindowStream {
    /// `in_rate`: the source's rate; `rate`: the model's rate; `window`, `hop` in model samples.
    pub fn new(in_rate: u32, rate: u32, window: usize, hop: usize) -> Result<WindowStream> {
        Ok(WindowStream {
            resampler: Resampler::new(in_rate, rate)?,
            chunker: Chunker::new(window, hop),
            scratch: Vec::new(),
            rate,
        })
    }

    /// Model-rate samples seen so far.
    pub fn samples_out(&self) -> u64 {
        self.chunker.total()
    }

    /// Model sample rate.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// Samples held in buffers right now (bounded; for tests and health reports).
    pub fn buffered_capacity(&self) -> usize {
        self.chunker.capacity() + self.scratch.capacity()
    }

    /// Feeds source-rate mono samples; full windows go to `on_window`.
    pub fn push(
        &mut self,
        samples: &[f32],
        on_window: impl FnMut(Window<'_>) -> Result<()>,
    ) -> Result<()> {
        self.push_tapped(samples, |_| {}, on_window)
    }

    /// [`Self::push`], handing every model-rate sample to `tap` first, in stream order (so a
    /// window's samples have all been tapped when `on_window` sees it; the clip ring of
    /// `listen` is filled this way).
    pub fn push_tapped(
        &mut self,
        samples: &[f32],
        mut tap: impl FnMut(&[f32]),
        on_window: impl FnMut(Window<'_>) -> Result<()>,
    ) -> Result<()> {
        self.scratch.clear();
        let scratch = &mut self.scratch;
        self.resampler
            .push(samples, |s| scratch.extend_from_slice(s))?;
        tap(&self.scratch);
        self.chunker.push(&self.scratch, on_window)
    }

    /// Ends the stream: flushes the resampler and emits the zero-padded last window, if any.
    pub fn finish(&mut self, on_window: impl FnMut(Window<'_>) -> Result<()>) -> Result<()> {
        self.finish_tapped(|_| {}, on_window)
    }

    /// [`Self::finish`] with a `tap` as in [`Self::push_tapped`] (the zero padding of the last
    /// window is not audio and is not tapped).
    pub fn finish_tapped(
        &mut self,
        mut tap: impl FnMut(&[f32]),
        mut on_window: impl FnMut(Window<'_>) -> Result<()>,
    ) -> Result<()> {
        self.scratch.clear();
        let scratch = &mut self.scratch;
        self.resampler.finish(|s| scratch.extend_from_slice(s))?;
        tap(&self.scratch);
        self.chunker.push(&self.scratch, &mut on_window)?;
        self.chunker.finish(on_window)
    }

    /// Forgets the stream (e.g. after a capture device was rebuilt).
    pub fn reset(&mut self) {
        self.resampler.reset();
        self.chunker.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_stream_resamples_and_windows() {
        // 3 s at 48 kHz -> 48000 samples at 16 kHz -> windows of 1 s every 0.5 s.
        let mut ws = WindowStream::new(48000, 16000, 16000, 8000).unwrap();
        let x = vec![0.25f32; 144000];
        let mut starts = Vec::new();
        for piece in x.chunks(4096) {
            ws.push(piece, |w| {
                starts.push((w.start, w.valid));
                Ok(())
            })
            .unwrap();
            assert!(ws.buffered_capacity() < 16000 + 8192);
        }
        ws.finish(|w| {
            starts.push((w.start, w.valid));
            Ok(())
        })
        .unwrap();
        assert_eq!(
            starts,
            vec![
                (0, 16000),
                (8000, 16000),
                (16000, 16000),
                (24000, 16000),
                (32000, 16000)
            ]
        );
    }
}
