//! Inference engine abstraction, so that another engine can be A/B-tested against tract.
//!
//! Plain `Vec`-backed types keep the trait independent of any engine's tensor type.

use anyhow::Result;

/// Encoder output for one clip: `[1, frames, dim]`, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Memory {
    pub frames: usize,
    pub dim: usize,
    pub data: Vec<f32>,
}

impl Memory {
    /// The first `len` frames (`memory[:, :len, :]`).
    pub fn truncated(&self, len: usize) -> Memory {
        let len = len.min(self.frames);
        Memory {
            frames: len,
            dim: self.dim,
            data: self.data[..len * self.dim].to_vec(),
        }
    }
}

/// Decoder output: `[batch, vocab]` next-token logits, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Logits {
    pub batch: usize,
    pub vocab: usize,
    pub data: Vec<f32>,
}

impl Logits {
    pub fn row(&self, b: usize) -> &[f32] {
        &self.data[b * self.vocab..(b + 1) * self.vocab]
    }
}

/// An encoder/decoder captioning model as the runtime sees it.
///
/// Implementations must be usable from several threads at once (one model shared by several
/// streams); per-call state lives on the stack of each call.
pub trait EncoderDecoder: Send + Sync {
    /// Short engine name for logs and `earshot info`.
    fn engine(&self) -> &'static str;

    /// Runs the encoder on features laid out `[n_mels][frames]` (the shape fixed at load time).
    fn encode(&self, mel: &[f32]) -> Result<Memory>;

    /// [`Self::encode`], plus the clip's tag logits (`[K]`) when the model has a tags output
    /// (manifest section `tags`). Engines without one keep this default.
    fn encode_tagged(&self, mel: &[f32]) -> Result<(Memory, Option<Vec<f32>>)> {
        Ok((self.encode(mel)?, None))
    }

    /// Runs one decoder step. `tokens` is `[batch, len]` row-major (`batch * len` ids); every
    /// batch row attends to the same `memory` (a `[1, T, D]` clip memory that the engine repeats
    /// over the batch). Returns the logits of the token after the last prefix position.
    fn decode_step(&self, tokens: &[i64], batch: usize, memory: &Memory) -> Result<Logits>;
}
