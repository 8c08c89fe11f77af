//! Sliding-window chunker: cuts a sample stream into windows of `window` samples every `hop`
//! samples, each with its start/end position. Holds at most one window of samples.
//!
//! Windows start at 0, hop, 2·hop, …; a window is emitted as soon as it is full. At the end of the
//! stream, samples not yet covered by any window go into one last window that is zero-padded to
//! full length; its `end` is the real end of the audio and `valid` counts the real samples.

/// One window of samples.
#[derive(Debug, Clone, Copy)]
pub struct Window<'a> {
    /// Exactly `window` samples (zero-padded at the end of a stream).
    pub samples: &'a [f32],
    /// Position of the first sample in the stream, in samples.
    pub start: u64,
    /// Number of real (not padded) samples.
    pub valid: usize,
}

impl Window<'_> {
    /// End position in the stream (exclusive), in samples.
    pub fn end(&self) -> u64 {
        self.start + self.valid as u64
    }
}

#[derive(Debug)]
pub struct Chunker {
    window: usize,
    hop: usize,
    buf: Vec<f32>,
    /// Stream position of `buf[0]`.
    buf_start: u64,
    /// Samples still to drop before the next window starts (when hop > window).
    skip: usize,
    /// End (exclusive) of the last emitted window, in samples.
    covered: u64,
    total: u64,
}

impl Chunker {
    /// `window` and `hop` in samples, both > 0.
    pub fn new(window: usize, hop: usize) -> Chunker {
        assert!(window > 0 && hop > 0, "window and hop must be > 0");
        Chunker {
            window,
            hop,
            buf: Vec::with_capacity(window),
            buf_start: 0,
            skip: 0,
            covered: 0,
            total: 0,
        }
    }

    pub fn window_len(&self) -> usize {
        self.window
    }

    pub fn hop_len(&self) -> usize {
        self.hop
    }

    /// Samples pushed so far.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Samples currently held (never more than one window).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Capacity of the internal buffer, for bounded-memory checks.
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Feeds samples; `on_window` is called for every full window. Stops at the first error.
    pub fn push<E>(
        &mut self,
        mut input: &[f32],
        mut on_window: impl FnMut(Window<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        self.total += input.len() as u64;
        while !input.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(input.len());
                self.skip -= n;
                self.buf_start += n as u64;
                input = &input[n..];
                continue;
            }
            let take = (self.window - self.buf.len()).min(input.len());
            self.buf.extend_from_slice(&input[..take]);
            input = &input[take..];
            if self.buf.len() == self.window {
                let start = self.buf_start;
                self.covered = start + self.window as u64;
                on_window(Window {
                    samples: &self.buf,
                    start,
                    valid: self.window,
                })?;
                self.advance();
            }
        }
        Ok(())
    }

    fn advance(&mut self) {
        if self.hop >= self.window {
            self.skip = self.hop - self.window;
            self.buf_start += self.window as u64;
            self.buf.clear();
        } else {
            self.buf.drain(..self.hop);
            self.buf_start += self.hop as u64;
        }
    }

    /// Ends the stream: emits the zero-padded last window if some samples are not yet covered.
    /// The chunker is reset afterwards.
    pub fn finish<E>(
        &mut self,
        mut on_window: impl FnMut(Window<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let end = self.buf_start + self.buf.len() as u64;
        let result = if !self.buf.is_empty() && end > self.covered {
            let valid = self.buf.len();
            self.buf.resize(self.window, 0.0);
            on_window(Window {
                samples: &self.buf,
                start: self.buf_start,
                valid,
            })
        } else {
            Ok(())
        };
        self.reset();
        result
    }

    /// Forgets the stream.
    pub fn reset(&mut self) {
        self.buf.clear();
        self.buf_start = 0;
        self.skip = 0;
        self.covered = 0;
        self.total = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(n: usize, window: usize, hop: usize, piece: usize) -> Vec<(u64, usize, Vec<f32>)> {
        let input: Vec<f32> = (0..n).map(|i| i as f32 + 1.0).collect();
        let mut c = Chunker::new(window, hop);
        let mut out = Vec::new();
        for p in input.chunks(piece.max(1)) {
            c.push::<()>(p, |w| {
                out.push((w.start, w.valid, w.samples.to_vec()));
                Ok(())
            })
            .unwrap();
            assert!(c.buffered() <= window);
        }
        c.finish::<()>(|w| {
            out.push((w.start, w.valid, w.samples.to_vec()));
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn overlapping_windows_and_padded_tail() {
        let out = run(25, 10, 5, 3);
        let starts: Vec<u64> = out.iter().map(|w| w.0).collect();
        assert_eq!(starts, vec![0, 5, 10, 15]);
        // Window at 15 holds samples 15..25 (values 16..=25), exactly full, no padded tail.
        assert_eq!(out[3].1, 10);
        let out = run(27, 10, 5, 4);
        let last = out.last().unwrap();
        assert_eq!((last.0, last.1), (20, 7));
        assert_eq!(last.2[6], 27.0);
        assert_eq!(&last.2[7..], &[0.0, 0.0, 0.0]);
        for (start, _, s) in &out {
            assert_eq!(s[0], *start as f32 + 1.0);
        }
    }

    #[test]
    fn short_stream_gives_one_padded_window() {
        let out = run(4, 10, 5, 100);
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].0, out[0].1), (0, 4));
        assert_eq!(out[0].2.len(), 10);
        assert!(run(0, 10, 5, 1).is_empty());
    }

    #[test]
    fn hop_larger_than_window_skips() {
        let out = run(35, 10, 15, 7);
        let starts: Vec<u64> = out.iter().map(|w| w.0).collect();
        assert_eq!(starts, vec![0, 15, 30]);
        assert_eq!(out[2].1, 5);
    }

    #[test]
    fn window_equals_hop() {
        let out = run(20, 10, 10, 6);
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|w| w.1 == 10));
    }
}
