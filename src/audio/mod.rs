//! Stage 2, samples → model-rate windows: sample formats and the non-finite-sample policy
//! ([`pcm`]), file decoding ([`decode`]: what the bytes are in [`sniff`], WAV data in
//! [`wav_reader`], the other codecs in [`codec`]), resampling ([`resample`]), sliding windows
//! ([`window`]) and the two wired together for one stream ([`stream::WindowStream`]); plus the
//! deterministic signals of the tests and benchmarks ([`synth`]).

pub mod codec;
pub mod decode;
pub mod pcm;
pub mod resample;
pub mod sniff;
pub mod stream;
pub mod synth;
pub mod wav_reader;
pub mod window;
