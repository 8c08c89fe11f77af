//! Log-mel front end driven by the manifest's [`FrontendSpec`] (docs/bundle-format.md, "Front end").
//!
//! All arithmetic is done in f64 (FFT included) and the result is rounded to f32 at the end, so
//! the features are as close to the exact values as possible; the PyTorch reference computes in
//! f32, and the golden tests allow 1e-3.

pub mod mel;
pub mod spec;

pub use mel::mel_filterbank;
use mel::{mel_filters, Filter};

use anyhow::{ensure, Result};
use realfft::{num_complex::Complex, RealFftPlanner, RealToComplex};
pub use spec::FrontendSpec;
use spec::{LogKind, PadMode, WindowKind};
use std::sync::Arc;

/// Log-mel features, layout `[n_mels][frames]` flattened row-major (mel-major).
#[derive(Debug, Clone, PartialEq)]
pub struct Features {
    pub n_mels: usize,
    pub frames: usize,
    pub data: Vec<f32>,
}

impl Features {
    /// Value of mel band `m` at frame `t`.
    pub fn at(&self, m: usize, t: usize) -> f32 {
        self.data[m * self.frames + t]
    }
}

/// A reusable log-mel extractor (FFT plan, window and filterbank computed once).
pub struct LogMel {
    spec: FrontendSpec,
    window: Vec<f64>,
    filters: Vec<Filter>,
    fft: Arc<dyn RealToComplex<f64>>,
    frame_buf: Vec<f64>,
    spec_buf: Vec<Complex<f64>>,
    scratch: Vec<Complex<f64>>,
    power_buf: Vec<f64>,
}

impl std::fmt::Debug for LogMel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogMel").field("spec", &self.spec).finish()
    }
}

impl LogMel {
    pub fn new(spec: &FrontendSpec) -> Result<LogMel> {
        ensure!(
            spec.win_length <= spec.n_fft && spec.n_fft >= 2 && spec.hop_length > 0,
            "invalid front-end spec"
        );
        let window = padded_window(spec);
        let filters = mel_filters(spec);
        let mut planner = RealFftPlanner::<f64>::new();
        let fft = planner.plan_fft_forward(spec.n_fft);
        let frame_buf = fft.make_input_vec();
        let spec_buf = fft.make_output_vec();
        let scratch = fft.make_scratch_vec();
        Ok(LogMel {
            spec: spec.clone(),
            window,
            filters,
            fft,
            frame_buf,
            spec_buf,
            scratch,
            power_buf: vec![0.0; spec.n_fft / 2 + 1],
        })
    }

    pub fn spec(&self) -> &FrontendSpec {
        &self.spec
    }

    /// Computes the features of `samples` (mono, model rate).
    pub fn compute(&mut self, samples: &[f32]) -> Result<Features> {
        let spec = self.spec.clone();
        // 1. Pre-emphasis (conv1d form: one sample shorter).
        let x: Vec<f64> = if spec.preemphasis > 0.0 {
            let a = spec.preemphasis;
            samples
                .windows(2)
                .map(|w| f64::from(w[1]) - a * f64::from(w[0]))
                .collect()
        } else {
            samples.iter().map(|&s| f64::from(s)).collect()
        };
        let n_fft = spec.n_fft;
        let pad = if spec.center { n_fft / 2 } else { 0 };
        if spec.center && spec.pad_mode == PadMode::Reflect {
            ensure!(
                x.len() > pad,
                "input too short for reflect padding: {} samples, need more than {}",
                x.len(),
                pad
            );
        }
        let frames = spec.frames_for_len(samples.len());
        ensure!(frames > 0, "input too short: {} samples", samples.len());
        let n_mels = spec.n_mels;
        let mut mel = vec![0f64; n_mels * frames];
        let n = x.len() as isize;
        for t in 0..frames {
            let start = (t * spec.hop_length) as isize - pad as isize;
            for (k, slot) in self.frame_buf.iter_mut().enumerate() {
                let i = start + k as isize;
                let v = if (0..n).contains(&i) {
                    x[i as usize]
                } else {
                    match spec.pad_mode {
                        PadMode::Constant => 0.0,
                        PadMode::Reflect => x[reflect_index(i, n) as usize],
                    }
                };
                *slot = v * self.window[k];
            }
            self.fft
                .process_with_scratch(&mut self.frame_buf, &mut self.spec_buf, &mut self.scratch)
                .map_err(|e| anyhow::anyhow!("FFT failed: {e}"))?;
            for (p, c) in self.power_buf.iter_mut().zip(&self.spec_buf) {
                let sq = c.re * c.re + c.im * c.im;
                *p = if spec.power == 2.0 {
                    sq
                } else if spec.power == 1.0 {
                    sq.sqrt()
                } else {
                    sq.powf(spec.power / 2.0)
                };
            }
            for (m, f) in self.filters.iter().enumerate() {
                let bins = &self.power_buf[f.first_bin..f.first_bin + f.weights.len()];
                mel[m * frames + t] = bins.iter().zip(&f.weights).map(|(p, w)| p * w).sum();
            }
        }
        // 4. Log.
        match spec.log {
            LogKind::Ln => {
                for v in mel.iter_mut() {
                    *v = (*v + spec.log_offset).ln();
                }
            }
            LogKind::Db => {
                let ref_db = 10.0 * spec.amin.max(spec.db_ref).log10();
                let mut max = f64::NEG_INFINITY;
                for v in mel.iter_mut() {
                    *v = 10.0 * v.max(spec.amin).log10() - ref_db;
                    max = max.max(*v);
                }
                if let Some(top_db) = spec.top_db {
                    let floor = max - top_db;
                    for v in mel.iter_mut() {
                        *v = v.max(floor);
                    }
                }
            }
        }
        // 5. Normalisation.
        let data = mel
            .iter()
            .map(|&v| ((v + spec.norm_add) / spec.norm_div) as f32)
            .collect();
        Ok(Features {
            n_mels,
            frames,
            data,
        })
    }
}

