//! Clip file formats: mono 16-bit FLAC (the default, with the `flacenc` crate) or 16-bit PCM
//! WAV, from model-rate f32 samples. Samples are scaled by 32768, rounded and clamped to
//! 16 bits, so audio that came from 16-bit PCM (`i / 32768`) comes back sample-exact.
//! Encoding works on one clip in memory (bounded by the clip length) and never fails on odd
//! input: NaN becomes 0, out-of-range values clamp.

use anyhow::{anyhow, ensure, Result};

/// `clips.format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClipFormat {
    #[default]
    Flac,
    Wav,
}

impl ClipFormat {
    /// The file extension (no dot).
    pub fn extension(self) -> &'static str {
        match self {
            ClipFormat::Flac => "flac",
            ClipFormat::Wav => "wav",
        }
    }

    /// `"flac"` or `"wav"` (any case).
    pub fn parse(s: &str) -> Option<ClipFormat> {
        match s.trim().to_ascii_lowercase().as_str() {
            "flac" => Some(ClipFormat::Flac),
            "wav" => Some(ClipFormat::Wav),
            _ => None,
        }
    }
}

/// One f32 sample as 16-bit PCM.
pub fn to_i16(x: f32) -> i16 {
    if x.is_nan() {
        return 0;
    }
    (f64::from(x) * 32768.0).round().clamp(-32768.0, 32767.0) as i16
}

/// The bytes of a mono clip of `samples` at `rate` Hz in `format`.
pub fn encode(samples: &[f32], rate: u32, format: ClipFormat) -> Result<Vec<u8>> {
    ensure!(!samples.is_empty(), "an empty clip");
    match format {
        ClipFormat::Wav => Ok(wav(samples, rate)),
        ClipFormat::Flac => flac(samples, rate),
    }
}

fn wav(samples: &[f32], rate: u32) -> Vec<u8> {
    let data = (samples.len() * 2) as u32;
    let mut out = Vec::with_capacity(44 + samples.len() * 2);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data.to_le_bytes());
    for &x in samples {
        out.extend_from_slice(&to_i16(x).to_le_bytes());
    }
    out
}

fn flac(samples: &[f32], rate: u32) -> Result<Vec<u8>> {
    use flacenc::component::BitRepr;
    use flacenc::error::Verify;
    let pcm: Vec<i32> = samples.iter().map(|&x| i32::from(to_i16(x))).collect();
    let config = flacenc::config::Encoder::default()
        .into_verified()
        .map_err(|(_, e)| anyhow!("FLAC encoder settings: {e:?}"))?;
    let source = flacenc::source::MemSource::from_samples(&pcm, 1, 16, rate as usize);
    let stream = flacenc::encode_with_fixed_block_size(&config, source, config.block_size)
        .map_err(|e| anyhow!("FLAC encoding: {e:?}"))?;
    let mut sink = flacenc::bitsink::ByteSink::new();
    stream
        .write(&mut sink)
        .map_err(|e| anyhow!("FLAC encoding: {e:?}"))?;
    let mut bytes = sink.as_slice().to_vec();
    fix_min_block_size(&mut bytes);
    Ok(bytes)
}

/// The FLAC format counts the minimum block size of STREAMINFO without the last block, and a
/// stream whose minimum and maximum differ is read as a variable-block-size stream; flacenc
/// counts the last (short) block, and symphonia (earshot's own decoder) then fails to find the
/// first frame. With a fixed block size the minimum is the maximum.
fn fix_min_block_size(bytes: &mut [u8]) {
    // "fLaC", then the first metadata block header (type 0 = STREAMINFO), then min and max
    // block size (16 bits each).
    if bytes.len() >= 12 && &bytes[..4] == b"fLaC" && bytes[4] & 0x7F == 0 {
        let (min, max) = bytes[8..12].split_at_mut(2);
        min.copy_from_slice(max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcm_conversion_is_exact_for_16_bit_input() {
        for i in [-32768i16, -1, 0, 1, 12345, 32767] {
            assert_eq!(to_i16(f32::from(i) / 32768.0), i);
        }
        assert_eq!(to_i16(2.0), 32767);
        assert_eq!(to_i16(-2.0), -32768);
        assert_eq!(to_i16(f32::NAN), 0);
    }

    #[test]
    fn wav_and_flac_headers() {
        let x: Vec<f32> = (0..5000)
            .map(|i| ((i % 100) as f32 - 50.0) / 100.0)
            .collect();
        let w = encode(&x, 16000, ClipFormat::Wav).unwrap();
        assert_eq!(&w[..4], b"RIFF");
        assert_eq!(w.len(), 44 + 10000);
        let f = encode(&x, 16000, ClipFormat::Flac).unwrap();
        assert_eq!(&f[..4], b"fLaC");
        assert!(f.len() < w.len());
        assert!(encode(&[], 16000, ClipFormat::Flac).is_err());
        assert_eq!(ClipFormat::parse("FLAC"), Some(ClipFormat::Flac));
        assert_eq!(ClipFormat::parse("mp3"), None);
    }
}

#[cfg(test)]
mod decode_tests {
    use super::*;

    #[test]
    fn flac_decodes_back_exactly() {
        for n in [20000, 4096, 1000] {
            decodes_back(n);
        }
    }

    fn decodes_back(n: usize) {
        let x: Vec<f32> = (0..n)
            .map(|i| ((i * 7919 % 2000) as f32 - 1000.0) / 4096.0)
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.flac");
        std::fs::write(&p, encode(&x, 16000, ClipFormat::Flac).unwrap()).unwrap();
        let mut d = crate::audio::decode::AudioDecoder::open(&p).unwrap();
        let mut got = Vec::new();
        while let Some(c) = d.next_chunk().unwrap() {
            got.extend_from_slice(c);
        }
        assert_eq!(got.len(), x.len());
        assert!(got == x);
    }
}
