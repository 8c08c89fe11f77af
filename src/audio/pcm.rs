//! Sample formats and the rules every source shares: the accepted sample rates
//! ([`check_rate`]), the raw PCM formats of `listen --stdin` ([`PcmFormat`], [`convert`]), WAV
//! sample encodings ([`SampleFormat`], [`decode_samples`]) and the WAV header
//! ([`read_wav_header`], for files and stdin alike), the channel [`downmix`] shared by the
//! decoder and the DSP thread, and the one policy for non-finite samples ([`FiniteGuard`]).
//!
//! # Sample rates
//!
//! Every source's rate is checked against [`MIN_RATE`]..=[`MAX_RATE`] before anything is sized
//! from it (the resampler's filters are): a header declaring 0 Hz or 4294967291 Hz is an error
//! line, not a panic or a 34 GB allocation.
//!
//! # Non-finite samples (NaN, ±Inf)
//!
//! They only occur in damaged or wrongly produced float data. On every path (`caption`,
//! `listen --file`, `listen --stdin`, `bench --input`) each one is replaced by 0 before it
//! reaches a window, they are counted, and one warning per file or stream names the first one's
//! position. No window is dropped or refused because of them. Finite float samples beyond ±1
//! are clamped to ±1 on the same paths (a float file may hold 1e38; squared in the front end
//! that would be infinite).

use anyhow::{bail, ensure, Context, Result};
use std::io::Read;

use crate::sink::format::format_time;

/// Lowest accepted sample rate (Hz), for files and streams alike.
pub const MIN_RATE: u32 = 1000;
/// Highest accepted sample rate (Hz).
pub const MAX_RATE: u32 = 768_000;

/// The sample-rate rule of every source (see the module docs).
pub fn check_rate(rate: u32) -> Result<()> {
    ensure!(
        (MIN_RATE..=MAX_RATE).contains(&rate),
        "unsupported sample rate {rate} Hz (earshot reads {MIN_RATE}–{MAX_RATE} Hz)"
    );
    Ok(())
}

/// A raw little-endian PCM sample format (interleaved).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PcmFormat {
    S16Le,
    S32Le,
    F32Le,
}

impl PcmFormat {
    pub fn bytes_per_sample(self) -> usize {
        self.sample_format().bytes_per_sample()
    }

    /// The same encoding as a WAV [`SampleFormat`].
    pub fn sample_format(self) -> SampleFormat {
        match self {
            PcmFormat::S16Le => SampleFormat::S16,
            PcmFormat::S32Le => SampleFormat::S32,
            PcmFormat::F32Le => SampleFormat::F32,
        }
    }
}

/// The sample policy (module docs) for one file or stream: replaces NaN/±Inf by 0, counts them,
/// and warns once, at the first, naming `name` and the position; clamps the rest to ±1.
#[derive(Debug)]
pub struct FiniteGuard {
    name: String,
    rate: u32,
    count: u64,
}

impl FiniteGuard {
    pub fn new(name: impl Into<String>, rate: u32) -> FiniteGuard {
        FiniteGuard {
            name: name.into(),
            rate: rate.max(1),
            count: 0,
        }
    }

    /// Cleans interleaved `samples` (`channels` per frame) whose first frame is frame `frame`
    /// of the stream.
    pub fn clean(&mut self, samples: &mut [f32], channels: usize, frame: u64) {
        for (i, v) in samples.iter_mut().enumerate() {
            if v.is_finite() {
                *v = v.clamp(-1.0, 1.0);
            } else {
                if self.count == 0 {
                    let t = (frame + (i / channels.max(1)) as u64) as f64 / f64::from(self.rate);
                    log::warn!(
                        "{}: non-finite sample ({}) at {} replaced by 0 (so is every further \
                         one; the damaged audio is silence)",
                        self.name,
                        v,
                        format_time(t)
                    );
                }
                self.count += 1;
                *v = 0.0;
            }
        }
    }

    /// Non-finite samples replaced so far.
    pub fn count(&self) -> u64 {
        self.count
    }
}

