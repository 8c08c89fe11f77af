//! Streaming audio file decoding: WAV (RIFF, RF64/BW64; any channel count) with our own reader
//! over [`super::pcm`], FLAC, OGG/Vorbis and MP3 with symphonia.
//!
//! [`AudioDecoder`] yields mono f32 chunks at the file's own sample rate, one codec packet (or
//! one bounded block of WAV frames) at a time, so memory stays bounded regardless of the file
//! length or of what its header claims. Channels are averaged ([`super::pcm::downmix`]);
//! non-finite samples are replaced by 0 ([`FiniteGuard`]).
//!
//! What is refused, with one line each:
//! - anything whose first bytes are not one of the four formats: "unknown or unsupported audio
//!   format" (the content decides, never the extension; leading zero bytes before an MP3 frame
//!   are skipped);
//! - a sample rate outside [`super::pcm::check_rate`]'s range, before anything is sized from it;
//! - truncated files: fewer frames than the header announces, or an OGG stream without its last
//!   page;
//! - [`MAX_CONSECUTIVE_BAD_PACKETS`] undecodable packets in a row.
//!
//! Isolated damage (a few undecodable packets, OGG pages lost to a checksum error) is skipped as
//! players do, counted, and reported in one warning at the end naming the seconds lost.
//!
//! Regular files, FIFOs and character devices are all read; a FIFO with no writer is given up
//! after [`FIFO_WAIT`].

use super::codec::Codec;
use super::pcm::{check_rate, read_wav_header, FiniteGuard};
use super::sniff::*;
use super::wav_reader::WavData;
use anyhow::{anyhow, bail, Context, Result};
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use symphonia::core::codecs::{DecoderOptions, CODEC_TYPE_NULL};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::{MediaSource, MediaSourceStream};
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

/// Give up after this many consecutive undecodable packets.
pub const MAX_CONSECUTIVE_BAD_PACKETS: usize = 16;
/// WAV bytes read per chunk (at least one frame).
const WAV_READ_BYTES: usize = 8 * 1024;

/// How long a FIFO may have no writer (or no data) before it is given up.
pub use super::sniff::FIFO_WAIT;

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
    name: String,
    info: StreamInfo,
    backend: Backend,
    mono: Vec<f32>,
    frames_out: u64,
    guard: FiniteGuard,
    finished: bool,
}

enum Backend {
    Wav(WavData),
    Codec(Box<Codec>),
}

impl std::fmt::Debug for AudioDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioDecoder")
            .field("info", &self.info)
            .field("frames_out", &self.frames_out)
            .finish()
    }
}

/// The message a panic carried (`panic!` with a literal or a formatted string), for the error
/// line that replaces it.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Runs symphonia code, turning a panic on hostile input into an error.
fn guarded<T>(what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let msg = panic_message(payload.as_ref());
            Err(anyhow!(
                "corrupt or unsupported file: {what} failed ({msg})"
            ))
        }
    }
}

impl AudioDecoder {
    /// Opens a file, FIFO or character device. The extension plays no part; the content
    /// decides.
    pub fn open(path: &Path) -> Result<AudioDecoder> {
        let meta = std::fs::metadata(path).context("cannot open file")?;
        let name = path.display().to_string();
        if meta.is_dir() {
            bail!("is a directory, not an audio file");
        }
        if meta.is_file() {
            let file = std::fs::File::open(path).context("cannot open file")?;
            if meta.len() == 0 {
                bail!("empty file (0 bytes)");
            }
            return Self::open_source(name, Box::new(file));
        }
        use std::os::unix::fs::FileTypeExt;
        let file = if meta.file_type().is_fifo() {
            open_fifo(path, FIFO_WAIT)?
        } else {
            std::fs::File::open(path).context("cannot open file")?
        };
        Self::open_source(name, Box::new(Stream(file)))
    }

