//! Helpers shared by the integration tests: WAV writing, golden-file locations.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn golden() -> PathBuf {
    repo().join("tests/golden")
}

/// The tiny bundle exported by train/, or `None` (with a SKIP message) when not committed yet.
pub fn tiny_bundle() -> Option<PathBuf> {
    let p = golden().join("tiny-bundle");
    if p.join("manifest.json").is_file() {
        Some(p)
    } else {
        eprintln!(
            "SKIP: {} is not committed yet (written by `python -m earshot_train.golden`)",
            p.display()
        );
        None
    }
}

/// Sample encoding of a generated WAV file.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum WavKind {
    Pcm16,
    Float32,
}

/// WAV header for `n_frames` frames.
pub fn wav_header(rate: u32, channels: u16, kind: WavKind, n_frames: u64) -> Vec<u8> {
    let (fmt, bits) = match kind {
        WavKind::Pcm16 => (1u16, 16u16),
        WavKind::Float32 => (3u16, 32u16),
    };
    let block = channels * bits / 8;
    let data_len = (n_frames * u64::from(block)) as u32;
    let mut h = Vec::with_capacity(44);
    h.extend_from_slice(b"RIFF");
    h.extend_from_slice(&(36 + data_len).to_le_bytes());
    h.extend_from_slice(b"WAVEfmt ");
    h.extend_from_slice(&16u32.to_le_bytes());
    h.extend_from_slice(&fmt.to_le_bytes());
    h.extend_from_slice(&channels.to_le_bytes());
    h.extend_from_slice(&rate.to_le_bytes());
    h.extend_from_slice(&(rate * u32::from(block)).to_le_bytes());
    h.extend_from_slice(&block.to_le_bytes());
    h.extend_from_slice(&bits.to_le_bytes());
    h.extend_from_slice(b"data");
    h.extend_from_slice(&data_len.to_le_bytes());
    h
}

/// Writes interleaved samples as a WAV file.
pub fn write_wav(path: &Path, rate: u32, channels: u16, kind: WavKind, samples: &[f32]) {
    let frames = samples.len() as u64 / u64::from(channels);
    let mut bytes = wav_header(rate, channels, kind, frames);
    for &s in samples {
        match kind {
            WavKind::Pcm16 => {
                let v = (s.clamp(-1.0, 1.0) * 32767.0).round() as i16;
                bytes.extend_from_slice(&v.to_le_bytes());
            }
            WavKind::Float32 => bytes.extend_from_slice(&s.to_le_bytes()),
        }
    }
    let mut f = std::fs::File::create(path).unwrap();
    f.write_all(&bytes).unwrap();
}

/// A deterministic test signal: two tones plus a little noise, mono.
pub fn signal(rate: u32, seconds: f64) -> Vec<f32> {
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