/// Averages interleaved channels into `out` (`out.len()` frames).
pub fn downmix(interleaved: &[f32], channels: usize, out: &mut [f32]) {
    if channels == 1 {
        out.copy_from_slice(&interleaved[..out.len()]);
        return;
    }
    let scale = 1.0 / channels as f32;
    for (o, frame) in out.iter_mut().zip(interleaved.chunks_exact(channels)) {
        *o = frame.iter().sum::<f32>() * scale;
    }
}

/// Converts whole little-endian samples of `bytes` into `out`; returns samples written (as they
/// are: the [`FiniteGuard`] comes next).
pub fn convert(pcm: PcmFormat, bytes: &[u8], out: &mut [f32]) -> usize {
    decode_samples(pcm.sample_format(), bytes, out)
}

/// Data chunk sizes at or above this mean "unknown length": streaming writers put 0xFFFFFFFF
/// (ffmpeg to a pipe) or 0x7FFFFFFF (arecord to a pipe) there; the audio then runs to the end.
const STREAMING_SIZE: u32 = 0x7FFF_0000;
/// Give up looking for the `data` chunk after this many header bytes.
const MAX_HEADER: u64 = 1 << 20;

/// A sample encoding of WAV data (little-endian, interleaved).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleFormat {
    /// 8-bit unsigned (offset 128).
    U8,
    S16,
    S24,
    S32,
    F32,
    F64,
    /// G.711 A-law, 8 bits.
    ALaw,
    /// G.711 µ-law, 8 bits.
    MuLaw,
}

impl SampleFormat {
    pub fn bytes_per_sample(self) -> usize {
        match self {
            SampleFormat::U8 | SampleFormat::ALaw | SampleFormat::MuLaw => 1,
            SampleFormat::S16 => 2,
            SampleFormat::S24 => 3,
            SampleFormat::S32 | SampleFormat::F32 => 4,
            SampleFormat::F64 => 8,
        }
    }

    /// Short name, as in `pcm_s16le`.
    pub fn name(self) -> &'static str {
        match self {
            SampleFormat::U8 => "pcm_u8",
            SampleFormat::S16 => "pcm_s16le",
            SampleFormat::S24 => "pcm_s24le",
            SampleFormat::S32 => "pcm_s32le",
            SampleFormat::F32 => "pcm_f32le",
            SampleFormat::F64 => "pcm_f64le",
            SampleFormat::ALaw => "pcm_alaw",
            SampleFormat::MuLaw => "pcm_mulaw",
        }
    }
}

fn alaw(v: u8) -> f32 {
    let v = v ^ 0x55;
    let exp = (v >> 4) & 7;
    let mant = i32::from(v & 0x0F);
    let mag = if exp == 0 {
        (mant << 4) + 8
    } else {
        ((mant << 4) + 0x108) << (exp - 1)
    };
    let x = if v & 0x80 != 0 { mag } else { -mag };
    x as f32 / 32768.0
}

fn mulaw(v: u8) -> f32 {
    let v = !v;
    let exp = (v >> 4) & 7;
    let mant = i32::from(v & 0x0F);
    let mag = (((mant << 3) + 0x84) << exp) - 0x84;
    let x = if v & 0x80 != 0 { -mag } else { mag };
    x as f32 / 32768.0
}

/// Decodes whole samples of `bytes` (format `fmt`) into `out`; returns samples written. Floats
/// are passed on as they are (non-finite ones included: see [`FiniteGuard`]).
pub fn decode_samples(fmt: SampleFormat, bytes: &[u8], out: &mut [f32]) -> usize {
    let n = (bytes.len() / fmt.bytes_per_sample()).min(out.len());
    let out = &mut out[..n];
    match fmt {
        SampleFormat::U8 => {
            for (o, &b) in out.iter_mut().zip(bytes) {
                *o = (f32::from(b) - 128.0) / 128.0;
            }
        }
        SampleFormat::ALaw => {
            for (o, &b) in out.iter_mut().zip(bytes) {
                *o = alaw(b);
            }
        }
        SampleFormat::MuLaw => {
            for (o, &b) in out.iter_mut().zip(bytes) {
                *o = mulaw(b);
            }
        }
        SampleFormat::S16 => {
            for (o, b) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0;
            }
        }
        SampleFormat::S24 => {
            for (o, b) in out.iter_mut().zip(bytes.chunks_exact(3)) {
                let v = i32::from_le_bytes([0, b[0], b[1], b[2]]) >> 8;
                *o = v as f32 / 8_388_608.0;
            }
        }
        SampleFormat::S32 => {
            for (o, b) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                *o = (f64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])) / 2_147_483_648.0)
                    as f32;
            }
        }
        SampleFormat::F32 => {
            for (o, b) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
        }
        SampleFormat::F64 => {
            for (o, b) in out.iter_mut().zip(bytes.chunks_exact(8)) {
                *o = f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32;
            }
        }
    }
    n
}

