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

use super::pcm::{check_rate, decode_samples, downmix, read_wav_header, FiniteGuard, WavInfo};
use anyhow::{anyhow, bail, Context, Result};
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::time::Duration;
use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{Decoder, DecoderOptions, CODEC_TYPE_NULL};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::{FormatOptions, FormatReader};
use symphonia::core::io::{MediaSource, MediaSourceStream};
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

/// Give up after this many consecutive undecodable packets.
pub const MAX_CONSECUTIVE_BAD_PACKETS: usize = 16;
/// How long a FIFO may have no writer (or no data) before it is given up.
pub const FIFO_WAIT: Duration = Duration::from_secs(10);
/// Bytes looked at to tell the format.
const SNIFF_BYTES: usize = 4096;
/// Metadata read ahead to check the lengths symphonia would allocate from.
const MAX_METADATA_BYTES: usize = 16 << 20;
/// WAV bytes read per chunk (at least one frame).
const WAV_READ_BYTES: usize = 8 * 1024;

const UNKNOWN_FORMAT: &str =
    "unknown or unsupported audio format (earshot reads WAV, FLAC, OGG/Vorbis and MP3)";

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

/// The data chunk of a WAV file.
struct WavData {
    reader: Box<dyn Read + Send>,
    info: WavInfo,
    /// Data bytes still announced (`None`: to the end of the stream).
    remaining: Option<u64>,
    bytes: Vec<u8>,
    /// Bytes of an incomplete frame kept at the start of `bytes`.
    have: usize,
    samples: Vec<f32>,
}

/// A symphonia format reader and decoder.
struct Codec {
    format: Box<dyn FormatReader>,
    decoder: Box<dyn Decoder>,
    track_id: u32,
    sample_buf: Option<SampleBuffer<f32>>,
    bad_packets: usize,
    consecutive_bad: usize,
    first_damage: Option<f64>,
    /// Where the next packet should start (its predecessor's end), to see lost packets.
    next_ts: Option<u64>,
    lost_frames: u64,
    /// An OGG file whose last page (end-of-stream flag) is missing: reported at the end.
    ogg_cut: bool,
}

impl std::fmt::Debug for AudioDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioDecoder")
            .field("info", &self.info)
            .field("frames_out", &self.frames_out)
            .finish()
    }
}

/// What the first bytes say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Wav { rf64: bool },
    Flac,
    Ogg,
    Mp3,
}

impl Kind {
    fn ext(self) -> &'static str {
        match self {
            Kind::Wav { .. } => "wav",
            Kind::Flac => "flac",
            Kind::Ogg => "ogg",
            Kind::Mp3 => "mp3",
        }
    }
}

/// An MPEG audio frame header at `b[0..4]` (sync, version, layer, bit rate and rate fields valid).
fn mp3_frame_at(b: &[u8]) -> bool {
    b.len() >= 4
        && b[0] == 0xFF
        && b[1] & 0xE0 == 0xE0
        && (b[1] >> 3) & 3 != 1
        && (b[1] >> 1) & 3 != 0
        && b[2] >> 4 != 0xF
        && (b[2] >> 2) & 3 != 3
}

