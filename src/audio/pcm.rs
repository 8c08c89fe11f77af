//! Sample formats and the conversions every source needs: the raw PCM formats of `listen
//! --stdin` ([`PcmFormat`], [`convert`]), the WAV stream header ([`read_wav_header`]), the
//! channel [`downmix`] shared by the decoder and the DSP thread, and the one policy for
//! non-finite samples.
//!
//! # Non-finite samples (NaN, ±Inf)
//!
//! They only occur in damaged or wrongly produced float data. Where the input is a whole file
//! that can be refused (`earshot caption`), it is refused with the position of the first bad
//! sample ([`check_finite`]): a caption of patched-up garbage would look trustworthy while being
//! meaningless. A live stream cannot be refused, so a live float sample is zeroed (and clamped
//! to ±1) before it reaches a window ([`live_sample`]); a file played by `listen --file` is
//! passed on as decoded, and the silence gate (whose level is NaN then) skips such a window.

use anyhow::{bail, ensure, Context, Result};
use std::io::Read;

use crate::sink::format::format_time;

/// A raw little-endian PCM sample format (interleaved).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PcmFormat {
    S16Le,
    S32Le,
    F32Le,
}

impl PcmFormat {
    pub fn bytes_per_sample(self) -> usize {
        match self {
            PcmFormat::S16Le => 2,
            PcmFormat::S32Le | PcmFormat::F32Le => 4,
        }
    }
}

/// Rejects non-finite samples (the file policy above) with the position of the first one;
/// `offset` is the index of `samples[0]` in the stream at `rate`.
pub fn check_finite(samples: &[f32], offset: u64, rate: u32) -> Result<()> {
    if let Some(i) = samples.iter().position(|s| !s.is_finite()) {
        let t = (offset + i as u64) as f64 / f64::from(rate);
        bail!(
            "invalid audio: non-finite sample ({}) at {} — the file is corrupt",
            samples[i],
            format_time(t)
        );
    }
    Ok(())
}

/// A live float sample (the stream policy above): non-finite → 0, else clamped to ±1.
pub fn live_sample(v: f32) -> f32 {
    if v.is_finite() {
        v.clamp(-1.0, 1.0)
    } else {
        0.0
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

/// Converts whole little-endian samples of `bytes` into `out`; returns samples written.
pub fn convert(pcm: PcmFormat, bytes: &[u8], out: &mut [f32]) -> usize {
    let n = (bytes.len() / pcm.bytes_per_sample()).min(out.len());
    match pcm {
        PcmFormat::S16Le => {
            for (o, b) in out[..n].iter_mut().zip(bytes.chunks_exact(2)) {
                *o = f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0;
            }
        }
        PcmFormat::S32Le => {
            for (o, b) in out[..n].iter_mut().zip(bytes.chunks_exact(4)) {
                *o = (f64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])) / 2_147_483_648.0)
                    as f32;
            }
        }
        PcmFormat::F32Le => {
            for (o, b) in out[..n].iter_mut().zip(bytes.chunks_exact(4)) {
                let v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                *o = live_sample(v);
            }
        }
    }
    n
}

/// "Unknown length" values streaming writers (arecord to a pipe) put in the data chunk size.
const STREAMING_SIZE: u32 = 0x7FFF_0000;
/// Give up looking for the `data` chunk after this many header bytes.
const MAX_HEADER: u64 = 1 << 20;

/// Format found in a WAV header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WavInfo {
    pub pcm: PcmFormat,
    pub rate: u32,
    pub channels: u16,
    /// Bytes of audio announced (`None`: streaming, read to the end).
    pub data_len: Option<u64>,
}

fn u16le(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32le(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Reads the chunks after `RIFF....WAVE` up to the start of the audio data.
pub fn read_wav_header(r: &mut dyn Read) -> Result<WavInfo> {
    let mut fmt: Option<(PcmFormat, u32, u16)> = None;
    let mut seen: u64 = 12;
    loop {
        let mut h = [0u8; 8];
        r.read_exact(&mut h)
            .context("stdin ended inside the WAV header")?;
        let size = u32le(&h, 4);
        seen += 8;
        match &h[..4] {
            b"fmt " => {
                ensure!(
                    (16..=1024).contains(&size),
                    "bad WAV fmt chunk ({size} bytes)"
                );
                let mut b = vec![0u8; size as usize + (size as usize & 1)];
                r.read_exact(&mut b)
                    .context("stdin ended inside the WAV header")?;
                let mut tag = u16le(&b, 0);
                let channels = u16le(&b, 2);
                let rate = u32le(&b, 4);
                let bits = u16le(&b, 14);
                if tag == 0xFFFE && size >= 26 {
                    tag = u16le(&b, 24); // WAVE_FORMAT_EXTENSIBLE: the sub-format
                }
                let pcm = match (tag, bits) {
                    (1, 16) => PcmFormat::S16Le,
                    (1, 32) => PcmFormat::S32Le,
                    (3, 32) => PcmFormat::F32Le,
                    _ => bail!(
                        "unsupported WAV sample format on stdin (format tag {tag}, {bits} bits): \
                         record with -f S16_LE, S32_LE or FLOAT_LE"
                    ),
                };
                ensure!(
                    (1..=64).contains(&channels) && (1000..=768_000).contains(&rate),
                    "implausible WAV header on stdin ({channels} channels, {rate} Hz)"
                );
                fmt = Some((pcm, rate, channels));
                seen += u64::from(size);
            }
            b"data" => {
                let (pcm, rate, channels) =
                    fmt.context("the WAV header on stdin has no fmt chunk before the data")?;
                let data_len = (size != 0 && size < STREAMING_SIZE).then_some(u64::from(size));
                return Ok(WavInfo {
                    pcm,
                    rate,
                    channels,
                    data_len,
                });
            }
            _ => {
                let skip = u64::from(size) + u64::from(size & 1);
                let got = std::io::copy(&mut r.take(skip), &mut std::io::sink())?;
                ensure!(got == skip, "stdin ended inside the WAV header");
                seen += skip;
            }
        }
        ensure!(
            seen <= MAX_HEADER,
            "no audio data found in the WAV header on stdin"
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
    fn finite_check_reports_position() {
        assert!(check_finite(&[0.0, 1.0, -1.0], 0, 16000).is_ok());
        let e = check_finite(&[0.0, f32::NAN], 16000 * 61, 16000).unwrap_err();
        let msg = format!("{e}");
        assert!(msg.contains("01:01.0") && msg.contains("NaN"), "{msg}");
        assert!(check_finite(&[f32::INFINITY], 0, 16000).is_err());
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
        assert_eq!(&out[..3], &[0.25, 0.0, 1.0]);
        let s32: Vec<u8> = [i32::MIN, 1 << 30]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(convert(PcmFormat::S32Le, &s32, &mut out), 2);
        assert_eq!(&out[..2], &[-1.0, 0.5]);
    }
}
