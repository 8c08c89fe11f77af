//! Streaming audio file decoding with symphonia (WAV, FLAC, OGG/Vorbis, MP3).
//!
//! [`AudioDecoder`] yields mono f32 chunks at the file's own sample rate, one codec packet at a
//! time, so memory stays bounded by one packet regardless of the file length. Channels are
//! averaged ([`super::pcm::downmix`]). Truncated files (fewer frames than the container header announces) and files whose
//! packets cannot be decoded are reported as errors; a few isolated bad packets are skipped with
//! a warning, as players do.

use anyhow::{anyhow, bail, Context, Result};
use std::path::Path;
use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{Decoder, DecoderOptions, CODEC_TYPE_NULL};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::{FormatOptions, FormatReader};
use symphonia::core::io::{MediaSource, MediaSourceStream};
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

/// Give up after this many consecutive undecodable packets.
const MAX_CONSECUTIVE_BAD_PACKETS: usize = 16;

/// Facts about the decoded stream.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamInfo {
    pub sample_rate: u32,
    pub channels: usize,
    /// Frames announced by the container, when it says.
    pub n_frames: Option<u64>,
    pub codec: String,
}

/// Pull-based decoder: call [`AudioDecoder::next_chunk`] until it returns `Ok(None)`.
pub struct AudioDecoder {
    format: Box<dyn FormatReader>,
    decoder: Box<dyn Decoder>,
    track_id: u32,
    info: StreamInfo,
    sample_buf: Option<SampleBuffer<f32>>,
    mono: Vec<f32>,
    frames_out: u64,
    bad_packets: usize,
    consecutive_bad: usize,
    finished: bool,
}

impl std::fmt::Debug for AudioDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioDecoder")
            .field("info", &self.info)
            .field("frames_out", &self.frames_out)
            .finish()
    }
}

impl AudioDecoder {
    /// Opens a file. The extension is used only as a hint; the content decides.
    pub fn open(path: &Path) -> Result<AudioDecoder> {
        let meta = std::fs::metadata(path).with_context(|| "cannot open file".to_string())?;
        if meta.is_dir() {
            bail!("is a directory, not an audio file");
        }
        let file = std::fs::File::open(path).context("cannot open file")?;
        if meta.len() == 0 {
            bail!("empty file (0 bytes)");
        }
        let ext = path.extension().and_then(|e| e.to_str());
        Self::from_source(Box::new(file), ext)
    }

    /// Reads standard input (`earshot caption -`): a pipe is read as an unseekable stream, the
    /// content decides the format.
    pub fn open_stdin() -> Result<AudioDecoder> {
        let stdin = symphonia::core::io::ReadOnlySource::new(std::io::stdin());
        Self::from_source(Box::new(stdin), None)
    }

    /// Opens any media source (used by tests to stream synthetic files of any length).
    pub fn from_source(source: Box<dyn MediaSource>, ext_hint: Option<&str>) -> Result<Self> {
        let mss = MediaSourceStream::new(source, Default::default());
        let mut hint = Hint::new();
        if let Some(ext) = ext_hint {
            hint.with_extension(ext);
        }
        let probed = symphonia::default::get_probe()
            .format(
                &hint,
                mss,
                &FormatOptions::default(),
                &MetadataOptions::default(),
            )
            .map_err(|e| match e {
                SymError::Unsupported(_) => {
                    anyhow!("unknown or unsupported audio format (earshot reads WAV, FLAC, OGG/Vorbis and MP3)")
                }
                SymError::IoError(ref io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
                    anyhow!("truncated or corrupt file: ended inside the header")
                }
                other => anyhow!("corrupt or unsupported file: {other}"),
            })?;
        let format = probed.format;
        let track = format
            .tracks()
            .iter()
            .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
            .ok_or_else(|| anyhow!("no audio track found"))?;
        let params = track.codec_params.clone();
        let track_id = track.id;
        let decoder = symphonia::default::get_codecs()
            .make(&params, &DecoderOptions::default())
            .map_err(|e| anyhow!("unsupported audio codec: {e}"))?;
        let codec = symphonia::default::get_codecs()
            .get_codec(params.codec)
            .map(|d| d.short_name.to_string())
            .unwrap_or_else(|| "unknown".into());
        let sample_rate = params
            .sample_rate
            .ok_or_else(|| anyhow!("the stream does not declare a sample rate"))?;
        if sample_rate == 0 {
            bail!("the stream declares a sample rate of 0 Hz");
        }
        let channels = params.channels.map(|c| c.count()).unwrap_or(0);
        Ok(AudioDecoder {
            format,
            decoder,
            track_id,
            info: StreamInfo {
                sample_rate,
                channels,
                n_frames: params.n_frames,
                codec,
            },
            sample_buf: None,
            mono: Vec::new(),
            frames_out: 0,
            bad_packets: 0,
            consecutive_bad: 0,
            finished: false,
        })
    }

