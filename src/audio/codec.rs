//! A symphonia format reader and decoder for FLAC, OGG/Vorbis and MP3: one packet at a time into
//! mono f32, isolated damage skipped and counted (reported once at the end with the seconds lost),
//! [`super::decode::MAX_CONSECUTIVE_BAD_PACKETS`] in a row an error.

use super::decode::{seconds, StreamInfo, MAX_CONSECUTIVE_BAD_PACKETS};
use super::pcm::{downmix, FiniteGuard};
use anyhow::{bail, Result};
use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::Decoder;
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::FormatReader;

/// A symphonia format reader and decoder.
pub(crate) struct Codec {
    pub(crate) format: Box<dyn FormatReader>,
    pub(crate) decoder: Box<dyn Decoder>,
    pub(crate) track_id: u32,
    pub(crate) sample_buf: Option<SampleBuffer<f32>>,
    pub(crate) bad_packets: usize,
    pub(crate) consecutive_bad: usize,
    pub(crate) first_damage: Option<f64>,
    /// Where the next packet should start (its predecessor's end), to see lost packets.
    pub(crate) next_ts: Option<u64>,
    pub(crate) lost_frames: u64,
    /// An OGG file whose last page (end-of-stream flag) is missing: reported at the end.
    pub(crate) ogg_cut: bool,
}

impl Codec {
    /// Fills `mono` with the next packet's frames; false at the end of the stream.
    pub(crate) fn next(
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