/// The format of a stream from its first bytes, with the header checks that must come before
/// symphonia sizes anything (the declared sample rates of FLAC and Vorbis).
fn sniff(head: &[u8]) -> Result<Kind> {
    let is = |magic: &[u8]| head.starts_with(magic);
    let kind = if (is(b"RIFF") || is(b"RF64") || is(b"BW64")) && head.get(8..12) == Some(b"WAVE") {
        Kind::Wav { rf64: !is(b"RIFF") }
    } else if is(b"fLaC") {
        Kind::Flac
    } else if is(b"OggS") {
        Kind::Ogg
    } else if is(b"ID3") {
        Kind::Mp3
    } else {
        let start = head.iter().position(|&b| b != 0).unwrap_or(head.len());
        if mp3_frame_at(&head[start..]) {
            Kind::Mp3
        } else if head.len() < 12
            && [&b"RIFF"[..], b"RF64", b"fLaC", b"OggS"]
                .iter()
                .any(|m| m.starts_with(&head[..head.len().min(4)]) || head.starts_with(m))
        {
            bail!("truncated or corrupt file: ended inside the header");
        } else {
            bail!(UNKNOWN_FORMAT);
        }
    };
    match kind {
        // STREAMINFO first: 20 bits of sample rate at byte 18.
        Kind::Flac if head.len() >= 21 && head[4] & 0x7F == 0 => {
            let rate =
                u32::from(head[18]) << 12 | u32::from(head[19]) << 4 | u32::from(head[20]) >> 4;
            check_rate(rate)?;
        }
        // The Vorbis identification packet of the first page: the rate at byte 12.
        Kind::Ogg if head.len() >= 28 => {
            let body = 27 + usize::from(head[26]);
            if let Some(p) = head.get(body..body + 16) {
                if &p[..7] == b"\x01vorbis" {
                    check_rate(u32::from_le_bytes([p[12], p[13], p[14], p[15]]))?;
                }
            }
        }
        _ => {}
    }
    Ok(kind)
}

/// Makes `head` (the first bytes of `source`) at least `len` bytes long, if the stream has them
/// and `len` is within [`MAX_METADATA_BYTES`]; returns whether it is.
fn fill(source: &mut dyn Read, head: &mut Vec<u8>, len: usize) -> Result<bool> {
    if head.len() < len && len <= MAX_METADATA_BYTES {
        let have = head.len();
        head.resize(len, 0);
        let n = read_full(source, &mut head[have..]).context("read error")?;
        head.truncate(have + n);
    }
    Ok(head.len() >= len)
}

/// Checks a Vorbis comment structure (`b`, lengths little-endian) against its own size:
/// symphonia allocates each comment at its declared length before reading it.
fn check_comment_lengths(b: &[u8], what: &str) -> Result<()> {
    let bad = || anyhow!("corrupt {what}: a length runs past its end");
    let u32_at = |at: usize| -> Result<usize> {
        let v = b.get(at..at + 4).ok_or_else(bad)?;
        Ok(u32::from_le_bytes([v[0], v[1], v[2], v[3]]) as usize)
    };
    let mut at = 4usize.checked_add(u32_at(0)?).ok_or_else(bad)?;
    let n = u32_at(at)?;
    at += 4;
    for _ in 0..n {
        at = (u32_at(at)?.checked_add(4))
            .and_then(|l| at.checked_add(l))
            .filter(|&e| e <= b.len())
            .ok_or_else(bad)?;
    }
    Ok(())
}

/// Walks the FLAC metadata blocks, checking the lengths inside the comment and picture blocks
/// against the block (symphonia allocates from them unchecked).
fn check_flac_metadata(source: &mut dyn Read, head: &mut Vec<u8>) -> Result<()> {
    let mut at = 4usize;
    loop {
        if !fill(source, head, at + 4)? {
            return Ok(()); // a cut header: symphonia reports it
        }
        let (last, kind) = (head[at] & 0x80 != 0, head[at] & 0x7F);
        let len = usize::from(head[at + 1]) << 16
            | usize::from(head[at + 2]) << 8
            | usize::from(head[at + 3]);
        let body = at + 4..at + 4 + len;
        if matches!(kind, 4 | 6) {
            // A block running past the end of the file (or past the read-ahead) is checked
            // against what there is: symphonia would read on into the audio frames.
            let complete = fill(source, head, body.end)?;
            let b = &head[body.start.min(head.len())..body.end.min(head.len())];
            if kind == 4 {
                check_comment_lengths(b, "FLAC comment block")?;
            } else {
                // Picture: type, MIME length + MIME, text length + text, 4 × 4 bytes, data
                // length + data (big-endian).
                let bad = || anyhow!("corrupt FLAC picture block: a length runs past its end");
                let u32_at = |at: usize| -> Result<usize> {
                    let v = b.get(at..at + 4).ok_or_else(bad)?;
                    Ok(u32::from_be_bytes([v[0], v[1], v[2], v[3]]) as usize)
                };
                let mut p = 4usize;
                for skip_after in [4usize, 20] {
                    p = (u32_at(p)?.checked_add(skip_after))
                        .and_then(|l| p.checked_add(l))
                        .ok_or_else(bad)?;
                }
                (u32_at(p)?.checked_add(4))
                    .and_then(|l| p.checked_add(l))
                    .filter(|&e| e <= b.len())
                    .ok_or_else(bad)?;
            }
            if !complete {
                return Ok(());
            }
        }
        at = body.end;
        if last || at > MAX_METADATA_BYTES {
            return Ok(());
        }
    }
}