/// numpy/torch "reflect" padding index (edge sample not repeated), for any distance.
fn reflect_index(i: isize, n: isize) -> isize {
    if n == 1 {
        return 0;
    }
    let period = 2 * (n - 1);
    let mut j = i.rem_euclid(period);
    if j >= n {
        j = period - j;
    }
    j
}

/// Analysis window of `win_length`, zero-padded centrally to `n_fft`.
fn padded_window(spec: &FrontendSpec) -> Vec<f64> {
    let n = spec.win_length;
    let denom = match spec.window {
        WindowKind::HannPeriodic => n as f64,
        WindowKind::HannSymmetric => (n.max(2) - 1) as f64,
    };
    let mut w = vec![0.0; spec.n_fft];
    let left = (spec.n_fft - n) / 2;
    for i in 0..n {
        w[left + i] = if n == 1 {
            1.0
        } else {
            0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / denom).cos()
        };
    }
    w
}

#[cfg(test)]
mod tests {
    use super::mel::{hz_to_mel, mel_to_hz};
    use super::spec::MelScale;
    use super::*;
    use crate::model::manifest::Manifest;

    fn student_spec() -> FrontendSpec {
        let j = crate::model::manifest::tests::example_json();
        Manifest::from_json(&j.to_string()).unwrap().frontend
    }

    #[test]
    fn reflect_matches_numpy() {
        // np.pad([0,1,2,3], 3, mode="reflect") -> [3,2,1,0,1,2,3,2,1,0]
        let idx: Vec<isize> = (-3..7).map(|i| reflect_index(i, 4)).collect();
        assert_eq!(idx, vec![3, 2, 1, 0, 1, 2, 3, 2, 1, 0]);
    }

    #[test]
    fn hann_windows() {
        let mut s = student_spec();
        s.n_fft = 8;
        s.win_length = 4;
        let w = padded_window(&s);
        assert_eq!(w.len(), 8);
        assert_eq!(&w[..2], &[0.0, 0.0]);
        assert!((w[2] - 0.0).abs() < 1e-12 && (w[4] - 1.0).abs() < 1e-12);
        s.window = WindowKind::HannSymmetric;
        let w = padded_window(&s);
        assert!((w[2]).abs() < 1e-12 && (w[5]).abs() < 1e-12);
    }

    #[test]
    fn mel_scales_round_trip() {
        for scale in [MelScale::Htk, MelScale::Slaney, MelScale::Kaldi] {
            for f in [0.0, 300.0, 1000.0, 4321.0, 16000.0] {
                let back = mel_to_hz(hz_to_mel(f, scale), scale);
                assert!((back - f).abs() < 1e-6, "{scale:?} {f} {back}");
            }
        }
    }

    #[test]
    fn filterbank_shape_and_peaks() {
        let s = student_spec();
        let fb = mel_filterbank(&s);
        assert_eq!(fb.len(), 64);
        assert!(fb.iter().all(|r| r.len() == 257));
        assert!(fb.iter().flatten().all(|&w| (0.0..=1.0).contains(&w)));
        let mut k = s.clone();
        k.mel_scale = MelScale::Kaldi;
        let fb = mel_filterbank(&k);
        assert!(fb.iter().all(|r| r[256] == 0.0));
    }

    #[test]
    fn sine_energy_lands_in_the_right_band() {
        let mut s = student_spec();
        s.log = LogKind::Ln;
        let sr = 16000.0;
        let samples: Vec<f32> = (0..16000)
            .map(|i| (2.0 * std::f64::consts::PI * 1000.0 * i as f64 / sr).sin() as f32 * 0.5)
            .collect();
        let mut lm = LogMel::new(&s).unwrap();
        let f = lm.compute(&samples).unwrap();
        assert_eq!((f.n_mels, f.frames), (64, 101));
        let t = 50;
        let best = (0..64)
            .max_by(|&a, &b| f.at(a, t).partial_cmp(&f.at(b, t)).unwrap())
            .unwrap();
        // Centre frequency of the best band should be close to 1 kHz.
        let m_max = hz_to_mel(8000.0, MelScale::Htk);
        let centre = mel_to_hz(m_max * (best + 1) as f64 / 65.0, MelScale::Htk);
        assert!(
            (centre - 1000.0).abs() < 120.0,
            "band {best} centre {centre}"
        );
    }

    #[test]
    fn db_top_db_clamps() {
        let mut s = student_spec();
        s.top_db = Some(20.0);
        let mut samples = vec![0f32; 16000];
        samples[8000] = 1.0;
        let mut lm = LogMel::new(&s).unwrap();
        let f = lm.compute(&samples).unwrap();
        let max = f.data.iter().cloned().fold(f32::MIN, f32::max);
        let min = f.data.iter().cloned().fold(f32::MAX, f32::min);
        assert!((max - min - 20.0).abs() < 1e-3, "{max} {min}");
    }
}