    /// Reads standard input (`earshot caption -`): a pipe is read as an unseekable stream, the
    /// content decides the format.
    pub fn open_stdin() -> Result<AudioDecoder> {
        let stdin = symphonia::core::io::ReadOnlySource::new(std::io::stdin());
        Self::open_source("standard input".into(), Box::new(stdin))
    }

    /// Opens any media source (tests stream synthetic files of any length through this). The
    /// hint is not needed: the content decides.
    pub fn from_source(source: Box<dyn MediaSource>, _ext_hint: Option<&str>) -> Result<Self> {
        Self::open_source("stream".into(), source)
    }

    fn open_source(name: String, mut source: Box<dyn MediaSource>) -> Result<Self> {
        let seekable = source.is_seekable();
        let mut head = vec![0u8; SNIFF_BYTES];
        let n = read_full(&mut source, &mut head).context("read error")?;
        head.truncate(n);
        if n == 0 {
            bail!("empty stream (0 bytes)");
        }
        let kind = sniff(&head)?;
        match kind {
            Kind::Flac => check_flac_metadata(&mut source, &mut head)?,
            Kind::Ogg => check_vorbis_comment(&mut source, &mut head)?,
            _ => {}
        }
        let source: Box<dyn MediaSource> = if seekable {
            source.seek(SeekFrom::Start(0)).context("read error")?;
            source
        } else {
            Box::new(Replay {
                head: std::io::Cursor::new(head),
                rest: source,
            })
        };
        let (info, backend) = match kind {
            Kind::Wav { rf64 } => Self::open_wav(source, rf64)?,
            other => guarded("opening the stream", || {
                Self::open_codec(source, other, seekable)
            })?,
        };
        let guard = FiniteGuard::new(name.clone(), info.sample_rate);
        Ok(AudioDecoder {
            name,
            info,
            backend,
            mono: Vec::new(),
            frames_out: 0,
            guard,
            finished: false,
        })
    }

    fn open_wav(mut source: Box<dyn MediaSource>, rf64: bool) -> Result<(StreamInfo, Backend)> {
        let mut pre = [0u8; 12];
        source
            .read_exact(&mut pre)
            .context("truncated or corrupt file: ended inside the header")?;
        let mut reader: Box<dyn Read + Send> = Box::new(source);
        let info = read_wav_header(&mut reader, rf64)?;
        let block = info.block();
        let info_out = StreamInfo {
            sample_rate: info.rate,
            channels: usize::from(info.channels),
            n_frames: info.data_len.map(|n| n / block as u64),
            codec: info.format.name().to_string(),
        };
        let buf = (WAV_READ_BYTES / block).max(1) * block;
        Ok((
            info_out,
            Backend::Wav(WavData {
                reader,
                info,
                remaining: info.data_len,
                bytes: vec![0u8; buf],
                have: 0,
                samples: Vec::new(),
            }),
        ))
    }