/// Format found in a WAV (RIFF, RF64 or BW64) header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WavInfo {
    pub format: SampleFormat,
    pub rate: u32,
    pub channels: u16,
    /// Bytes of audio announced (`None`: streaming, read to the end).
    pub data_len: Option<u64>,
}

impl WavInfo {
    /// Bytes per frame.
    pub fn block(&self) -> usize {
        self.format.bytes_per_sample() * usize::from(self.channels)
    }
}

fn u16le(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32le(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64le(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

const HEADER_EOF: &str = "truncated or corrupt file: ended inside the header";

/// The sample format of a `fmt ` chunk body.
fn parse_fmt(b: &[u8]) -> Result<(SampleFormat, u32, u16)> {
    let mut tag = u16le(b, 0);
    let channels = u16le(b, 2);
    let rate = u32le(b, 4);
    let block_align = u16le(b, 12);
    let bits = u16le(b, 14);
    if tag == 0xFFFE && b.len() >= 26 {
        tag = u16le(b, 24); // WAVE_FORMAT_EXTENSIBLE: the sub-format
    }
    let format = match (tag, bits) {
        (1, 1..=8) => SampleFormat::U8,
        (1, 9..=16) => SampleFormat::S16,
        (1, 17..=24) => SampleFormat::S24,
        (1, 25..=32) => SampleFormat::S32,
        (3, 32) => SampleFormat::F32,
        (3, 64) => SampleFormat::F64,
        (6, 8) => SampleFormat::ALaw,
        (7, 8) => SampleFormat::MuLaw,
        _ => bail!(
            "unknown or unsupported audio format: WAV format tag {tag:#06x} with {bits} bits \
             (earshot reads 8/16/24/32-bit PCM, 32/64-bit float, A-law and µ-law)"
        ),
    };
    ensure!(channels > 0, "corrupt WAV header: 0 channels");
    check_rate(rate)?;
    let block = format.bytes_per_sample() * usize::from(channels);
    ensure!(
        usize::from(block_align) == block || block > usize::from(u16::MAX),
        "corrupt WAV header: block size {block_align} bytes for {channels} channels of {bits} bits"
    );
    Ok((format, rate, channels))
}

/// Reads the chunks of a WAV header after its first 12 bytes (`RIFF....WAVE`; `rf64`: the file
/// starts with `RF64` or `BW64`, whose sizes are in a `ds64` chunk) up to the start of the audio
/// data. Every size is checked before anything is allocated from it.
pub fn read_wav_header(r: &mut dyn Read, rf64: bool) -> Result<WavInfo> {
    let mut fmt: Option<(SampleFormat, u32, u16)> = None;
    let mut ds64_data: Option<u64> = None;
    let mut seen: u64 = 12;
    loop {
        let mut h = [0u8; 8];
        r.read_exact(&mut h).context(HEADER_EOF)?;
        let size = u32le(&h, 4);
        seen += 8;
        match &h[..4] {
            b"fmt " => {
                ensure!(
                    (16..=1024).contains(&size),
                    "corrupt WAV header: fmt chunk of {size} bytes"
                );
                let mut b = vec![0u8; size as usize + (size as usize & 1)];
                r.read_exact(&mut b).context(HEADER_EOF)?;
                fmt = Some(parse_fmt(&b)?);
                seen += u64::from(size);
            }
            b"ds64" if rf64 => {
                ensure!(
                    (24..=1024).contains(&size),
                    "corrupt RF64 header: ds64 chunk of {size} bytes"
                );
                let mut b = vec![0u8; size as usize + (size as usize & 1)];
                r.read_exact(&mut b).context(HEADER_EOF)?;
                ds64_data = Some(u64le(&b, 8));
                seen += u64::from(size);
            }
            b"data" => {
                let (format, rate, channels) =
                    fmt.context("corrupt WAV header: no fmt chunk before the data")?;
                let data_len = match ds64_data {
                    Some(len) if rf64 && size == u32::MAX => Some(len),
                    _ => (size != 0 && size < STREAMING_SIZE).then_some(u64::from(size)),
                };
                return Ok(WavInfo {
                    format,
                    rate,
                    channels,
                    data_len,
                });
            }
            _ => {
                let skip = u64::from(size) + u64::from(size & 1);
                let got = std::io::copy(&mut r.take(skip), &mut std::io::sink())?;
                ensure!(got == skip, HEADER_EOF);
                seen += skip;
            }
        }
        ensure!(
            seen <= MAX_HEADER,
            "corrupt WAV header: no audio data in its first {MAX_HEADER} bytes"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downmix_averages() {
        let mut out = [0.0; 2];
        downmix(&[1.0, 0.0, 0.5, 0.5], 2, &mut out);
        assert_eq!(out, [0.5, 0.5]);
    }

    #[test]
    fn finite_guard_zeroes_and_counts() {
        let mut g = FiniteGuard::new("x", 16000);
        let mut x = [0.5, f32::NAN, 0.25, f32::INFINITY, f32::NEG_INFINITY, -3e38];
        g.clean(&mut x, 2, 100);
        assert_eq!(x, [0.5, 0.0, 0.25, 0.0, 0.0, -1.0]);
        assert_eq!(g.count(), 3);
    }

    #[test]
    fn rate_rule() {
        for ok in [MIN_RATE, 16_000, MAX_RATE] {
            assert!(check_rate(ok).is_ok());
        }
        for bad in [0, 999, 768_001, u32::MAX - 4] {
            let e = check_rate(bad).unwrap_err().to_string();
            assert!(e.contains("sample rate") && e.contains("768000"), "{e}");
        }
    }

    #[test]
    fn g711_and_wide_formats() {
        let mut out = [0f32; 4];
        // A-law 0xD5 and µ-law 0xFF are the smallest positive steps; 0x55 / 0x7F negative.
        decode_samples(SampleFormat::ALaw, &[0xD5, 0x55, 0xAA, 0x2A], &mut out);
        assert!(out[0] > 0.0 && out[0] < 0.001 && out[1] < 0.0, "{out:?}");
        assert!(out[2] > 0.9 && out[3] < -0.9, "{out:?}");
        decode_samples(SampleFormat::MuLaw, &[0xFF, 0x7F, 0x80, 0x00], &mut out);
        assert!(out[0] == 0.0 && out[1] == 0.0, "{out:?}");
        assert!(out[2] > 0.9 && out[3] < -0.9, "{out:?}");
        let s24 = [0x00, 0x00, 0x40, 0x00, 0x00, 0x80];
        assert_eq!(decode_samples(SampleFormat::S24, &s24, &mut out), 2);
        assert_eq!(&out[..2], &[0.5, -1.0]);
        assert_eq!(
            decode_samples(SampleFormat::U8, &[128, 0, 255], &mut out),
            3
        );
        assert_eq!(&out[..2], &[0.0, -1.0]);
    }

    #[test]
    fn converts_formats() {
        let mut out = [0f32; 4];
        let s16: Vec<u8> = [0i16, 16384, -32768, 32767]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(convert(PcmFormat::S16Le, &s16, &mut out), 4);
        assert_eq!(out, [0.0, 0.5, -1.0, 32767.0 / 32768.0]);
        let f32s: Vec<u8> = [0.25f32, f32::NAN, 2.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(convert(PcmFormat::F32Le, &f32s, &mut out), 3);
        assert_eq!(out[0], 0.25);
        assert!(out[1].is_nan(), "left to the FiniteGuard");
        assert_eq!(out[2], 2.0);
        let s32: Vec<u8> = [i32::MIN, 1 << 30]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(convert(PcmFormat::S32Le, &s32, &mut out), 2);
        assert_eq!(&out[..2], &[-1.0, 0.5]);
    }
}
