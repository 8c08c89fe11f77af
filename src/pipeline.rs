//! The data flow for one stream: samples at the source rate → resample to the model rate →
//! sliding windows → captioner → caption events. [`WindowStream`] is source-agnostic (files,
//! microphones, synthetic sources); [`caption_file`] drives it from an audio file.
//!
//! Memory is bounded: the decoder holds one packet, the resampler one chunk, the chunker one
//! window — independent of the length of the file.

use crate::audio::decode::{AudioDecoder, StreamInfo};
use crate::audio::resample::Resampler;
use crate::audio::window::{Chunker, Window};
use crate::captioner::{Caption, Captioner};
use anyhow::{bail, Context, Result};
use std::path::Path;

/// Audio shorter than this (after decoding) is rejected as "too short to caption".
pub const MIN_AUDIO_SECONDS: f64 = 0.1;

/// A caption with its place in the stream.
#[derive(Debug, Clone, PartialEq)]
pub struct CaptionEvent {
    /// File path or source name.
    pub source: String,
    /// Window start, seconds from the start of the stream.
    pub start: f64,
    /// End of the real audio in the window, seconds.
    pub end: f64,
    pub caption: Caption,
}

/// Resampler + chunker for one stream.
#[derive(Debug)]
pub struct WindowStream {
    resampler: Resampler,
    chunker: Chunker,
    scratch: Vec<f32>,
    rate: u32,
}

impl WindowStream {
    /// `in_rate`: the source's rate; `rate`: the model's rate; `window`, `hop` in model samples.
    pub fn new(in_rate: u32, rate: u32, window: usize, hop: usize) -> Result<WindowStream> {
        Ok(WindowStream {
            resampler: Resampler::new(in_rate, rate)?,
            chunker: Chunker::new(window, hop),
            scratch: Vec::new(),
            rate,
        })
    }

    /// Model-rate samples seen so far.
    pub fn samples_out(&self) -> u64 {
        self.chunker.total()
    }

    /// Model sample rate.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// Samples held in buffers right now (bounded; for tests and health reports).
    pub fn buffered_capacity(&self) -> usize {
        self.chunker.capacity() + self.scratch.capacity()
    }

    /// Feeds source-rate mono samples; full windows go to `on_window`.
    pub fn push(
        &mut self,
        samples: &[f32],
        on_window: impl FnMut(Window<'_>) -> Result<()>,
    ) -> Result<()> {
        self.scratch.clear();
        let scratch = &mut self.scratch;
        self.resampler
            .push(samples, |s| scratch.extend_from_slice(s))?;
        self.chunker.push(&self.scratch, on_window)
    }

    /// Ends the stream: flushes the resampler and emits the zero-padded last window, if any.
    pub fn finish(&mut self, mut on_window: impl FnMut(Window<'_>) -> Result<()>) -> Result<()> {
        self.scratch.clear();
        let scratch = &mut self.scratch;
        self.resampler.finish(|s| scratch.extend_from_slice(s))?;
        self.chunker.push(&self.scratch, &mut on_window)?;
        self.chunker.finish(on_window)
    }

    /// Forgets the stream (e.g. after a capture device was rebuilt).
    pub fn reset(&mut self) {
        self.resampler.reset();
        self.chunker.reset();
    }
}

/// Rejects non-finite samples. Policy: NaN/Inf means the data is corrupt, and captions of
/// sanitised garbage would be misleading, so the file is rejected with the position of the first
/// bad sample.
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

/// What [`caption_file`] saw.
#[derive(Debug, Clone)]
pub struct FileReport {
    pub stream: StreamInfo,
    /// Decoded duration in seconds.
    pub duration: f64,
    pub windows: usize,
}

/// Decodes, resamples, windows and captions one file. Captions are handed to `on_caption` as
/// soon as each window is done (so they appear while a long file is still being read).
pub fn caption_file(
    path: &Path,
    captioner: &mut Captioner,
    hop_samples: usize,
    mut on_caption: impl FnMut(CaptionEvent) -> Result<()>,
) -> Result<FileReport> {
    let mut decoder = AudioDecoder::open(path)?;
    let info = decoder.info().clone();
    log::debug!("{}: {:?}", path.display(), info);
    let rate = captioner.model().sample_rate();
    let mut stream = WindowStream::new(
        info.sample_rate,
        rate,
        captioner.window_samples(),
        hop_samples,
    )?;
    let source = path.display().to_string();
    let mut windows = 0usize;
    let mut emit = |w: Window<'_>| -> Result<()> {
        let start = w.start as f64 / f64::from(rate);
        let end = w.end() as f64 / f64::from(rate);
        let caption = captioner
            .caption(w.samples, w.valid)
            .with_context(|| format!("captioning {}–{}", format_time(start), format_time(end)))?;
        log::debug!(
            "{source} [{:.1}-{:.1}] front end {:.1} ms, encoder {:.1} ms, decoder {:.1} ms ({} steps)",
            start,
            end,
            caption.timings.frontend_ms,
            caption.timings.encoder_ms,
            caption.timings.decoder_ms,
            caption.timings.decoder_steps
        );
        windows += 1;
        on_caption(CaptionEvent {
            source: source.clone(),
            start,
            end,
            caption,
        })
    };
    loop {
        let offset = decoder.frames_decoded();
        let Some(chunk) = decoder.next_chunk()? else {
            break;
        };
        check_finite(chunk, offset, info.sample_rate)?;
        stream.push(chunk, &mut emit)?;
    }
    let frames = decoder.frames_decoded();
    let duration = frames as f64 / f64::from(info.sample_rate);
    if frames == 0 {
        bail!("no audio: the file contains no samples");
    }
    if duration < MIN_AUDIO_SECONDS {
        bail!(
            "audio too short: {:.3} s (at least {MIN_AUDIO_SECONDS} s needed)",
            duration
        );
    }
    stream.finish(&mut emit)?;
    Ok(FileReport {
        stream: info,
        duration,
        windows,
    })
}

/// `mm:ss.s`, or `h:mm:ss.s` from one hour on.
pub fn format_time(seconds: f64) -> String {
    let tenths = (seconds.max(0.0) * 10.0).round() as u64;
    let (h, rem) = (tenths / 36000, tenths % 36000);
    let (m, rem) = (rem / 600, rem % 600);
    let (s, t) = (rem / 10, rem % 10);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}.{t}")
    } else {
        format!("{m:02}:{s:02}.{t}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_format() {
        assert_eq!(format_time(0.0), "00:00.0");
        assert_eq!(format_time(10.04), "00:10.0");
        assert_eq!(format_time(65.25), "01:05.3");
        assert_eq!(format_time(3600.0), "1:00:00.0");
        assert_eq!(format_time(3725.5), "1:02:05.5");
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
    fn window_stream_resamples_and_windows() {
        // 3 s at 48 kHz -> 48000 samples at 16 kHz -> windows of 1 s every 0.5 s.
        let mut ws = WindowStream::new(48000, 16000, 16000, 8000).unwrap();
        let x = vec![0.25f32; 144000];
        let mut starts = Vec::new();
        for piece in x.chunks(4096) {
            ws.push(piece, |w| {
                starts.push((w.start, w.valid));
                Ok(())
            })
            .unwrap();
            assert!(ws.buffered_capacity() < 16000 + 8192);
        }
        ws.finish(|w| {
            starts.push((w.start, w.valid));
            Ok(())
        })
        .unwrap();
        assert_eq!(
            starts,
            vec![
                (0, 16000),
                (8000, 16000),
                (16000, 16000),
                (24000, 16000),
                (32000, 16000)
            ]
        );
    }
}