/// Finds the second packet of an OGG stream (the Vorbis comment header) and checks its
/// lengths (symphonia allocates from them unchecked).
fn check_vorbis_comment(source: &mut dyn Read, head: &mut Vec<u8>) -> Result<()> {
    let mut at = 0usize;
    let mut packet = 0usize;
    let mut comment: Vec<u8> = Vec::new();
    while packet < 2 {
        if !fill(source, head, at + 27)? || &head[at..at + 4] != b"OggS" {
            return Ok(()); // symphonia resyncs or reports it
        }
        let segs = usize::from(head[at + 26]);
        if !fill(source, head, at + 27 + segs)? {
            return Ok(());
        }
        let lacing: Vec<usize> = head[at + 27..at + 27 + segs]
            .iter()
            .map(|&l| usize::from(l))
            .collect();
        let mut p = at + 27 + segs;
        if !fill(source, head, p + lacing.iter().sum::<usize>())? {
            return Ok(());
        }
        for l in lacing {
            if packet == 1 {
                comment.extend_from_slice(&head[p..p + l]);
            }
            p += l;
            if l < 255 {
                packet += 1;
                if packet == 2 {
                    break;
                }
            }
        }
        at = p;
    }
    if comment.starts_with(b"\x03vorbis") {
        check_comment_lengths(&comment[7..], "OGG comment header")?;
    }
    Ok(())
}

/// A non-seekable source whose first bytes were already read.
struct Replay<R> {
    head: std::io::Cursor<Vec<u8>>,
    rest: R,
}

impl<R: Read> Read for Replay<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.head.read(buf)?;
        if n > 0 {
            return Ok(n);
        }
        self.rest.read(buf)
    }
}

impl<R> Seek for Replay<R> {
    fn seek(&mut self, _: SeekFrom) -> std::io::Result<u64> {
        Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "a stream cannot seek",
        ))
    }
}

impl<R: Read + Send + Sync> MediaSource for Replay<R> {
    fn is_seekable(&self) -> bool {
        false
    }
    fn byte_len(&self) -> Option<u64> {
        None
    }
}

/// A stream that is not a regular file (FIFO, character device): never seekable, no length.
struct Stream(std::fs::File);

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

impl Seek for Stream {
    fn seek(&mut self, _: SeekFrom) -> std::io::Result<u64> {
        Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "a stream cannot seek",
        ))
    }
}

impl MediaSource for Stream {
    fn is_seekable(&self) -> bool {
        false
    }
    fn byte_len(&self) -> Option<u64> {
        None
    }
}

