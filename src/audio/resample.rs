//! Mono streaming resampler (rubato's synchronous FFT resampler) with a push/finish/reset API.
//!
//! `push` accepts any number of samples and hands the produced output to a callback; `finish`
//! flushes the resampler's internal delay and emits exactly `round(n_in * out_rate / in_rate)`
//! samples in total, aligned with the input (the filter delay is removed). Equal rates pass
//! through unchanged. Both rates must pass [`super::pcm::check_rate`] (the filter sizes follow
//! from them).

use anyhow::{anyhow, Result};
use rubato::{FftFixedIn, Resampler as _};

/// Approximate input chunk size of the FFT resampler, in input frames.
const TARGET_CHUNK: usize = 1024;

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Largest FFT unit (`in_rate / gcd(in_rate, out_rate)`) designed exactly; the filters grow
/// with it (767999 Hz → 16 kHz would need 1.5 M-sample FFTs and over 100 MB).
const MAX_UNIT: usize = 8192;

/// The input rate the resampler is designed for: `in_rate` itself, or for an awkward rate whose
/// unit would exceed [`MAX_UNIT`], the nearest multiple of the smallest divisor `d` of
/// `out_rate` that brings the unit under it (a speed error below 1/(2 · MAX_UNIT), 0.006 %).
fn design_rate(in_rate: u32, out_rate: u32) -> u32 {
    let (i, o) = (in_rate as usize, out_rate as usize);
    if i / gcd(i, o) <= MAX_UNIT {
        return in_rate;
    }
    (1..=o)
        .filter(|d| o % d == 0)
        .map(|d| ((i + d / 2) / d * d, d))
        .find(|&(r, d)| r > 0 && r / d <= MAX_UNIT)
        .map_or(in_rate, |(r, _)| r as u32)
}

/// Input chunk (frames) made of an even number of the resampler's FFT units, so that the FFT
/// output size is even and its delay (`fft_size_out / 2`) is a whole number of samples: with an
/// odd size the output would lag by half a sample.
fn chunk_size(in_rate: u32, out_rate: u32) -> usize {
    let unit = in_rate as usize / gcd(in_rate as usize, out_rate as usize);
    let units = (TARGET_CHUNK / unit).max(2);
    (units + units % 2) * unit
}

pub struct Resampler {
    in_rate: u32,
    /// The rate the filters are designed for ([`design_rate`]).
    design: u32,
    out_rate: u32,
    inner: Option<FftFixedIn<f32>>,
    chunk: usize,
    pending: Vec<f32>,
    in_buf: Vec<Vec<f32>>,
    out_buf: Vec<Vec<f32>>,
    /// Output samples still to drop (the filter delay).
    to_skip: usize,
    total_in: u64,
    total_out: u64,
}

impl std::fmt::Debug for Resampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resampler")
            .field("in_rate", &self.in_rate)
            .field("out_rate", &self.out_rate)
            .finish()
    }
}

impl Resampler {
    pub fn new(in_rate: u32, out_rate: u32) -> Result<Resampler> {
        // The filters are sized from the rates: the one rate rule first.
        super::pcm::check_rate(in_rate)?;
        super::pcm::check_rate(out_rate)?;
        let design = design_rate(in_rate, out_rate);
        if design != in_rate {
            log::debug!("resampling {in_rate} Hz as {design} Hz (a {design} Hz design is exact)");
        }
        let chunk = chunk_size(design, out_rate);
        let inner = if in_rate == out_rate {
            None
        } else {
            Some(
                FftFixedIn::<f32>::new(design as usize, out_rate as usize, chunk, 1, 1)
                    .map_err(|e| anyhow!("cannot resample {in_rate} Hz -> {out_rate} Hz: {e}"))?,
            )
        };
        let (in_buf, out_buf, to_skip) = match &inner {
            Some(r) => (
                vec![vec![0.0; r.input_frames_max()]],
                r.output_buffer_allocate(true),
                r.output_delay(),
            ),
            None => (vec![Vec::new()], vec![Vec::new()], 0),
        };
        Ok(Resampler {
            in_rate,
            design,
            out_rate,
            inner,
            chunk,
            pending: Vec::with_capacity(chunk),
            in_buf,
            out_buf,
            to_skip,
            total_in: 0,
            total_out: 0,
        })
    }

    pub fn in_rate(&self) -> u32 {
        self.in_rate
    }

    pub fn out_rate(&self) -> u32 {
        self.out_rate
    }

    /// Output samples expected for the input seen so far.
    fn expected_out(&self) -> u64 {
        (self.total_in as u128 * self.out_rate as u128 + self.design as u128 / 2)
            .checked_div(self.design as u128)
            .unwrap_or(0) as u64
    }

    /// Feeds input; `sink` receives output as it becomes available.
    pub fn push(&mut self, input: &[f32], mut sink: impl FnMut(&[f32])) -> Result<()> {
        self.total_in += input.len() as u64;
        if self.inner.is_none() {
            self.total_out += input.len() as u64;
            if !input.is_empty() {
                sink(input);
            }
            return Ok(());
        }
        let mut rest = input;
        while !rest.is_empty() {
            let need = self.chunk - self.pending.len();
            let take = need.min(rest.len());
            self.pending.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.pending.len() == self.chunk {
                self.run_chunk(self.chunk, u64::MAX, &mut sink)?;
            }
        }
        Ok(())
    }

