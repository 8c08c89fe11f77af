//! Issue 13, audio input: every malformed or unusual input header gives one clear line and a
//! non-zero exit (never a panic, never an allocation sized by a lying header), and the valid
//! unusual ones (streamed WAV, many channels, RF64) decode. Each test here failed before the fix.
//! Helpers are local on purpose (no shared test module needed).

use assert_cmd::cargo::CommandCargoExt;
use earshot::audio::decode::AudioDecoder;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn bundle() -> PathBuf {
    repo().join("tests/golden/tiny-bundle")
}

/// The binary under a 1.5 GiB address-space limit (as on a small board): an allocation sized
/// from a header fails instead of succeeding on a big machine.
fn earshot() -> Command {
    let mut c = Command::cargo_bin("earshot").unwrap();
    c.env_remove("EARSHOT_MODEL")
        .env_remove("RUST_LOG")
        .env_remove("RUST_BACKTRACE");
    unsafe {
        c.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 1536 << 20,
                rlim_max: 1536 << 20,
            };
            libc::setrlimit(libc::RLIMIT_AS, &lim);
            Ok(())
        });
    }
    c
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(args: &[&str]) -> Run {
    let out = earshot().args(args).output().unwrap();
    let r = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(
        !r.stderr.contains("panicked") && !r.stderr.contains("internal error"),
        "panic: {}",
        r.stderr
    );
    r
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// A WAV file description; `bytes()` writes it.
#[derive(Clone)]
struct Wav {
    tag: u16,
    channels: u16,
    rate: u32,
    bits: u16,
    frames: usize,
    extensible: bool,
    riff_size: Option<u32>,
    data_size: Option<u32>,
}

impl Wav {
    fn pcm16(rate: u32, channels: u16, seconds: f64) -> Wav {
        Wav {
            tag: 1,
            channels,
            rate,
            bits: 16,
            frames: (seconds * f64::from(rate.clamp(1, 48_000))) as usize,
            extensible: false,
            riff_size: None,
            data_size: None,
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let container = usize::from(self.bits).div_ceil(8);
        let block = container * usize::from(self.channels);
        let mut data = Vec::with_capacity(block * self.frames);
        for i in 0..self.frames {
            let v = (2.0 * std::f64::consts::PI * 440.0 * i as f64 / 16000.0).sin() * 0.3;
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
        let mut fmt = Vec::new();
        fmt.extend_from_slice(&(if self.extensible { 0xFFFE } else { self.tag }).to_le_bytes());
        fmt.extend_from_slice(&self.channels.to_le_bytes());
        fmt.extend_from_slice(&self.rate.to_le_bytes());
        fmt.extend_from_slice(&(self.rate.wrapping_mul(block as u32)).to_le_bytes());
        fmt.extend_from_slice(&(block as u16).to_le_bytes());
        fmt.extend_from_slice(&self.bits.to_le_bytes());
        if self.extensible {
            fmt.extend_from_slice(&22u16.to_le_bytes());
            fmt.extend_from_slice(&self.bits.to_le_bytes());
            fmt.extend_from_slice(&0u32.to_le_bytes()); // no speaker positions
            fmt.extend_from_slice(&self.tag.to_le_bytes());
            fmt.extend_from_slice(&[
                0, 0, 0, 0, 0x10, 0, 0x80, 0, 0, 0xAA, 0, 0x38, 0x9B, 0x71,
            ]);
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

    fn write(&self, dir: &Path, name: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, self.bytes()).unwrap();
        p
    }
}

fn good(dir: &Path, name: &str) -> PathBuf {
    Wav::pcm16(16000, 1, 3.0).write(dir, name)
}

/// `caption first.wav BAD last.wav`: one error line naming BAD containing `keyword`, exit 1, and
/// both good files captioned.
fn caption_rejects(bad: &Path, keyword: &str) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let first = good(tmp.path(), "first.wav");
    let last = good(tmp.path(), "last.wav");
    let b = s(&bundle());
    let r = run(&["caption", "--model", &b, &s(&first), &s(bad), &s(&last)]);
    assert_eq!(r.code, 1, "{}: {}", s(bad), r.stderr);
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one stderr line expected: {}", r.stderr);
    assert!(lines[0].contains(&s(bad)), "{}", lines[0]);
    assert!(lines[0].contains(keyword), "'{keyword}' not in: {}", lines[0]);
    assert!(r.stdout.contains("first.wav: ["), "{}", r.stdout);
    assert!(r.stdout.contains("last.wav: ["), "{}", r.stdout);
    lines[0].to_string()
}

/// `listen --file BAD --fast`: exit 1 with one error line containing `keyword`, naming the file
/// once.
fn listen_rejects(bad: &Path, keyword: &str) {
    let b = s(&bundle());
    let r = run(&["listen", "--model", &b, "--file", &s(bad), "--fast"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let err: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.starts_with("earshot: error"))
        .collect();
    assert_eq!(err.len(), 1, "{}", r.stderr);
    assert!(err[0].contains(keyword), "'{keyword}' not in {}", err[0]);
    assert_eq!(err[0].matches(&s(bad)).count(), 1, "{}", err[0]);
}

#[test]
fn implausible_sample_rates_are_rejected_on_every_file_path() {
    let tmp = tempfile::tempdir().unwrap();
    for rate in [4_294_967_291u32, 4_294_967_295, 100_000_000, 768_001, 999] {
        let p = Wav::pcm16(rate, 1, 1.0).write(tmp.path(), &format!("r{rate}.wav"));
        let line = caption_rejects(&p, "sample rate");
        assert!(line.contains("1000") && line.contains("768000"), "{line}");
        listen_rejects(&p, "sample rate");
        let r = run(&["bench", "--model", &s(&bundle()), "--input", &s(&p)]);
        assert_ne!(r.code, 0);
        assert!(r.stderr.contains("sample rate"), "{}", r.stderr);
        let e = AudioDecoder::open(&p).unwrap_err();
        assert!(format!("{e:#}").contains("sample rate"), "{e:#}");
    }
    // The edges of the range are accepted.
    for rate in [1000u32, 768_000] {
        let p = Wav::pcm16(rate, 1, 1.0).write(tmp.path(), &format!("ok{rate}.wav"));
        let d = AudioDecoder::open(&p).unwrap();
        assert_eq!(d.info().sample_rate, rate);
    }
}

#[test]
fn resampler_refuses_implausible_rates() {
    use earshot::audio::resample::Resampler;
    assert!(Resampler::new(4_294_967_291, 16000).is_err());
    assert!(Resampler::new(16000, 100_000_000).is_err());
    assert!(Resampler::new(48000, 16000).is_ok());
}

#[test]
fn zero_hz_wav_is_an_error_not_a_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let p = Wav::pcm16(0, 1, 1.0).write(tmp.path(), "zero-hz.wav");
    caption_rejects(&p, "sample rate");
    listen_rejects(&p, "sample rate");
}

#[test]
fn streamed_wav_with_unknown_sizes_decodes() {
    let tmp = tempfile::tempdir().unwrap();
    // ffmpeg to a pipe writes 0xFFFFFFFF; arecord writes 0x7FFFFFFF.
    for size in [0xFFFF_FFFFu32, 0x7FFF_FFFF] {
        let mut w = Wav::pcm16(16000, 1, 3.0);
        w.riff_size = Some(size);
        w.data_size = Some(size);
        let p = w.write(tmp.path(), &format!("stream{size:x}.wav"));
        let mut d = AudioDecoder::open(&p).unwrap();
        let mut n = 0;
        while let Some(c) = d.next_chunk().unwrap() {
            n += c.len();
        }
        assert_eq!(n, 48_000);
        let r = run(&["caption", "--model", &s(&bundle()), &s(&p)]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert!(r.stderr.is_empty(), "{}", r.stderr);
    }
}

#[test]
fn many_channels_decode() {
    let tmp = tempfile::tempdir().unwrap();
    for ch in [31u16, 32, 64, 256] {
        for ext in [false, true] {
            let mut w = Wav::pcm16(16000, ch, 1.0);
            w.extensible = ext;
            let p = w.write(tmp.path(), &format!("c{ch}{ext}.wav"));
            let mut d = AudioDecoder::open(&p).unwrap_or_else(|e| panic!("{ch} ch: {e:#}"));
            assert_eq!(d.info().channels, usize::from(ch));
            let mut n = 0;
            while let Some(c) = d.next_chunk().unwrap() {
                n += c.len();
            }
            assert_eq!(n, 16_000, "{ch} channels");
        }
    }
    let p = Wav::pcm16(16000, 64, 3.0).write(tmp.path(), "c64.wav");
    let r = run(&["caption", "--model", &s(&bundle()), &s(&p)]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[test]
fn other_containers_say_unknown_or_unsupported_format() {
    let tmp = tempfile::tempdir().unwrap();
    let wav = Wav::pcm16(16000, 1, 3.0).bytes();
    let mut aiff = b"FORM\0\0\x10\0AIFFCOMM".to_vec();
    aiff.extend_from_slice(&wav[20..]);
    let mut rifx = wav.clone();
    rifx[..4].copy_from_slice(b"RIFX");
    let mut avi = wav.clone();
    avi[8..12].copy_from_slice(b"AVI ");
    // 3 MB of pseudo-random bytes (a large random file).
    let mut x = 0x1234_5678u64;
    let random: Vec<u8> = (0..3_000_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    for (name, bytes) in [
        ("a.aiff", aiff),
        ("b.wav", rifx),
        ("c.avi", avi),
        ("random.wav", random),
    ] {
        let p = tmp.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        caption_rejects(&p, "unknown or unsupported audio format");
    }
}

#[test]
fn rf64_decodes() {
    let tmp = tempfile::tempdir().unwrap();
    let wav = Wav::pcm16(16000, 1, 3.0).bytes();
    // RF64: sizes 0xFFFFFFFF, the real ones in a ds64 chunk before fmt.
    let data_len = (wav.len() - 44) as u64;
    let mut rf = b"RF64".to_vec();
    rf.extend_from_slice(&0xFFFF_FFFFu32.to_le_bytes());
    rf.extend_from_slice(b"WAVEds64");
    rf.extend_from_slice(&28u32.to_le_bytes());
    rf.extend_from_slice(&(wav.len() as u64 + 36 - 8).to_le_bytes());
    rf.extend_from_slice(&data_len.to_le_bytes());
    rf.extend_from_slice(&(data_len / 2).to_le_bytes());
    rf.extend_from_slice(&0u32.to_le_bytes());
    rf.extend_from_slice(&wav[12..40]);
    rf.extend_from_slice(&0xFFFF_FFFFu32.to_le_bytes());
    rf.extend_from_slice(&wav[44..]);
    let p = tmp.path().join("big.wav");
    std::fs::write(&p, &rf).unwrap();
    let mut d = AudioDecoder::open(&p).unwrap();
    let mut n = 0;
    while let Some(c) = d.next_chunk().unwrap() {
        n += c.len();
    }
    assert_eq!(n, 48_000);
    // Cut in half: the ds64 size tells.
    std::fs::write(&p, &rf[..rf.len() / 2]).unwrap();
    caption_rejects(&p, "truncated");
}

#[test]
fn devices_are_read_not_called_empty() {
    let r = run(&["caption", "--model", &s(&bundle()), "/dev/zero"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("unknown or unsupported audio format"),
        "{}",
        r.stderr
    );
    let r = run(&["caption", "--model", &s(&bundle()), "/dev/urandom"]);
    assert_eq!(r.code, 1);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(!r.stderr.contains("empty file"), "{}", r.stderr);
}

fn mkfifo(p: &Path) {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

#[test]
fn fifo_with_data_is_captioned() {
    let tmp = tempfile::tempdir().unwrap();
    let fifo = tmp.path().join("pipe.wav");
    mkfifo(&fifo);
    let bytes = Wav::pcm16(16000, 1, 3.0).bytes();
    let f2 = fifo.clone();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().write(true).open(&f2).unwrap();
        let _ = f.write_all(&bytes);
    });
    let r = run(&["caption", "--model", &s(&bundle()), &s(&fifo)]);
    writer.join().unwrap();
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("[00:00.0"), "{}", r.stdout);
}

#[test]
fn fifo_without_writer_gives_up() {
    let tmp = tempfile::tempdir().unwrap();
    let fifo = tmp.path().join("lonely.wav");
    mkfifo(&fifo);
    let t = Instant::now();
    let mut child = earshot()
        .args(["caption", "--model", &s(&bundle()), &s(&fifo)])
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if t.elapsed() > Duration::from_secs(30) {
            child.kill().unwrap();
            // Unblock a reader stuck in open(2) so the test does not leave it behind.
            let _ = std::fs::OpenOptions::new().write(true).open(&fifo);
            panic!("a FIFO with no writer hangs");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    use std::io::Read;
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("no writer"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn corrupt_mp3_prints_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let mut m = std::fs::read(repo().join("tests/data/tone-48k-mono.mp3")).unwrap();
    let n = m.len();
    for i in (n / 3..n).step_by(50) {
        m[i] ^= 0xff;
    }
    let p = tmp.path().join("bad.mp3");
    std::fs::write(&p, &m).unwrap();
    let r = run(&["caption", "--model", &s(&bundle()), &s(&p)]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
}

fn ogg() -> Vec<u8> {
    std::fs::read(repo().join("tests/data/noise-16k-mono-12s.ogg")).unwrap()
}

fn ogg_pages(b: &[u8]) -> Vec<usize> {
    (0..b.len().saturating_sub(4))
        .filter(|&i| &b[i..i + 4] == b"OggS")
        .collect()
}

#[test]
fn truncated_ogg_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let b = ogg();
    let pages = ogg_pages(&b);
    // Cut inside a page, and cut exactly at a page boundary.
    for (name, cut) in [("mid.ogg", b.len() / 2), ("page.ogg", pages[pages.len() / 2])] {
        let p = tmp.path().join(name);
        std::fs::write(&p, &b[..cut]).unwrap();
        caption_rejects(&p, "truncated");
        listen_rejects(&p, "truncated");
    }
}

#[test]
fn corrupt_ogg_page_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let mut b = ogg();
    let pages = ogg_pages(&b);
    let at = pages[pages.len() / 2] + 100;
    for x in &mut b[at..at + 40] {
        *x ^= 0x5a;
    }
    let p = tmp.path().join("damaged.ogg");
    std::fs::write(&p, &b).unwrap();
    let r = run(&["caption", "--model", &s(&bundle()), &s(&p)]);
    assert!(
        r.stderr.contains("lost") || r.stderr.contains("corrupt"),
        "no word about the missing seconds: {}",
        r.stderr
    );
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
}