/// Opens a FIFO for reading without blocking on a missing writer, then waits at most `wait` for
/// its first data.
fn open_fifo(path: &Path, wait: Duration) -> Result<std::fs::File> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .context("cannot open file")?;
    let fd = file.as_raw_fd();
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = i32::try_from(wait.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: one valid pollfd for an open descriptor.
    let n = loop {
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n >= 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            break n;
        }
    };
    if n < 0 {
        return Err(std::io::Error::last_os_error()).context("waiting for the FIFO");
    }
    if n == 0 {
        bail!(
            "a FIFO with no writer (no data within {} s)",
            wait.as_secs()
        );
    }
    // Blocking reads from here on, as for any pipe.
    // SAFETY: fcntl on an open descriptor.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) < 0 {
            return Err(std::io::Error::last_os_error()).context("reading the FIFO");
        }
    }
    Ok(file)
}

/// Whether a seekable OGG file lacks its last page: no page ends exactly at the end of the file
/// (cut inside a page), or the one that does has no end-of-stream flag (cut between pages).
/// Leaves the source at its start.
fn ogg_last_page_missing(source: &mut Box<dyn MediaSource>) -> Result<bool> {
    let Some(len) = source.byte_len() else {
        return Ok(false);
    };
    // The largest OGG page: 27 header bytes, 255 lacing values, 255 × 255 body bytes.
    let tail_len = len.min(27 + 255 + 255 * 255);
    source
        .seek(SeekFrom::Start(len - tail_len))
        .context("read error")?;
    let mut tail = vec![0u8; tail_len as usize];
    let n = read_full(source, &mut tail).context("read error")?;
    tail.truncate(n);
    source.seek(SeekFrom::Start(0)).context("read error")?;
    let last = (0..tail.len().saturating_sub(27)).find(|&i| {
        if &tail[i..i + 4] != b"OggS" {
            return false;
        }
        let segs = usize::from(tail[i + 26]);
        let Some(lacing) = tail.get(i + 27..i + 27 + segs) else {
            return false;
        };
        let body: usize = lacing.iter().map(|&l| usize::from(l)).sum();
        i + 27 + segs + body == tail.len()
    });
    Ok(last.is_none_or(|i| tail[i + 5] & 0x04 == 0))
}

/// Reads until `buf` is full or the stream ends; returns bytes read.
fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
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

impl WavData {
    /// Fills `mono` with the next frames; false at the end of the data.
    fn next(
        &mut self,
        mono: &mut Vec<f32>,
        guard: &mut FiniteGuard,
        frames_out: u64,
        info: &StreamInfo,
    ) -> Result<bool> {
        let block = self.info.block();
        let channels = usize::from(self.info.channels);
        loop {
            let mut want = self.bytes.len();
            if let Some(r) = self.remaining {
                want = want.min(self.have + usize::try_from(r).unwrap_or(usize::MAX));
            }
            let got = read_full(&mut self.reader, &mut self.bytes[self.have..want])
                .with_context(|| format!("read error after {} s", seconds(frames_out, info)))?;
            if let Some(r) = &mut self.remaining {
                *r -= got as u64;
            }
            self.have += got;
            let whole = self.have / block * block;
            if whole == 0 {
                if got == 0 || self.remaining == Some(0) {
                    // The end (a partial last frame is ignored); a cut file is caught by the
                    // announced length.
                    return Ok(false);
                }
                continue;
            }
            let n = whole / block * channels;
            self.samples.resize(n, 0.0);
            decode_samples(self.info.format, &self.bytes[..whole], &mut self.samples);
            guard.clean(&mut self.samples, channels, frames_out);
            mono.clear();
            mono.resize(whole / block, 0.0);
            downmix(&self.samples, channels, mono);
            self.bytes.copy_within(whole..self.have, 0);
            self.have -= whole;
            return Ok(true);
        }
    }
}

fn seconds(frames: u64, info: &StreamInfo) -> String {
    format!("{:.1}", frames as f64 / f64::from(info.sample_rate))
}