    fn open_codec(
        mut source: Box<dyn MediaSource>,
        kind: Kind,
        seekable: bool,
    ) -> Result<(StreamInfo, Backend)> {
        let ogg_cut = kind == Kind::Ogg && seekable && ogg_last_page_missing(&mut source)?;
        let mss = MediaSourceStream::new(source, Default::default());
        let mut hint = Hint::new();
        hint.with_extension(kind.ext());
        let probed = symphonia::default::get_probe()
            .format(
                &hint,
                mss,
                &FormatOptions::default(),
                &MetadataOptions::default(),
            )
            .map_err(|e| match e {
                SymError::Unsupported(_) => anyhow!(UNKNOWN_FORMAT),
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
        let sample_rate = params
            .sample_rate
            .ok_or_else(|| anyhow!("the stream does not declare a sample rate"))?;
        check_rate(sample_rate)?;
        let decoder = symphonia::default::get_codecs()
            .make(&params, &DecoderOptions::default())
            .map_err(|e| anyhow!("unsupported audio codec: {e}"))?;
        let codec = symphonia::default::get_codecs()
            .get_codec(params.codec)
            .map(|d| d.short_name.to_string())
            .unwrap_or_else(|| "unknown".into());
        let channels = params.channels.map(|c| c.count()).unwrap_or(0);
        Ok((
            StreamInfo {
                sample_rate,
                channels,
                n_frames: params.n_frames,
                codec,
            },
            Backend::Codec(Box::new(Codec {
                format,
                decoder,
                track_id,
                sample_buf: None,
                bad_packets: 0,
                consecutive_bad: 0,
                first_damage: None,
                next_ts: None,
                lost_frames: 0,
                ogg_cut,
            })),
        ))
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
        match &self.backend {
            Backend::Codec(c) => c.bad_packets,
            Backend::Wav(_) => 0,
        }
    }

    /// Non-finite samples replaced by 0 so far.
    pub fn non_finite_samples(&self) -> u64 {
        self.guard.count()
    }

    /// Capacity of the internal buffers in samples (for bounded-memory tests).
    pub fn buffered_capacity(&self) -> usize {
        self.mono.capacity()
            + match &self.backend {
                Backend::Codec(c) => c.sample_buf.as_ref().map_or(0, |b| b.capacity()),
                Backend::Wav(w) => w.samples.capacity() + w.bytes.capacity() / 4,
            }
    }

    /// Next chunk of mono samples at [`StreamInfo::sample_rate`], or `None` at the end.
    pub fn next_chunk(&mut self) -> Result<Option<&[f32]>> {
        if self.finished {
            return Ok(None);
        }
        let more = match &mut self.backend {
            Backend::Wav(w) => w.next(&mut self.mono, &mut self.guard, self.frames_out, &self.info),
            Backend::Codec(c) => {
                let (frames_out, info) = (self.frames_out, &mut self.info);
                let (mono, guard) = (&mut self.mono, &mut self.guard);
                guarded("decoding", || c.next(mono, guard, frames_out, info))
            }
        };
        match more {
            Ok(true) => {
                self.frames_out += self.mono.len() as u64;
                Ok(Some(&self.mono))
            }
            Ok(false) => {
                self.finished = true;
                self.end_of_stream()?;
                Ok(None)
            }
            Err(e) => {
                self.finished = true;
                Err(e)
            }
        }
    }

    fn end_of_stream(&mut self) -> Result<()> {
        let sr = f64::from(self.info.sample_rate);
        let read = self.frames_out as f64 / sr;
        if let Some(n) = self.info.n_frames {
            // Allow a little slack: some encoders round the announced length.
            let slack = u64::from(self.info.sample_rate / 100).max(2048);
            if self.frames_out + slack < n {
                bail!(
                    "truncated or corrupt file: the header announces {:.2} s but only {read:.2} s \
                     could be read",
                    n as f64 / sr,
                );
            }
        }
        if let Backend::Codec(c) = &self.backend {
            if c.ogg_cut {
                bail!(
                    "truncated or corrupt file: the OGG stream ends without its last page after \
                     {read:.2} s"
                );
            }
            if c.bad_packets > 0 || c.lost_frames > 0 {
                let mut what = Vec::new();
                if c.lost_frames > 0 {
                    what.push(format!(
                        "{:.2} s lost to damaged pages",
                        c.lost_frames as f64 / sr
                    ));
                }
                if c.bad_packets > 0 {
                    what.push(format!("{} undecodable packet(s) skipped", c.bad_packets));
                }
                log::warn!(
                    "{}: corrupt audio data: {}, the first after {:.1} s ({read:.2} s decoded)",
                    self.name,
                    what.join(", "),
                    c.first_damage.unwrap_or(0.0),
                );
            }
        }
        Ok(())
    }
}

pub(crate) fn seconds(frames: u64, info: &StreamInfo) -> String {
    format!("{:.1}", frames as f64 / f64::from(info.sample_rate))
}
