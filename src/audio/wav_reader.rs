//! The data chunk of a WAV (RIFF/RF64) file, read in bounded blocks of whole frames and turned
//! into mono f32 ([`super::pcm::decode_samples`], the non-finite policy, the downmix). A size of
//! `None` reads to the end of the stream (streamed WAVs announce none).

use super::decode::{seconds, StreamInfo};
use super::pcm::{decode_samples, downmix, FiniteGuard, WavInfo};
use super::sniff::read_full;
use anyhow::{Context, Result};
use std::io::Read;

/// The data chunk of a WAV file.
pub(crate) struct WavData {
    pub(crate) reader: Box<dyn Read + Send>,
    pub(crate) info: WavInfo,
    /// Data bytes still announced (`None`: to the end of the stream).
    pub(crate) remaining: Option<u64>,
    pub(crate) bytes: Vec<u8>,
    /// Bytes of an incomplete frame kept at the start of `bytes`.
    pub(crate) have: usize,
    pub(crate) samples: Vec<f32>,
}

impl WavData {
    /// Fills `mono` with the next frames; false at the end of the data.
    pub(crate) fn next(
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
