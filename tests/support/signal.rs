//! Test signals, built on `earshot::audio::synth` (the signals of `earshot bench` too).

pub use earshot::audio::synth::tone;

/// A deterministic test signal: two tones plus a little noise, mono.
pub fn signal(rate: u32, seconds: f64) -> Vec<f32> {
    earshot::audio::synth::two_tones(rate, seconds)
}

/// 0–4 s low tone (440 Hz), 4–8 s silence, 8–12 s high tone (1500 Hz).
pub fn three_segments(rate: u32) -> Vec<f32> {
    let mut x = tone(rate, 4.0, 440.0, 0.5);
    x.extend(tone(rate, 4.0, 0.0, 0.0));
    x.extend(tone(rate, 4.0, 1500.0, 0.5));
    x
}
