//! What a byte stream is, decided from its first bytes (never the extension), and the checks made
//! before symphonia sees it: metadata lengths it would allocate from (FLAC blocks, Vorbis
//! comments) must fit in the stream and in `MAX_METADATA_BYTES` (16 MiB); an OGG file must end with its
//! last page. Also the [`MediaSource`] adapters for unseekable input (FIFOs, devices, stdin): the
//! sniffed head is replayed in front of the rest, and a FIFO with no writer is given up after
//! [`FIFO_WAIT`].

use super::pcm::check_rate;
use anyhow::{anyhow, bail, Context, Result};
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::time::Duration;
use symphonia::core::io::MediaSource;

pub(crate) const UNKNOWN_FORMAT: &str =
    "unknown or unsupported audio format (earshot reads WAV, FLAC, OGG/Vorbis and MP3)";

/// How long a FIFO may have no writer (or no data) before it is given up.
pub const FIFO_WAIT: Duration = Duration::from_secs(10);
/// Bytes looked at to tell the format.
pub(crate) const SNIFF_BYTES: usize = 4096;
/// Metadata read ahead to check the lengths symphonia would allocate from.
pub(crate) const MAX_METADATA_BYTES: usize = 16 << 20;

/// What the first bytes say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Wav { rf64: bool },
    Flac,
    Ogg,
    Mp3,
}

impl Kind {
    pub(crate) fn ext(self) -> &'static str {
        match self {
            Kind::Wav { .. } => "wav",
            Kind::Flac => "flac",
            Kind::Ogg => "ogg",
            Kind::Mp3 => "mp3",
        }
    }
}

/// An MPEG audio frame header at `b[0..4]` (sync, version, layer, bit rate and rate fields valid).
pub(crate) fn mp3_frame_at(b: &[u8]) -> bool {
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
pub(crate) fn sniff(head: &[u8]) -> Result<Kind> {
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
pub(crate) fn fill(source: &mut dyn Read, head: &mut Vec<u8>, len: usize) -> Result<bool> {
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
pub(crate) fn check_comment_lengths(b: &[u8], what: &str) -> Result<()> {
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
pub(crate) fn check_flac_metadata(source: &mut dyn Read, head: &mut Vec<u8>) -> Result<()> {
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
pub(crate) fn check_vorbis_comment(source: &mut dyn Read, head: &mut Vec<u8>) -> Result<()> {
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
pub(crate) struct Replay<R> {
    pub(crate) head: std::io::Cursor<Vec<u8>>,
    pub(crate) rest: R,
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
pub(crate) struct Stream(pub(crate) std::fs::File);

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
pub(crate) fn open_fifo(path: &Path, wait: Duration) -> Result<std::fs::File> {
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
pub(crate) fn ogg_last_page_missing(source: &mut Box<dyn MediaSource>) -> Result<bool> {
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
pub(crate) fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
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
