//! Decoding of every supported container/codec, any rate/channels, and bounded memory on very
//! long streams.

mod support;

use earshot::audio::decode::AudioDecoder;
use earshot::audio::resample::resample_all;
use earshot::audio::stream::WindowStream;
use std::io::{Read, Seek, SeekFrom};
use support::wav::{decode_all, wav_header};
use support::*;

fn rms(x: &[f32]) -> f64 {
    (x.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>() / x.len() as f64).sqrt()
}

/// Zero crossings per second of the middle half.
fn crossings_per_s(x: &[f32], rate: f64) -> f64 {
    let mid = &x[x.len() / 4..3 * x.len() / 4];
    let n = mid
        .windows(2)
        .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
        .count();
    n as f64 / (mid.len() as f64 / rate)
}

#[test]
fn flac_ogg_mp3_decode_to_mono() {
    let data = repo().join("tests/data");
    // (file, rate, channels, seconds, expected rms of the mono mix)
    let cases = [
        ("tone-22k-stereo.flac", 22050, 2, 1.0, 0.25),
        ("tone-44k1-stereo.ogg", 44100, 2, 1.5, 0.25),
        ("tone-48k-mono.mp3", 48000, 1, 1.5, 0.3536),
    ];
    for (name, rate, ch, secs, want_rms) in cases {
        let (info, mono) = decode_all(&data.join(name));
        assert_eq!(info.sample_rate, rate, "{name}");
        assert_eq!(info.channels, ch, "{name}");
        let dur = mono.len() as f64 / f64::from(rate);
        assert!((dur - secs).abs() < 0.06, "{name}: {dur} s");
        let r = rms(&mono[mono.len() / 4..3 * mono.len() / 4]);
        assert!((r - want_rms).abs() < 0.02, "{name}: rms {r}");
        let at16 = resample_all(&mono, rate, 16000).unwrap();
        assert!((at16.len() as f64 / 16000.0 - dur).abs() < 1e-3);
        if ch == 1 {
            let zc = crossings_per_s(&at16, 16000.0);
            assert!((zc - 880.0).abs() < 10.0, "{name}: {zc} crossings/s");
        }
    }
}

#[test]
fn wav_any_rate_and_channels() {
    let tmp = tempfile::tempdir().unwrap();
    for (rate, ch, kind) in [
        (8000u32, 1u16, WavKind::Pcm16),
        (44100, 2, WavKind::Pcm16),
        (96000, 6, WavKind::Float32),
    ] {
        let mono = signal(rate, 0.5);
        let inter: Vec<f32> = mono
            .iter()
            .flat_map(|&s| std::iter::repeat_n(s, ch as usize))
            .collect();
        let p = tmp.path().join(format!("x{rate}_{ch}.wav"));
        write_wav(&p, rate, ch, kind, &inter);
        let (info, out) = decode_all(&p);
        assert_eq!((info.sample_rate, info.channels), (rate, ch as usize));
        assert_eq!(out.len(), mono.len());
        let tol = if kind == WavKind::Pcm16 { 1e-4 } else { 1e-6 };
        let err = out
            .iter()
            .zip(&mono)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(err < tol, "{rate}/{ch}: {err}");
    }
}

/// A WAV file of any length produced on the fly, so a test can stream hours of audio without
/// writing them to disk.
struct SyntheticWav {
    header: Vec<u8>,
    frames: u64,
    pos: u64,
}

impl SyntheticWav {
    fn new(rate: u32, frames: u64) -> Self {
        SyntheticWav {
            header: wav_header(rate, 1, WavKind::Pcm16, frames),
            frames,
            pos: 0,
        }
    }
    fn len(&self) -> u64 {
        self.header.len() as u64 + 2 * self.frames
    }
    fn byte(&self, at: u64) -> u8 {
        let h = self.header.len() as u64;
        if at < h {
            return self.header[at as usize];
        }
        let i = (at - h) / 2;
        // A slow sawtooth: sample value depends on position only.
        let v = ((i % 400) as i32 * 100 - 20000) as i16;
        v.to_le_bytes()[((at - h) % 2) as usize]
    }
}

impl Read for SyntheticWav {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (self.len() - self.pos).min(buf.len() as u64) as usize;
        for (k, b) in buf[..n].iter_mut().enumerate() {
            *b = self.byte(self.pos + k as u64);
        }
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for SyntheticWav {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let p = match to {
            SeekFrom::Start(p) => p as i64,
            SeekFrom::End(d) => self.len() as i64 + d,
            SeekFrom::Current(d) => self.pos as i64 + d,
        };
        self.pos = p.max(0) as u64;
        Ok(self.pos)
    }
}

impl symphonia::core::io::MediaSource for SyntheticWav {
    fn is_seekable(&self) -> bool {
        true
    }
    fn byte_len(&self) -> Option<u64> {
        Some(self.len())
    }
}

#[test]
fn very_long_stream_uses_bounded_memory() {
    // Three hours at 8 kHz (86.4 M samples, 173 MB as a file) → 16 kHz, 10 s windows every 5 s.
    let rate = 8000u32;
    let frames = 3 * 3600 * u64::from(rate);
    let src = SyntheticWav::new(rate, frames);
    let mut dec = AudioDecoder::from_source(Box::new(src), Some("wav")).unwrap();
    let mut ws = WindowStream::new(rate, 16000, 160_000, 80_000).unwrap();
    let mut windows = 0u64;
    let mut last_end = 0u64;
    let mut peak = 0usize;
    while let Some(chunk) = dec.next_chunk().unwrap() {
        ws.push(chunk, |w| {
            assert_eq!(w.samples.len(), 160_000);
            assert_eq!(w.start, windows * 80_000);
            windows += 1;
            last_end = w.end();
            Ok(())
        })
        .unwrap();
        peak = peak.max(dec.buffered_capacity() + ws.buffered_capacity());
    }
    ws.finish(|w| {
        windows += 1;
        last_end = w.end();
        Ok(())
    })
    .unwrap();
    assert_eq!(dec.frames_decoded(), frames);
    let total16 = frames * 2;
    assert_eq!(last_end, total16);
    assert_eq!(windows, (total16 - 160_000) / 80_000 + 1);
    // Buffers hold about one window (160 k samples) plus a packet, never the stream.
    assert!(peak < 250_000, "peak buffered samples {peak}");
    eprintln!(
        "streamed {} samples in {windows} windows, peak buffered {peak} samples",
        frames
    );
}