    /// Flushes buffered input and the filter delay; total output then equals
    /// `round(n_in * out_rate / in_rate)`. The resampler is ready for a new stream afterwards.
    pub fn finish(&mut self, mut sink: impl FnMut(&[f32])) -> Result<()> {
        if self.inner.is_some() {
            let expected = self.expected_out();
            // Zero-padded chunks push the remaining real samples and the delay out.
            let mut guard = 0;
            while self.total_out < expected {
                self.pending.resize(self.chunk, 0.0);
                self.run_chunk(self.chunk, expected, &mut sink)?;
                guard += 1;
                if guard > 64 {
                    return Err(anyhow!("resampler did not drain"));
                }
            }
        }
        self.reset();
        Ok(())
    }

    /// Forgets all state (start of a new stream).
    pub fn reset(&mut self) {
        self.pending.clear();
        self.total_in = 0;
        self.total_out = 0;
        if let Some(r) = &mut self.inner {
            r.reset();
            self.to_skip = r.output_delay();
        }
    }

    fn run_chunk(&mut self, n: usize, limit: u64, sink: &mut impl FnMut(&[f32])) -> Result<()> {
        let r = self.inner.as_mut().expect("resampler present");
        self.in_buf[0].clear();
        self.in_buf[0].extend_from_slice(&self.pending[..n]);
        self.pending.drain(..n);
        let (_, out_len) = r
            .process_into_buffer(&self.in_buf, &mut self.out_buf, None)
            .map_err(|e| anyhow!("resampling failed: {e}"))?;
        let mut out = &self.out_buf[0][..out_len];
        let skip = self.to_skip.min(out.len());
        self.to_skip -= skip;
        out = &out[skip..];
        let room = limit.saturating_sub(self.total_out);
        let out = &out[..(out.len() as u64).min(room) as usize];
        if !out.is_empty() {
            self.total_out += out.len() as u64;
            sink(out);
        }
        Ok(())
    }
}

/// Resamples a whole buffer (convenience for tests and short clips).
pub fn resample_all(input: &[f32], in_rate: u32, out_rate: u32) -> Result<Vec<f32>> {
    let mut r = Resampler::new(in_rate, out_rate)?;
    let mut out = Vec::new();
    r.push(input, |s| out.extend_from_slice(s))?;
    r.finish(|s| out.extend_from_slice(s))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(freq: f64, rate: u32, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin() as f32)
            .collect()
    }

    #[test]
    fn length_and_alignment() {
        for (a, b) in [
            (44100u32, 16000u32),
            (48000, 16000),
            (8000, 16000),
            (22050, 32000),
        ] {
            let n = 44100 + 123;
            let x = sine(440.0, a, n);
            let y = resample_all(&x, a, b).unwrap();
            let expected = ((n as u64 * b as u64 + a as u64 / 2) / a as u64) as usize;
            assert_eq!(y.len(), expected, "{a}->{b}");
            // Compare to the ideal sine away from the edges: alignment and amplitude.
            let ideal = sine(440.0, b, y.len());
            let lo = y.len() / 4;
            let hi = 3 * y.len() / 4;
            let err = (lo..hi)
                .map(|i| (y[i] - ideal[i]).abs())
                .fold(0f32, f32::max);
            assert!(err < 0.02, "{a}->{b}: max error {err}");
        }
    }

    #[test]
    fn chunking_does_not_matter() {
        let x = sine(1000.0, 48000, 30000);
        let whole = resample_all(&x, 48000, 16000).unwrap();
        let mut r = Resampler::new(48000, 16000).unwrap();
        let mut out = Vec::new();
        for piece in x.chunks(333) {
            r.push(piece, |s| out.extend_from_slice(s)).unwrap();
        }
        r.finish(|s| out.extend_from_slice(s)).unwrap();
        assert_eq!(out, whole);
        // finish() resets: a second stream gives the same result.
        let mut again = Vec::new();
        r.push(&x, |s| again.extend_from_slice(s)).unwrap();
        r.finish(|s| again.extend_from_slice(s)).unwrap();
        assert_eq!(again, whole);
    }

    #[test]
    fn awkward_rates_get_a_small_design() {
        assert_eq!(design_rate(44_100, 16_000), 44_100);
        assert_eq!(design_rate(48_000, 16_000), 48_000);
        for r in [767_999u32, 44_101, 100_003] {
            let d = design_rate(r, 16_000);
            let unit = d as usize / gcd(d as usize, 16_000);
            assert!(unit <= MAX_UNIT, "{r}: {d}");
            assert!((f64::from(d) / f64::from(r) - 1.0).abs() < 1e-4, "{r}: {d}");
            let y = resample_all(&sine(440.0, r, 50_000), r, 16_000).unwrap();
            let want = (50_000u64 * 16_000 + u64::from(d) / 2) / u64::from(d);
            assert_eq!(y.len() as u64, want, "{r}");
        }
    }

    #[test]
    fn passthrough_at_equal_rates() {
        let x = sine(100.0, 16000, 1000);
        assert_eq!(resample_all(&x, 16000, 16000).unwrap(), x);
    }
}