    pub fn info(&self) -> &StreamInfo {
        &self.info
    }

    /// Frames (per channel) returned so far.
    pub fn frames_decoded(&self) -> u64 {
        self.frames_out
    }

    /// Packets skipped because they could not be decoded.
    pub fn bad_packets(&self) -> usize {
        self.bad_packets
    }

    /// Capacity of the internal buffers in samples (for bounded-memory tests).
    pub fn buffered_capacity(&self) -> usize {
        self.mono.capacity() + self.sample_buf.as_ref().map_or(0, |b| b.capacity())
    }

    /// Next chunk of mono samples at [`StreamInfo::sample_rate`], or `None` at the end.
    pub fn next_chunk(&mut self) -> Result<Option<&[f32]>> {
        if self.finished {
            return Ok(None);
        }
        loop {
            let packet = match self.format.next_packet() {
                Ok(p) => p,
                Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    return self.end_of_stream();
                }
                Err(SymError::ResetRequired) => {
                    // A chained stream with new parameters; not something a captioning file has.
                    bail!("the stream changes its parameters mid-file (unsupported)");
                }
                Err(SymError::DecodeError(msg)) => {
                    self.note_bad_packet(msg)?;
                    continue;
                }
                Err(e) => return Err(anyhow!("read error after {} s: {e}", self.seconds())),
            };
            if packet.track_id() != self.track_id {
                continue;
            }
            let decoded = match self.decoder.decode(&packet) {
                Ok(d) => d,
                Err(SymError::DecodeError(msg)) => {
                    self.note_bad_packet(msg)?;
                    continue;
                }
                Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    return self.end_of_stream();
                }
                Err(e) => return Err(anyhow!("decode error after {} s: {e}", self.seconds())),
            };
            self.consecutive_bad = 0;
            let spec = *decoded.spec();
            let frames = decoded.frames();
            if frames == 0 {
                continue;
            }
            let channels = spec.channels.count().max(1);
            if self.info.channels == 0 {
                self.info.channels = channels;
            }
            let needed = decoded.capacity() as u64;
            let buf = match &mut self.sample_buf {
                Some(b) if b.capacity() as u64 >= needed * channels as u64 => b,
                slot => slot.insert(SampleBuffer::<f32>::new(needed, spec)),
            };
            buf.copy_interleaved_ref(decoded);
            let interleaved = buf.samples();
            self.mono.clear();
            self.mono.resize(frames, 0.0);
            super::pcm::downmix(&interleaved[..frames * channels], channels, &mut self.mono);
            self.frames_out += frames as u64;
            return Ok(Some(&self.mono));
        }
    }

    fn seconds(&self) -> String {
        format!(
            "{:.1}",
            self.frames_out as f64 / f64::from(self.info.sample_rate)
        )
    }

    fn note_bad_packet(&mut self, msg: &str) -> Result<()> {
        self.bad_packets += 1;
        self.consecutive_bad += 1;
        log::warn!(
            "skipping an undecodable packet after {} s: {msg}",
            self.seconds()
        );
        if self.consecutive_bad >= MAX_CONSECUTIVE_BAD_PACKETS {
            bail!(
                "corrupt audio data: {} undecodable packets in a row after {} s ({msg})",
                self.consecutive_bad,
                self.seconds()
            );
        }
        Ok(())
    }

    fn end_of_stream(&mut self) -> Result<Option<&[f32]>> {
        self.finished = true;
        if let Some(n) = self.info.n_frames {
            // Allow a little slack: some encoders round the announced length.
            let slack = u64::from(self.info.sample_rate / 100).max(2048);
            if self.frames_out + slack < n {
                let sr = f64::from(self.info.sample_rate);
                bail!(
                    "truncated or corrupt file: the header announces {:.2} s but only {:.2} s could be read",
                    n as f64 / sr,
                    self.frames_out as f64 / sr
                );
            }
        }
        if self.frames_out > 0 && self.bad_packets > 0 {
            log::warn!("{} undecodable packet(s) were skipped", self.bad_packets);
        }
        Ok(None)
    }
}
