//! tract-onnx backend.
//!
//! The encoder input shape is made concrete (`[1, n_mels, frames]` for the chosen window) and the
//! graph is optimised once. The decoder keeps its batch, prefix-length and memory-length axes
//! symbolic and is also optimised once; tract resolves the symbols per call. (Re-optimising per
//! `(batch, len)` shape with a cache was measured to be slower overall for 20-token captions;
//! see `DecoderMode`.) Loading, one function per graph, is in `load.rs`; this file runs them.

use super::backend::{EncoderDecoder, Logits, Memory};
use super::manifest::{DecoderSpec, EncoderSpec};
use anyhow::{anyhow, bail, ensure, Result};
use std::collections::HashMap;
use std::path::Path;
use tract_onnx::prelude::*;

mod load;

pub use load::DecoderMode;
use load::{DecoderPlans, Plan};

pub struct TractBackend {
    encoder: Plan,
    mel_shape: [usize; 3],
    memory_shape: [usize; 3],
    encoder_params: u64,
    decoder: DecoderPlans,
    decoder_params: u64,
    vocab: usize,
    /// Key/value-cached decoder, when the bundle has one (`decoder_cached`).
    cached: Option<super::cached::CachedDecoder>,
    /// Width K of the encoder's second output (`tags.output`), when the manifest has tags.
    tags_len: Option<usize>,
}

impl std::fmt::Debug for TractBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TractBackend")
            .field("mel_shape", &self.mel_shape)
            .field("memory_shape", &self.memory_shape)
            .field("decoder_mode", &self.decoder.mode)
            .finish()
    }
}

impl TractBackend {
    /// Loads and optimises both graphs. `frames` is the encoder's time axis for the chosen
    /// window (the manifest's `input_shape[2]` for the manifest's window). `use_cache`: load the
    /// bundle's key/value-cached decoder when it has one. `tags_output`: the name of the encoder's
    /// tag-logits output (manifest section `tags`), also computed.
    #[allow(clippy::too_many_arguments)]
    pub fn load(
        dir: &Path,
        enc: &EncoderSpec,
        dec: &DecoderSpec,
        n_mels: usize,
        frames: usize,
        mode: DecoderMode,
        use_cache: bool,
        tags_output: Option<&str>,
    ) -> Result<TractBackend> {
        let encoder = load::encoder(dir, enc, n_mels, frames, tags_output)?;
        let decoder = load::decoder(dir, dec, encoder.memory_shape[2], mode, use_cache)?;
        Ok(TractBackend {
            encoder: encoder.plan,
            mel_shape: encoder.mel_shape,
            memory_shape: encoder.memory_shape,
            encoder_params: encoder.params,
            decoder: decoder.plans,
            decoder_params: decoder.params,
            vocab: dec.vocab_size,
            cached: decoder.cached,
            tags_len: encoder.tags_len,
        })
    }

    /// `[1, n_mels, frames]` encoder input.
    pub fn mel_shape(&self) -> [usize; 3] {
        self.mel_shape
    }

    /// `[1, T, D]` encoder output.
    pub fn memory_shape(&self) -> [usize; 3] {
        self.memory_shape
    }

    /// K, the number of tags the encoder outputs (`None` without a tags output).
    pub fn tags_len(&self) -> Option<usize> {
        self.tags_len
    }

    /// Parameter counts (encoder, decoder): elements of constant tensors in the graphs.
    pub fn param_counts(&self) -> (u64, u64) {
        (self.encoder_params, self.decoder_params)
    }

    fn decoder_plan(&self, batch: usize, len: usize, frames: usize) -> Result<Plan> {
        if let Some(p) = &self.decoder.symbolic {
            return Ok(p.clone());
        }
        let key = (batch, len, frames);
        let mut cache = self.decoder.cache.lock().map_err(|_| anyhow!("poisoned"))?;
        if let Some(p) = cache.get(&key) {
            return Ok(p.clone());
        }
        let [b, l, t] = &self.decoder.symbols;
        let subs: HashMap<Symbol, TDim> = [
            (b.clone(), batch.to_dim()),
            (l.clone(), len.to_dim()),
            (t.clone(), frames.to_dim()),
        ]
        .into_iter()
        .collect();
        let plan = self
            .decoder
            .typed
            .set_symbols(&subs)
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .map_err(|e| anyhow!("cannot optimise the decoder for {key:?}: {e:#}"))?;
        cache.insert(key, plan.clone());
        Ok(plan)
    }
}

impl EncoderDecoder for TractBackend {
    fn engine(&self) -> &'static str {
        "tract"
    }

    fn encode(&self, mel: &[f32]) -> Result<Memory> {
        Ok(self.encode_tagged(mel)?.0)
    }

    fn encode_tagged(&self, mel: &[f32]) -> Result<(Memory, Option<Vec<f32>>)> {
        let n: usize = self.mel_shape.iter().product();
        ensure!(
            mel.len() == n,
            "encoder input has {} values, expected {n} ({:?})",
            mel.len(),
            self.mel_shape
        );
        let input = Tensor::from_shape(&self.mel_shape, mel)?;
        let out = self
            .encoder
            .run(tvec!(input.into()))
            .map_err(|e| anyhow!("encoder failed: {e:#}"))?;
        let view = out[0].to_plain_array_view::<f32>()?;
        let shape = view.shape().to_vec();
        ensure!(
            shape == self.memory_shape,
            "encoder returned shape {shape:?}, expected {:?}",
            self.memory_shape
        );
        let memory = Memory {
            frames: shape[1],
            dim: shape[2],
            data: view.iter().copied().collect(),
        };
        let tags = match self.tags_len {
            None => None,
            Some(k) => {
                let out = out
                    .get(1)
                    .ok_or_else(|| anyhow!("encoder returned no tags output"))?;
                let view = out.to_plain_array_view::<f32>()?;
                ensure!(
                    view.shape() == [1, k],
                    "encoder returned tags of shape {:?}, expected [1, {k}]",
                    view.shape()
                );
                Some(view.iter().copied().collect())
            }
        };
        Ok((memory, tags))
    }

    fn decode_step(&self, tokens: &[i64], batch: usize, memory: &Memory) -> Result<Logits> {
        if let Some(cached) = &self.cached {
            return cached.decode_step(tokens, batch, memory);
        }
        ensure!(
            batch > 0 && tokens.len().is_multiple_of(batch) && !tokens.is_empty(),
            "bad token batch"
        );
        let len = tokens.len() / batch;
        let tok = Tensor::from_shape(&[batch, len], tokens)?;
        let mut mem = Vec::with_capacity(batch * memory.data.len());
        for _ in 0..batch {
            mem.extend_from_slice(&memory.data);
        }
        let mem = Tensor::from_shape(&[batch, memory.frames, memory.dim], &mem)?;
        let plan = self.decoder_plan(batch, len, memory.frames)?;
        let inputs = if self.decoder.tokens_ix == 0 {
            tvec!(tok.into(), mem.into())
        } else {
            tvec!(mem.into(), tok.into())
        };
        let out = plan
            .run(inputs)
            .map_err(|e| anyhow!("decoder failed: {e:#}"))?;
        let view = out[0].to_plain_array_view::<f32>()?;
        let shape = view.shape().to_vec();
        if shape.len() != 2 || shape[0] != batch || shape[1] != self.vocab {
            bail!(
                "decoder returned logits of shape {shape:?}, expected [{batch}, {}]",
                self.vocab
            );
        }
        Ok(Logits {
            batch,
            vocab: shape[1],
            data: view.iter().copied().collect(),
        })
    }
}
