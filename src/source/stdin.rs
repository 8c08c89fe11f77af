//! PCM on standard input. `arecord -f S16_LE -r 48000 | earshot listen --stdin` works as is:
//! arecord writes a WAV header to a pipe, and the header gives the rate, channels and sample
//! format. Raw PCM (`arecord -t raw`, `sox ... -t raw -`) has no header and needs `--rate`
//! (and `--channels`, `--sample-format` unless mono s16le). Samples are interleaved
//! little-endian s16, s32 or f32. Nothing piped in is dropped: the reader waits for room in the
//! ring and the DSP thread waits for room in the window queue (back-pressure: the pipe then holds
//! the writer back), so a file piped in faster than real time is captioned whole. A live writer
//! that cannot wait (`arecord`) overruns on its own side when the model is slower than real time.

use super::ring::Ring;
use super::{wait_until, Policy, Source, SourceFormat, SourceState, ThreadState};
use crate::audio::pcm::{
    check_rate, convert, read_wav_header, FiniteGuard, PcmFormat, SampleFormat,
};
use anyhow::{anyhow, bail, ensure, Context, Result};
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
    /// Standard input; see [`StdinSource::from_reader`].
    pub fn open(pcm: PcmFormat, rate: Option<u32>, channels: u16) -> Result<StdinSource> {
        StdinSource::from_reader(Box::new(std::io::stdin()), pcm, rate, channels)
    }

    /// Any byte stream (tests use an in-memory reader). Blocks until the first 12 bytes arrived
    /// to tell a WAV stream (its header wins over `pcm`/`rate`/`channels`) from raw PCM (then
    /// `rate` is required).
    pub fn from_reader(
        mut reader: Box<dyn Read + Send>,
        pcm: PcmFormat,
        rate: Option<u32>,
        channels: u16,
    ) -> Result<StdinSource> {
        let mut head = [0u8; 12];
        let mut n = 0;
        while n < head.len() {
            match reader.read(&mut head[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e).context("reading stdin"),
            }
        }
        let rf64 = matches!(&head[..4], b"RF64" | b"BW64");
        let (pcm, rate, channels, reader): (_, _, _, Box<dyn Read + Send>) = if n == 12
            && (&head[..4] == b"RIFF" || rf64)
            && &head[8..] == b"WAVE"
        {
            let info = read_wav_header(&mut reader, rf64).context("the WAV header on stdin")?;
            let pcm = match info.format {
                SampleFormat::S16 => PcmFormat::S16Le,
                SampleFormat::S32 => PcmFormat::S32Le,
                SampleFormat::F32 => PcmFormat::F32Le,
                other => bail!(
                    "unsupported WAV sample format on stdin ({}): record with -f S16_LE, S32_LE \
                     or FLOAT_LE",
                    other.name()
                ),
            };
            ensure!(
                info.channels <= 64,
                "too many channels on stdin ({}; at most 64)",
                info.channels
            );
            if rate.is_some_and(|r| r != info.rate) {
                log::warn!(
                    "stdin is a WAV stream at {} Hz; --rate/source.stdin_rate ignored",
                    info.rate
                );
            }
            let reader: Box<dyn Read + Send> = match info.data_len {
                Some(len) => Box::new(reader.take(len)),
                None => reader,
            };
            (pcm, info.rate, info.channels, reader)
        } else {
            let rate = rate.ok_or_else(|| {
                    anyhow!(
                        "stdin carries raw PCM (no WAV header): give its sample rate with --rate \
                         (source.stdin_rate), and --channels/--sample-format unless it is mono s16le"
                    )
                })?;
            check_rate(rate).context("stdin")?;
            let head = std::io::Cursor::new(head[..n].to_vec());
            (pcm, rate, channels, Box::new(head.chain(reader)))
        };
        Ok(StdinSource {
            pcm,
            format: SourceFormat {
                sample_rate: rate,
                channels,
            },
            reader: Some(reader),
            thread: ThreadState::new(),
        })
    }

    /// Sample format of the stream (from the WAV header when there is one).
    pub fn pcm(&self) -> PcmFormat {
        self.pcm
    }
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
            drop_windows: false,
        }
    }

    fn start(&mut self, ring: &Ring) -> Result<()> {
        let mut reader = self.reader.take().context("stdin source already started")?;
        let mut writer = ring.writer()?;
        let pcm = self.pcm;
        let channels = usize::from(self.format.channels);
        let frame_bytes = channels * pcm.bytes_per_sample();
        let rate = self.format.sample_rate;
        anyhow::ensure!(frame_bytes <= MAX_FRAME_BYTES, "too many channels");
        self.thread.spawn("earshot-stdin", move |stop| {
            let mut bytes = vec![0u8; BLOCK_FRAMES * frame_bytes];
            let mut samples = vec![0f32; BLOCK_FRAMES * channels];
            let mut have = 0usize; // bytes in `bytes` (a partial frame may stay between reads)
            let mut guard = FiniteGuard::new("stdin", rate);
            let mut frames_in = 0u64;
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
                guard.clean(&mut samples[..count], channels, frames_in);
                frames_in += frames as u64;
                if !wait_until(stop, || writer.vacant_frames() >= frames) {
                    // Stopping: what was already read still belongs to the last window.
                    writer.push(&samples[..count]);
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

    fn wav_header(tag: u16, bits: u16, channels: u16, rate: u32, data_len: u32) -> Vec<u8> {
        let mut h = Vec::new();
        h.extend_from_slice(b"RIFF");
        h.extend_from_slice(&0xFFFF_FFFFu32.to_le_bytes());
        h.extend_from_slice(b"WAVE");
        h.extend_from_slice(b"LIST");
        h.extend_from_slice(&3u32.to_le_bytes());
        h.extend_from_slice(&[1, 2, 3, 0]); // odd size + pad byte
        h.extend_from_slice(b"fmt ");
        h.extend_from_slice(&16u32.to_le_bytes());
        h.extend_from_slice(&tag.to_le_bytes());
        h.extend_from_slice(&channels.to_le_bytes());
        h.extend_from_slice(&rate.to_le_bytes());
        let block = channels * bits / 8;
        h.extend_from_slice(&(rate * u32::from(block)).to_le_bytes());
        h.extend_from_slice(&block.to_le_bytes());
        h.extend_from_slice(&bits.to_le_bytes());
        h.extend_from_slice(b"data");
        h.extend_from_slice(&data_len.to_le_bytes());
        h
    }

    fn reader(bytes: Vec<u8>) -> Box<dyn Read + Send> {
        Box::new(std::io::Cursor::new(bytes))
    }

    #[test]
    fn wav_stream_header_gives_the_format() {
        // arecord -f S16_LE -r 48000 -c 2 to a pipe: "unknown" data length.
        let mut b = wav_header(1, 16, 2, 48_000, 0x7FFF_FFFF);
        b.extend_from_slice(&[0u8; 8]);
        let s = StdinSource::from_reader(reader(b), PcmFormat::F32Le, None, 1).unwrap();
        assert_eq!(
            s.format(),
            SourceFormat {
                sample_rate: 48_000,
                channels: 2
            }
        );
        assert_eq!(s.pcm(), PcmFormat::S16Le);
        let b = wav_header(3, 32, 1, 16_000, 0);
        let s = StdinSource::from_reader(reader(b), PcmFormat::S16Le, Some(8000), 1).unwrap();
        assert_eq!(
            (s.pcm(), s.format().sample_rate),
            (PcmFormat::F32Le, 16_000)
        );
        let b = wav_header(1, 24, 1, 16_000, 0);
        let err = StdinSource::from_reader(reader(b), PcmFormat::S16Le, None, 1)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("S32_LE"), "{err}");
        let mut b = wav_header(1, 16, 1, 16_000, 0);
        b.truncate(30);
        assert!(StdinSource::from_reader(reader(b), PcmFormat::S16Le, None, 1).is_err());
    }

    #[test]
    fn raw_pcm_needs_a_rate_and_keeps_its_first_bytes() {
        let raw: Vec<u8> = (0..64u8).collect();
        let err = StdinSource::from_reader(reader(raw.clone()), PcmFormat::S16Le, None, 1)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("--rate"), "{err}");
        let mut s =
            StdinSource::from_reader(reader(raw.clone()), PcmFormat::S16Le, Some(16_000), 1)
                .unwrap();
        let mut all = Vec::new();
        s.reader.take().unwrap().read_to_end(&mut all).unwrap();
        assert_eq!(all, raw, "the peeked bytes are audio too");
    }
}
