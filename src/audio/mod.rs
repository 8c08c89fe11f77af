//! Stage 2, samples → model-rate windows: sample formats and the non-finite-sample policy
//! ([`pcm`]), file decoding ([`decode`]), resampling ([`resample`]), sliding windows
//! ([`window`]) and the two wired together for one stream ([`stream::WindowStream`]); plus the
//! deterministic signals of the tests and benchmarks ([`synth`]).

pub mod decode;
pub mod pcm;
pub mod resample;
pub mod stream;
pub mod synth;
pub mod window;
