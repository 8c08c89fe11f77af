//! WAV files for the tests: a writer (16-bit PCM or 32-bit float, any rate and channel count),
//! a raw 16-bit reader for reference files, and the runtime's own decoder read to the end.

use earshot::audio::decode::{AudioDecoder, StreamInfo};
use std::io::Write;
use std::path::Path;

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

/// Decodes a whole file with the runtime's decoder: stream info and mono samples.
pub fn decode_all(path: &Path) -> (StreamInfo, Vec<f32>) {
    let mut d = AudioDecoder::open(path).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
    let info = d.info().clone();
    let mut out = Vec::new();
    while let Some(c) = d.next_chunk().unwrap() {
        out.extend_from_slice(c);
    }
    (info, out)
}

/// A 16-bit PCM mono WAV's samples (/32768, as libsndfile and symphonia scale them).
pub fn read_pcm16_mono(path: &Path) -> Vec<f32> {
    let b = std::fs::read(path).unwrap();
    assert_eq!(&b[0..4], b"RIFF");
    let mut i = 12;
    while i + 8 <= b.len() {
        let id = &b[i..i + 4];
        let len = u32::from_le_bytes(b[i + 4..i + 8].try_into().unwrap()) as usize;
        if id == b"fmt " {
            let fmt = u16::from_le_bytes([b[i + 8], b[i + 9]]);
            let channels = u16::from_le_bytes([b[i + 10], b[i + 11]]);
            let bits = u16::from_le_bytes([b[i + 22], b[i + 23]]);
            assert_eq!(
                (fmt, channels, bits),
                (1, 1, 16),
                "expected 16-bit PCM mono"
            );
        }
        if id == b"data" {
            return b[i + 8..i + 8 + len]
                .chunks_exact(2)
                .map(|c| f32::from(i16::from_le_bytes([c[0], c[1]])) / 32768.0)
                .collect();
        }
        i += 8 + len + (len & 1);
    }
    panic!("{}: no data chunk", path.display());
}