impl Codec {
    /// Fills `mono` with the next packet's frames; false at the end of the stream.
    fn next(
        &mut self,
        mono: &mut Vec<f32>,
        guard: &mut FiniteGuard,
        frames_out: u64,
        info: &mut StreamInfo,
    ) -> Result<bool> {
        loop {
            let packet = match self.format.next_packet() {
                Ok(p) => p,
                Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    return Ok(false);
                }
                Err(SymError::ResetRequired) => {
                    // A chained stream with new parameters; not something a captioning file has.
                    bail!("the stream changes its parameters mid-file (unsupported)");
                }
                Err(SymError::DecodeError(msg)) => {
                    self.note_bad_packet(msg, frames_out, info)?;
                    continue;
                }
                Err(e) => bail!("read error after {} s: {e}", seconds(frames_out, info)),
            };
            if packet.track_id() != self.track_id {
                continue;
            }
            // A packet that starts later than its predecessor ended: packets were lost (an OGG
            // page dropped for a bad checksum).
            if let Some(expected) = self.next_ts {
                if packet.ts() > expected {
                    self.lost_frames += packet.ts() - expected;
                    self.first_damage
                        .get_or_insert(frames_out as f64 / f64::from(info.sample_rate));
                }
            }
            self.next_ts = Some(packet.ts() + packet.dur());
            let decoded = match self.decoder.decode(&packet) {
                Ok(d) => d,
                Err(SymError::DecodeError(msg)) => {
                    self.note_bad_packet(msg, frames_out, info)?;
                    continue;
                }
                Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    return Ok(false);
                }
                Err(e) => bail!("decode error after {} s: {e}", seconds(frames_out, info)),
            };
            self.consecutive_bad = 0;
            let spec = *decoded.spec();
            let frames = decoded.frames();
            if frames == 0 {
                continue;
            }
            let channels = spec.channels.count().max(1);
            if info.channels == 0 {
                info.channels = channels;
            }
            let needed = decoded.capacity() as u64;
            let buf = match &mut self.sample_buf {
                Some(b) if b.capacity() as u64 >= needed * channels as u64 => b,
                slot => slot.insert(SampleBuffer::<f32>::new(needed, spec)),
            };
            buf.copy_interleaved_ref(decoded);
            let interleaved = &mut buf.samples_mut()[..frames * channels];
            guard.clean(interleaved, channels, frames_out);
            mono.clear();
            mono.resize(frames, 0.0);
            downmix(interleaved, channels, mono);
            return Ok(true);
        }
    }

    fn note_bad_packet(&mut self, msg: &str, frames_out: u64, info: &StreamInfo) -> Result<()> {
        self.bad_packets += 1;
        self.consecutive_bad += 1;
        self.first_damage
            .get_or_insert(frames_out as f64 / f64::from(info.sample_rate));
        log::debug!(
            "skipping an undecodable packet after {} s: {msg}",
            seconds(frames_out, info)
        );
        if self.consecutive_bad >= MAX_CONSECUTIVE_BAD_PACKETS {
            bail!(
                "corrupt audio data: {} undecodable packets in a row after {} s ({msg})",
                self.consecutive_bad,
                seconds(frames_out, info)
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffing() {
        assert_eq!(
            sniff(b"RIFF\0\0\0\0WAVEfmt ").unwrap(),
            Kind::Wav { rf64: false }
        );
        assert_eq!(
            sniff(b"RF64\xff\xff\xff\xffWAVEds64").unwrap(),
            Kind::Wav { rf64: true }
        );
        assert_eq!(
            sniff(&[0, 0, 0, 0xFF, 0xFB, 0x90, 0x00]).unwrap(),
            Kind::Mp3
        );
        for bad in [
            &b"RIFX\0\0\0\0WAVEfmt "[..],
            b"FORM\0\0\0\0AIFF",
            &[0u8; 4096],
        ] {
            let e = sniff(bad).unwrap_err().to_string();
            assert!(e.contains("unknown or unsupported"), "{e}");
        }
        assert!(sniff(b"RIF").unwrap_err().to_string().contains("truncated"));
    }
}
