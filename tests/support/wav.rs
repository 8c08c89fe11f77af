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

/// A WAV file of any header (for bad-input and format tests): any format tag, bit depth,
/// channel count and rate, WAVE_FORMAT_EXTENSIBLE, and lying size fields. The audio is a
/// 440 Hz tone at 16 kHz, the same in every channel.
#[derive(Clone, Debug)]
pub struct WavSpec {
    /// 1 = integer PCM, 3 = IEEE float, 6 = A-law, 7 = µ-law.
    pub tag: u16,
    pub channels: u16,
    pub rate: u32,
    pub bits: u16,
    pub frames: usize,
    pub extensible: bool,
    /// Overrides the RIFF size field.
    pub riff_size: Option<u32>,
    /// Overrides the data chunk size field.
    pub data_size: Option<u32>,
    /// Overrides one sample (frame index, value) of every channel (float formats).
    pub poke: Option<(usize, f64)>,
}

impl WavSpec {
    /// 16-bit PCM; `seconds` of audio counted at `rate` (at most 48 kHz worth of frames per
    /// second, so a lying rate does not make a huge file).
    pub fn pcm16(rate: u32, channels: u16, seconds: f64) -> WavSpec {
        WavSpec {
            tag: 1,
            channels,
            rate,
            bits: 16,
            frames: (seconds * f64::from(rate.clamp(1, 48_000))) as usize,
            extensible: false,
            riff_size: None,
            data_size: None,
            poke: None,
        }
    }

    /// 32-bit float.
    pub fn float32(rate: u32, channels: u16, seconds: f64) -> WavSpec {
        WavSpec {
            tag: 3,
            bits: 32,
            ..WavSpec::pcm16(rate, channels, seconds)
        }
    }

    /// Bytes per frame.
    pub fn block(&self) -> usize {
        usize::from(self.bits).div_ceil(8) * usize::from(self.channels)
    }

    /// The sample value of frame `i` (before encoding).
    pub fn value(&self, i: usize) -> f64 {
        match self.poke {
            Some((at, v)) if at == i => v,
            _ => (2.0 * std::f64::consts::PI * 440.0 * i as f64 / 16000.0).sin() * 0.3,
        }
    }

    pub fn bytes(&self) -> Vec<u8> {
        let container = usize::from(self.bits).div_ceil(8);
        let mut data = Vec::with_capacity(self.block() * self.frames);
        for i in 0..self.frames {
            let v = self.value(i);
            for _ in 0..self.channels {
                match (self.tag, self.bits) {
                    (3, 32) => data.extend_from_slice(&(v as f32).to_le_bytes()),
                    (3, 64) => data.extend_from_slice(&v.to_le_bytes()),
                    (1, 8) => data.push(((v * 127.0) as i32 + 128) as u8),
                    (1, b) => {
                        let x = (v * f64::from(1u32 << (b - 1)) * 0.99) as i64;
                        data.extend_from_slice(&x.to_le_bytes()[..container]);
                    }
                    _ => data.push(((v + 1.0) * 100.0) as u8),
                }
            }
        }
        let block = self.block();
        let mut fmt = Vec::new();
        let tag = if self.extensible { 0xFFFE } else { self.tag };
        fmt.extend_from_slice(&tag.to_le_bytes());
        fmt.extend_from_slice(&self.channels.to_le_bytes());
        fmt.extend_from_slice(&self.rate.to_le_bytes());
        fmt.extend_from_slice(&(self.rate.wrapping_mul(block as u32)).to_le_bytes());
        fmt.extend_from_slice(&(block as u16).to_le_bytes());
        fmt.extend_from_slice(&self.bits.to_le_bytes());
        if !self.extensible && matches!(self.tag, 6 | 7) {
            fmt.extend_from_slice(&0u16.to_le_bytes()); // G.711: an 18-byte fmt chunk
        }
        if self.extensible {
            fmt.extend_from_slice(&22u16.to_le_bytes());
            fmt.extend_from_slice(&self.bits.to_le_bytes());
            fmt.extend_from_slice(&0u32.to_le_bytes()); // no speaker positions
            fmt.extend_from_slice(&self.tag.to_le_bytes());
            fmt.extend_from_slice(&[0, 0, 0, 0, 0x10, 0, 0x80, 0, 0, 0xAA, 0, 0x38, 0x9B, 0x71]);
        }
        let mut b = b"RIFF".to_vec();
        let riff = 4 + 8 + fmt.len() + 8 + data.len();
        b.extend_from_slice(&self.riff_size.unwrap_or(riff as u32).to_le_bytes());
        b.extend_from_slice(b"WAVEfmt ");
        b.extend_from_slice(&(fmt.len() as u32).to_le_bytes());
        b.extend_from_slice(&fmt);
        b.extend_from_slice(b"data");
        b.extend_from_slice(&self.data_size.unwrap_or(data.len() as u32).to_le_bytes());
        b.extend_from_slice(&data);
        b
    }

    /// Writes the file as `dir/name`.
    pub fn write(&self, dir: &Path, name: &str) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, self.bytes()).unwrap();
        p
    }
}
