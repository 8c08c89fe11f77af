//! Raw PCM on standard input (`arecord -f S16_LE -r 48000 -c 1 | earshot listen --stdin --rate
//! 48000`): interleaved little-endian s16 or f32 frames. The reader waits for room in the ring
//! (the pipe then holds the writer back); a slow model costs whole windows, not samples.

use super::{wait_until, Policy, Source, SourceFormat, SourceState, ThreadState};
use crate::config::PcmFormat;
use crate::ring::Ring;
use anyhow::{Context, Result};
use std::io::Read;

/// Frames converted per block.
const BLOCK_FRAMES: usize = 1024;
/// Largest supported frame: 64 channels × 4 bytes.
const MAX_FRAME_BYTES: usize = 64 * 4;

pub struct StdinSource {
    pcm: PcmFormat,
    format: SourceFormat,
    reader: Option<Box<dyn Read + Send>>,
    thread: ThreadState,
}

impl StdinSource {
    pub fn new(pcm: PcmFormat, rate: u32, channels: u16) -> StdinSource {
        StdinSource::from_reader(Box::new(std::io::stdin()), pcm, rate, channels)
    }

    /// Any byte stream (tests use an in-memory reader).
    pub fn from_reader(
        reader: Box<dyn Read + Send>,
        pcm: PcmFormat,
        rate: u32,
        channels: u16,
    ) -> StdinSource {
        StdinSource {
            pcm,
            format: SourceFormat {
                sample_rate: rate,
                channels,
            },
            reader: Some(reader),
            thread: ThreadState::new(),
        }
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
        PcmFormat::F32Le => {
            for (o, b) in out[..n].iter_mut().zip(bytes.chunks_exact(4)) {
                let v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                // Corrupt input (NaN/inf) must not poison the window.
                *o = if v.is_finite() {
                    v.clamp(-1.0, 1.0)
                } else {
                    0.0
                };
            }
        }
    }
    n
}

impl Source for StdinSource {
    fn name(&self) -> String {
        "stdin".to_string()
    }

    fn format(&self) -> SourceFormat {
        self.format
    }

    fn policy(&self) -> Policy {
        Policy {
            shed_oldest: false,
            drop_windows: true,
        }
    }

    fn start(&mut self, ring: &Ring) -> Result<()> {
        let mut reader = self.reader.take().context("stdin source already started")?;
        let mut writer = ring.writer()?;
        let pcm = self.pcm;
        let channels = usize::from(self.format.channels);
        let frame_bytes = channels * pcm.bytes_per_sample();
        anyhow::ensure!(frame_bytes <= MAX_FRAME_BYTES, "too many channels");
        self.thread.spawn("earshot-stdin", move |stop| {
            let mut bytes = vec![0u8; BLOCK_FRAMES * frame_bytes];
            let mut samples = vec![0f32; BLOCK_FRAMES * channels];
            let mut have = 0usize; // bytes in `bytes` (a partial frame may stay between reads)
            loop {
                let n = match reader.read(&mut bytes[have..]) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e).context("reading stdin"),
                };
                have += n;
                let whole = (have / frame_bytes) * frame_bytes;
                let count = convert(pcm, &bytes[..whole], &mut samples);
                let frames = count / channels;
                if !wait_until(stop, || writer.vacant_frames() >= frames) {
                    return Ok(());
                }
                writer.push(&samples[..count]);
                bytes.copy_within(whole..have, 0);
                have -= whole;
            }
            if have > 0 {
                log::warn!("stdin ended with {have} bytes of an incomplete frame (ignored)");
            }
            Ok(())
        })
    }

    fn poll(&mut self) -> SourceState {
        self.thread.state()
    }

    fn stop(&mut self) {
        self.thread.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
