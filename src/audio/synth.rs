//! Deterministic test and benchmark signals, so that `earshot bench`, the criterion benches and
//! the integration tests all measure and check the same audio (no files, no randomness).

/// Sample rate of the synthetic input (a typical USB microphone), so that the resampler is
/// part of every measured window as it is when listening.
pub const SYNTH_RATE: u32 = 48_000;

/// Deterministic test signal at `rate`: two tones, a slow chirp and seeded noise, peak < 0.8.
/// `offset` (samples) makes consecutive windows differ.
pub fn synthetic(rate: u32, len: usize, offset: u64) -> Vec<f32> {
    let r = f64::from(rate);
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15 ^ offset;
    (0..len)
        .map(|i| {
            let t = (offset + i as u64) as f64 / r;
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let noise = ((state >> 40) as f64 / (1u64 << 24) as f64) - 0.5;
            let chirp = (2.0 * std::f64::consts::PI * (200.0 + 40.0 * (t % 10.0)) * t).sin();
            (0.25 * (2.0 * std::f64::consts::PI * 440.0 * t).sin()
                + 0.15 * (2.0 * std::f64::consts::PI * 1250.0 * t).sin()
                + 0.2 * chirp
                + 0.2 * noise) as f32
        })
        .collect()
}

/// `seconds` of a sine at `freq` Hz and amplitude `amp` (amplitude 0 = digital silence).
pub fn tone(rate: u32, seconds: f64, freq: f64, amp: f32) -> Vec<f32> {
    let n = (seconds * f64::from(rate)).round() as usize;
    (0..n)
        .map(|i| {
            amp * (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin() as f32
        })
        .collect()
}

/// Two tones (440 Hz and 1230 Hz) plus a little seeded noise, mono.
pub fn two_tones(rate: u32, seconds: f64) -> Vec<f32> {
    let n = (seconds * f64::from(rate)) as usize;
    let mut seed = 12345u32;
    (0..n)
        .map(|i| {
            let t = i as f64 / f64::from(rate);
            seed = seed.wrapping_mul(1664525).wrapping_add(1013904223);
            let noise = (seed >> 8) as f64 / f64::from(1u32 << 24) - 0.5;
            (0.3 * (2.0 * std::f64::consts::PI * 440.0 * t).sin()
                + 0.2 * (2.0 * std::f64::consts::PI * 1230.0 * t).sin()
                + 0.05 * noise) as f32
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_is_deterministic_and_bounded() {
        let a = synthetic(48_000, 4800, 0);
        assert_eq!(a, synthetic(48_000, 4800, 0));
        assert_ne!(a, synthetic(48_000, 4800, 4800));
        assert!(a.iter().all(|x| x.abs() < 0.9));
    }
}
