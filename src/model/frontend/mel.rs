//! Mel scales (HTK, Slaney, Kaldi) and the triangular mel filterbank of the front end, exactly
//! as train/'s reference computes them (optional Slaney area normalisation).

use super::spec::{FrontendSpec, MelNorm, MelScale};

/// One triangular filter, stored as its non-zero range of FFT bins.
#[derive(Debug, Clone)]
pub(super) struct Filter {
    pub(super) first_bin: usize,
    pub(super) weights: Vec<f64>,
}

pub(super) fn hz_to_mel(f: f64, scale: MelScale) -> f64 {
    match scale {
        MelScale::Htk => 2595.0 * (1.0 + f / 700.0).log10(),
        MelScale::Kaldi => 1127.0 * (1.0 + f / 700.0).ln(),
        MelScale::Slaney => {
            let f_sp = 200.0 / 3.0;
            let min_log_hz = 1000.0;
            let min_log_mel = min_log_hz / f_sp;
            let logstep = 6.4f64.ln() / 27.0;
            if f >= min_log_hz {
                min_log_mel + (f / min_log_hz).ln() / logstep
            } else {
                f / f_sp
            }
        }
    }
}

pub(super) fn mel_to_hz(m: f64, scale: MelScale) -> f64 {
    match scale {
        MelScale::Htk => 700.0 * (10f64.powf(m / 2595.0) - 1.0),
        MelScale::Kaldi => 700.0 * ((m / 1127.0).exp() - 1.0),
        MelScale::Slaney => {
            let f_sp = 200.0 / 3.0;
            let min_log_hz = 1000.0;
            let min_log_mel = min_log_hz / f_sp;
            let logstep = 6.4f64.ln() / 27.0;
            if m >= min_log_mel {
                min_log_hz * (logstep * (m - min_log_mel)).exp()
            } else {
                f_sp * m
            }
        }
    }
}

/// Dense filterbank `[n_mels][n_fft/2+1]` per the spec (public for tests and tools).
pub fn mel_filterbank(spec: &FrontendSpec) -> Vec<Vec<f64>> {
    let n_bins = spec.n_fft / 2 + 1;
    let sr = f64::from(spec.sample_rate);
    let n_mels = spec.n_mels;
    let f_min = spec.f_min;
    let f_max = spec.f_max_hz();
    let mut fb = vec![vec![0.0; n_bins]; n_mels];
    match spec.mel_scale {
        MelScale::Htk | MelScale::Slaney => {
            let scale = spec.mel_scale;
            let m_min = hz_to_mel(f_min, scale);
            let m_max = hz_to_mel(f_max, scale);
            let f_pts: Vec<f64> = (0..n_mels + 2)
                .map(|i| {
                    let m = m_min + (m_max - m_min) * i as f64 / (n_mels + 1) as f64;
                    mel_to_hz(m, scale)
                })
                .collect();
            for (m, row) in fb.iter_mut().enumerate() {
                let (lo, ce, hi) = (f_pts[m], f_pts[m + 1], f_pts[m + 2]);
                let enorm = match spec.mel_norm {
                    MelNorm::None => 1.0,
                    MelNorm::Slaney => 2.0 / (hi - lo),
                };
                for (k, w) in row.iter_mut().enumerate() {
                    let f = k as f64 * sr / spec.n_fft as f64;
                    let down = (f - lo) / (ce - lo);
                    let up = (hi - f) / (hi - ce);
                    *w = down.min(up).max(0.0) * enorm;
                }
            }
        }
        MelScale::Kaldi => {
            let scale = MelScale::Kaldi;
            let m_lo = hz_to_mel(f_min, scale);
            let m_hi = hz_to_mel(f_max, scale);
            let delta = (m_hi - m_lo) / (n_mels + 1) as f64;
            let bin_width = sr / spec.n_fft as f64;
            for (m, row) in fb.iter_mut().enumerate() {
                let left = m_lo + m as f64 * delta;
                let center = left + delta;
                let right = center + delta;
                // The first n_fft/2 bins; the Nyquist bin keeps weight 0.
                for (k, w) in row.iter_mut().take(n_bins - 1).enumerate() {
                    let mel = hz_to_mel(bin_width * k as f64, scale);
                    let up = (mel - left) / (center - left);
                    let down = (right - mel) / (right - center);
                    *w = up.min(down).max(0.0);
                }
                if spec.mel_norm == MelNorm::Slaney {
                    let enorm = 2.0 / (mel_to_hz(right, scale) - mel_to_hz(left, scale));
                    row.iter_mut().for_each(|w| *w *= enorm);
                }
            }
        }
    }
    fb
}

pub(super) fn mel_filters(spec: &FrontendSpec) -> Vec<Filter> {
    mel_filterbank(spec)
        .into_iter()
        .map(|row| {
            let first = row.iter().position(|&w| w != 0.0);
            match first {
                None => Filter {
                    first_bin: 0,
                    weights: Vec::new(),
                },
                Some(first) => {
                    let last = row.iter().rposition(|&w| w != 0.0).unwrap_or(first);
                    Filter {
                        first_bin: first,
                        weights: row[first..=last].to_vec(),
                    }
                }
            }
        })
        .collect()
}
