//! Issue 13, audio input: every malformed or unusual input gives one clear line and a non-zero
//! exit (never a panic, never an allocation sized by a lying header, never a hang), the valid
//! unusual ones (streamed WAV, many channels, RF64, FIFOs) decode, and non-finite samples get
//! the same treatment on every path. Each test here failed before the fix.

mod support;

use earshot::audio::decode::AudioDecoder;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::json::json_lines;
use support::wav::WavSpec;
use support::{earshot_limited, finished, repo, Run};

/// The address-space limit of every run here: a 1.5 GiB board.
const LIMIT: u64 = 1536 << 20;

fn bundle() -> PathBuf {
    repo().join("tests/golden/tiny-bundle")
}

fn earshot() -> Command {
    earshot_limited(LIMIT)
}

fn run(args: &[&str]) -> Run {
    finished(earshot().args(args).output().unwrap())
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn good(dir: &Path, name: &str) -> PathBuf {
    WavSpec::pcm16(16000, 1, 3.0).write(dir, name)
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
    assert!(
        lines[0].contains(keyword),
        "'{keyword}' not in: {}",
        lines[0]
    );
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

/// The FLAC fixture with another sample rate in its STREAMINFO block (20 bits at byte 18).
fn flac_with_rate(rate: u32) -> Vec<u8> {
    let mut b = std::fs::read(repo().join("tests/data/tone-22k-stereo.flac")).unwrap();
    assert_eq!(&b[..4], b"fLaC");
    b[18] = (rate >> 12) as u8;
    b[19] = (rate >> 4) as u8;
    b[20] = (b[20] & 0x0F) | (((rate & 0xF) as u8) << 4);
    b
}

#[test]
fn implausible_sample_rates_are_rejected_on_every_file_path() {
    let tmp = tempfile::tempdir().unwrap();
    for rate in [4_294_967_291u32, 4_294_967_295, 100_000_000, 768_001, 999] {
        let p = WavSpec::pcm16(rate, 1, 1.0).write(tmp.path(), &format!("r{rate}.wav"));
        let line = caption_rejects(&p, "sample rate");
        assert!(line.contains("1000") && line.contains("768000"), "{line}");
        listen_rejects(&p, "sample rate");
        let r = run(&["bench", "--model", &s(&bundle()), "--input", &s(&p)]);
        assert_eq!(r.code, 1, "{}", r.stderr);
        assert!(r.stderr.contains("sample rate"), "{}", r.stderr);
        let e = AudioDecoder::open(&p).unwrap_err();
        assert!(format!("{e:#}").contains("sample rate"), "{e:#}");
    }
    // The same rule for the other containers (FLAC allows up to 1048575 Hz).
    let p = tmp.path().join("fast.flac");
    std::fs::write(&p, flac_with_rate(1_048_575)).unwrap();
    caption_rejects(&p, "sample rate");
    // The edges of the range are accepted.
    for rate in [1000u32, 768_000] {
        let p = WavSpec::pcm16(rate, 1, 1.0).write(tmp.path(), &format!("ok{rate}.wav"));
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
fn zero_hz_is_an_error_not_a_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let p = WavSpec::pcm16(0, 1, 1.0).write(tmp.path(), "zero-hz.wav");
    caption_rejects(&p, "sample rate");
    listen_rejects(&p, "sample rate");
    let p = tmp.path().join("zero-hz.flac");
    std::fs::write(&p, flac_with_rate(0)).unwrap();
    caption_rejects(&p, "sample rate");
}

#[test]
fn streamed_wav_with_unknown_sizes_decodes() {
    let tmp = tempfile::tempdir().unwrap();
    // ffmpeg to a pipe writes 0xFFFFFFFF; arecord writes 0x7FFFFFFF.
    for size in [0xFFFF_FFFFu32, 0x7FFF_FFFF] {
        let mut w = WavSpec::pcm16(16000, 1, 3.0);
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
            let mut w = WavSpec::pcm16(16000, ch, 1.0);
            w.extensible = ext;
            let p = w.write(tmp.path(), &format!("c{ch}{ext}.wav"));
            let mut d = AudioDecoder::open(&p).unwrap_or_else(|e| panic!("{ch} ch: {e:#}"));
            assert_eq!(d.info().channels, usize::from(ch));
            let mut mono = Vec::new();
            while let Some(c) = d.next_chunk().unwrap() {
                mono.extend_from_slice(c);
            }
            assert_eq!(mono.len(), 16_000, "{ch} channels");
            // Every channel carries the same tone: the downmix is that tone.
            let err = (0..mono.len())
                .map(|i| (f64::from(mono[i]) - w.value(i) * 0.99).abs())
                .fold(0f64, f64::max);
            assert!(err < 1e-3, "{ch} channels: {err}");
        }
    }
    let p = WavSpec::pcm16(16000, 64, 3.0).write(tmp.path(), "c64.wav");
    let r = run(&["caption", "--model", &s(&bundle()), &s(&p)]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[test]
fn other_containers_say_unknown_or_unsupported_format() {
    let tmp = tempfile::tempdir().unwrap();
    let wav = WavSpec::pcm16(16000, 1, 3.0).bytes();
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
    let wav = WavSpec::pcm16(16000, 1, 3.0).bytes();
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
    let bytes = WavSpec::pcm16(16000, 1, 3.0).bytes();
    let f2 = fifo.clone();
    let writer = std::thread::spawn(move || {
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
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
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
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
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
    for (name, cut) in [
        ("mid.ogg", b.len() / 2),
        ("page.ogg", pages[pages.len() / 2]),
    ] {
        let p = tmp.path().join(name);
        std::fs::write(&p, &b[..cut]).unwrap();
        let line = caption_rejects(&p, "truncated");
        let secs = line.split_whitespace().filter(|w| w.parse::<f64>().is_ok());
        assert_eq!(secs.count(), 1, "names the seconds read: {line}");
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
    eprintln!("{}", r.stderr);
    assert!(
        r.stderr.contains("lost") || r.stderr.contains("corrupt"),
        "no word about the missing seconds: {}",
        r.stderr
    );
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
}

/// (start, end, caption) of the caption lines of a JSON-lines output.
fn caption_list(jsonl: &str) -> Vec<(f64, f64, String)> {
    json_lines(jsonl)
        .into_iter()
        .filter(|e| e.get("event").is_none_or(|k| k == "caption"))
        .map(|e| {
            (
                e["start"].as_f64().unwrap(),
                e["end"].as_f64().unwrap(),
                e["caption"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The one warning line about non-finite samples in `stderr`.
fn one_non_finite_warning(what: &str, stderr: &str) {
    let warn: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("non-finite"))
        .collect();
    assert_eq!(warn.len(), 1, "{what}: {stderr}");
    assert!(warn[0].contains("replaced by 0"), "{what}: {}", warn[0]);
}

#[test]
fn non_finite_samples_are_zeroed_and_warned_about_on_every_path() {
    let tmp = tempfile::tempdir().unwrap();
    let b = s(&bundle());
    // 23 s: four 10 s windows every 5 s; a NaN in the second window and an Inf in the third.
    let mut w = WavSpec::float32(16000, 1, 23.0);
    w.poke = Some((16000 * 7, f64::NAN));
    let nan = w.write(tmp.path(), "nan.wav");
    let mut bytes = std::fs::read(&nan).unwrap();
    let at = 44 + 4 * 16000 * 12;
    bytes[at..at + 4].copy_from_slice(&f32::INFINITY.to_le_bytes());
    std::fs::write(&nan, &bytes).unwrap();
    let n = s(&nan);
    let common = ["--model", &b, "--holdoff", "0", "--format", "jsonl"];
    let gate = ["--gate-dbfs", "-60"];

    let r = run(&["caption", "--model", &b, &n, "--format", "jsonl"]);
    assert_eq!(r.code, 0, "caption: {}", r.stderr);
    one_non_finite_warning("caption", &r.stderr);
    let expected = caption_list(&r.stdout);
    assert_eq!(expected.len(), 4, "every window captioned: {}", r.stdout);

    let mut args = vec!["listen", "--file", &n, "--fast"];
    args.extend(common);
    args.extend(gate);
    let r = run(&args);
    assert_eq!(r.code, 0, "listen --file: {}", r.stderr);
    one_non_finite_warning("listen --file", &r.stderr);
    assert_eq!(caption_list(&r.stdout), expected, "listen --file");

    let cfg = tmp.path().join("queue.toml");
    std::fs::write(&cfg, "[captions]\nqueue_windows = 8\n").unwrap();
    let c = s(&cfg);
    let mut args = vec!["listen", "--stdin", "--config", &c];
    args.extend(common);
    args.extend(gate);
    let r = finished(
        earshot()
            .args(&args)
            .stdin(std::fs::File::open(&nan).unwrap())
            .output()
            .unwrap(),
    );
    assert_eq!(r.code, 0, "listen --stdin: {}", r.stderr);
    one_non_finite_warning("listen --stdin", &r.stderr);
    assert_eq!(caption_list(&r.stdout), expected, "listen --stdin");
}

/// Mono samples of `bytes` decoded by symphonia itself (the reference the WAV reader replaced;
/// the test below guards the "keep" list of issue 13, it is not a regression test).
fn symphonia_mono(bytes: Vec<u8>) -> Vec<f32> {
    use symphonia::core::audio::SampleBuffer;
    use symphonia::core::io::MediaSourceStream;
    let mss = MediaSourceStream::new(Box::new(std::io::Cursor::new(bytes)), Default::default());
    let mut hint = symphonia::core::probe::Hint::new();
    hint.with_extension("wav");
    let mut format = symphonia::default::get_probe()
        .format(&hint, mss, &Default::default(), &Default::default())
        .unwrap()
        .format;
    let params = format.tracks()[0].codec_params.clone();
    let mut dec = symphonia::default::get_codecs()
        .make(&params, &Default::default())
        .unwrap();
    let mut out = Vec::new();
    while let Ok(p) = format.next_packet() {
        let d = dec.decode(&p).unwrap();
        let ch = d.spec().channels.count();
        let mut buf = SampleBuffer::<f32>::new(d.capacity() as u64, *d.spec());
        buf.copy_interleaved_ref(d);
        out.extend(
            buf.samples()
                .chunks_exact(ch)
                .map(|f| f.iter().sum::<f32>() / ch as f32),
        );
    }
    out
}

#[test]
fn every_wav_encoding_decodes_as_symphonia_did() {
    let tmp = tempfile::tempdir().unwrap();
    for (tag, bits) in [
        (1u16, 8u16),
        (1, 16),
        (1, 24),
        (1, 32),
        (3, 32),
        (3, 64),
        (6, 8),
        (7, 8),
    ] {
        for (channels, rate, ext) in [
            (1u16, 8000u32, false),
            (6, 44_100, true),
            (2, 768_000, false),
        ] {
            let mut w = WavSpec::pcm16(rate, channels, 0.25);
            // symphonia has no extensible G.711 to compare with.
            (w.tag, w.bits, w.extensible) = (tag, bits, ext && tag < 6);
            let name = format!("t{tag}b{bits}c{channels}.wav");
            let p = w.write(tmp.path(), &name);
            let want = symphonia_mono(w.bytes());
            let mut d = AudioDecoder::open(&p).unwrap_or_else(|e| panic!("{name}: {e:#}"));
            assert_eq!(d.info().sample_rate, rate);
            assert_eq!(d.info().channels, usize::from(channels));
            let mut got = Vec::new();
            while let Some(c) = d.next_chunk().unwrap() {
                got.extend_from_slice(c);
            }
            assert_eq!(got.len(), want.len(), "{name}");
            let err = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(err < 1e-6, "{name}: max difference {err}");
        }
    }
}

/// OGG page checksum (CRC-32, polynomial 0x04C11DB7, unreflected, initial 0).
fn ogg_crc(page: &[u8]) -> u32 {
    let mut crc = 0u32;
    for &b in page {
        crc ^= u32::from(b) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04C1_1DB7
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// Found by tests/fuzz_decode.rs: a comment length of 4 GB inside a FLAC comment block (or an
/// OGG comment header with a valid checksum) made symphonia allocate 4 GB before reading it.
#[test]
fn lying_comment_lengths_are_rejected_before_allocating() {
    let tmp = tempfile::tempdir().unwrap();
    // FLAC: the fixture's comment block (after the 34-byte STREAMINFO) has vendor, count, and
    // its first comment's length at 4 + 4 + vendor + 4.
    let mut flac = std::fs::read(repo().join("tests/data/tone-22k-stereo.flac")).unwrap();
    let block = 4 + 4 + 34;
    assert_eq!(flac[block] & 0x7F, 4, "a comment block");
    let body = block + 4;
    let vendor = u32::from_le_bytes(flac[body..body + 4].try_into().unwrap()) as usize;
    let first = body + 4 + vendor + 4;
    flac[first..first + 4].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    let p = tmp.path().join("comment.flac");
    std::fs::write(&p, &flac).unwrap();
    caption_rejects(&p, "corrupt FLAC comment block");
    // OGG: the same in the comment header, with the page checksum recomputed.
    let mut b = ogg();
    let i = b.windows(7).position(|w| w == b"\x03vorbis").unwrap();
    let vendor = u32::from_le_bytes(b[i + 7..i + 11].try_into().unwrap()) as usize;
    let first = i + 7 + 4 + vendor + 4;
    b[first..first + 4].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    let page = ogg_pages(&b).into_iter().rfind(|&p| p < i).unwrap();
    let segs = usize::from(b[page + 26]);
    let len: usize = 27
        + segs
        + b[page + 27..page + 27 + segs]
            .iter()
            .map(|&l| usize::from(l))
            .sum::<usize>();
    b[page + 22..page + 26].fill(0);
    let crc = ogg_crc(&b[page..page + len]);
    b[page + 22..page + 26].copy_from_slice(&crc.to_le_bytes());
    let p = tmp.path().join("comment.ogg");
    std::fs::write(&p, &b).unwrap();
    caption_rejects(&p, "corrupt OGG comment header");
}
