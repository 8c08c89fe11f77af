//! Audio input: file decoding, resampling, windowing.

pub mod decode;
pub mod resample;
pub mod window;
