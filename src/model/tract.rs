//! tract-onnx backend.
//!
//! The encoder input shape is made concrete (`[1, n_mels, frames]` for the chosen window) and the
//! graph is optimised once. The decoder keeps its batch, prefix-length and memory-length axes
//! symbolic and is also optimised once; tract resolves the symbols per call. (Re-optimising per
//! `(batch, len)` shape with a cache was measured to be slower overall for 20-token captions;
//! see `DecoderMode`.)

use super::backend::{EncoderDecoder, Logits, Memory};
use super::manifest::{DecoderSpec, EncoderSpec};
use anyhow::{anyhow, bail, ensure, Context, Result};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::Factoid;

type Plan = Arc<TypedRunnableModel>;

/// How the decoder plan is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecoderMode {
    /// One optimised plan with symbolic batch/length axes (default).
    Symbolic,
    /// One optimised plan per concrete `(batch, len, frames)`, cached.
    PerShape,
}

impl DecoderMode {
    /// `EARSHOT_DECODER_PLAN=per-shape` selects [`DecoderMode::PerShape`] (for measurements).
    pub fn from_env() -> DecoderMode {
        match std::env::var("EARSHOT_DECODER_PLAN").as_deref() {
            Ok("per-shape") => DecoderMode::PerShape,
            _ => DecoderMode::Symbolic,
        }
    }
}

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

struct DecoderPlans {
    mode: DecoderMode,
    /// Decluttered model with symbols B (batch), L (prefix length), T (memory frames).
    typed: TypedModel,
    symbols: [Symbol; 3],
    symbolic: Option<Plan>,
    cache: Mutex<HashMap<(usize, usize, usize), Plan>>,
    /// Positions of the tokens and memory inputs in the plan's input list.
    tokens_ix: usize,
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

/// Declared dims of an ONNX input/output (`None` = symbolic or unknown).
fn declared_dims(fact: &InferenceFact) -> Option<Vec<Option<i64>>> {
    if fact.shape.is_open() {
        return None;
    }
    Some(
        fact.shape
            .dims()
            .map(|d| d.concretize().and_then(|d| d.to_i64().ok()))
            .collect(),
    )
}

fn fmt_dims(dims: &[Option<i64>]) -> String {
    let parts: Vec<String> = dims
        .iter()
        .map(|d| d.map_or_else(|| "?".to_string(), |v| v.to_string()))
        .collect();
    format!("[{}]", parts.join(", "))
}

fn load_onnx(path: &Path) -> Result<InferenceModel> {
    tract_onnx::onnx()
        .model_for_path(path)
        .map_err(|e| anyhow!("{e:#}"))
        .with_context(|| format!("cannot load ONNX model {}", path.display()))
}

fn input_index(model: &InferenceModel, name: &str, file: &str) -> Result<usize> {
    let names: Vec<String> = model
        .input_outlets()?
        .iter()
        .map(|o| model.node(o.node).name.clone())
        .collect();
    names.iter().position(|n| n == name).ok_or_else(|| {
        anyhow!("{file} has no input named {name:?} (its inputs: {names:?}); the manifest and the model disagree")
    })
}

fn count_params(model: &TypedModel) -> u64 {
    model
        .nodes()
        .iter()
        .filter_map(|n| n.op_as::<tract_onnx::tract_core::ops::konst::Const>())
        .map(|k| k.val().len() as u64)
        .sum()
}

fn check_declared(
    file: &str,
    what: &str,
    declared: Option<Vec<Option<i64>>>,
    wanted: &[Option<i64>],
) -> Result<()> {
    let Some(declared) = declared else {
        return Ok(());
    };
    let mismatch = declared.len() != wanted.len()
        || declared
            .iter()
            .zip(wanted)
            .any(|(d, w)| matches!((d, w), (Some(d), Some(w)) if d != w));
    ensure!(
        !mismatch,
        "{file}: {what} is declared as {} but the manifest needs {}",
        fmt_dims(&declared),
        fmt_dims(wanted)
    );
    Ok(())
}

/// Selects the encoder's memory output and, with `tags`, its tag-logits output as the second.
fn select_encoder_outputs(
    model: &mut InferenceModel,
    enc: &EncoderSpec,
    tags: Option<&str>,
) -> Result<()> {
    let mut names = vec![enc.output.as_str()];
    names.extend(tags);
    model.select_outputs_by_name(&names).map_err(|e| {
        anyhow!(
            "{}: no output named {} ({e}); the manifest and the model disagree",
            enc.file,
            names
                .iter()
                .map(|n| format!("{n:?}"))
                .collect::<Vec<_>>()
                .join(" / ")
        )
    })
}

/// K of the optimised encoder's second output (the tags), which must be f32 `[1, K]`.
fn tags_width(typed: &TypedModel, file: &str, name: &str) -> Result<usize> {
    let fact = typed.output_fact(1)?;
    let shape = fact.shape.as_concrete().map(|s| s.to_vec());
    match shape.as_deref() {
        Some([1, k]) if *k > 0 && fact.datum_type == f32::datum_type() => Ok(*k),
        _ => bail!(
            "{file}: tags output {name:?} is {:?} {:?}, expected f32 [1, K]",
            fact.datum_type,
            fact.shape
        ),
    }
}

impl TractBackend {
    /// Loads and optimises both graphs. `frames` is the encoder's time axis for the chosen
    /// window (the manifest's `input_shape[2]` for the manifest's window). `tags_output`: the
    /// name of the encoder's tag-logits output (manifest section `tags`), also computed.
    pub fn load(
        dir: &Path,
        enc: &EncoderSpec,
        dec: &DecoderSpec,
        n_mels: usize,
        frames: usize,
        mode: DecoderMode,
        tags_output: Option<&str>,
    ) -> Result<TractBackend> {
        let t0 = std::time::Instant::now();
        // ---- encoder
        let mut model = load_onnx(&dir.join(&enc.file))?;
        let ix = input_index(&model, &enc.input, &enc.file)?;
        ensure!(
            model.input_outlets()?.len() == 1,
            "{}: expected exactly one input, found {}",
            enc.file,
            model.input_outlets()?.len()
        );
        let mel_shape = [1usize, n_mels, frames];
        let manifest_frames = enc.input_shape[2] as usize;
        let wanted: Vec<Option<i64>> = vec![
            Some(1),
            Some(n_mels as i64),
            // The time axis may be fixed in the ONNX graph only for the manifest's window.
            Some(frames as i64),
        ];
        check_declared(
            &enc.file,
            &format!("input {:?}", enc.input),
            declared_dims(model.input_fact(ix)?),
            &wanted,
        )
        .with_context(|| {
            if frames != manifest_frames {
                "this encoder only accepts the manifest's window length; run without --window"
                    .to_string()
            } else {
                "wrong tensor shape".to_string()
            }
        })?;
        model.set_input_fact(ix, InferenceFact::dt_shape(f32::datum_type(), mel_shape))?;
        select_encoder_outputs(&mut model, enc, tags_output)?;
        let typed = model
            .into_optimized()
            .map_err(|e| anyhow!("{e:#}"))
            .with_context(|| {
                format!(
                    "{}: cannot build the encoder for input shape {mel_shape:?}",
                    enc.file
                )
            })?;
        let out_fact = typed.output_fact(0)?.clone();
        let out_shape = out_fact
            .shape
            .as_concrete()
            .ok_or_else(|| {
                anyhow!(
                    "{}: output shape {:?} is not concrete for input {mel_shape:?}",
                    enc.file,
                    out_fact.shape
                )
            })?
            .to_vec();
        ensure!(
            out_shape.len() == 3 && out_shape[0] == 1,
            "{}: output {:?} has shape {out_shape:?}, expected [1, T, D]",
            enc.file,
            enc.output
        );
        ensure!(
            out_fact.datum_type == f32::datum_type(),
            "{}: output must be f32",
            enc.file
        );
        let memory_shape = [1, out_shape[1], out_shape[2]];
        let tags_len = match tags_output {
            Some(name) => Some(tags_width(&typed, &enc.file, name)?),
            None => None,
        };
        if frames == manifest_frames {
            let declared: Vec<usize> = enc.output_shape.iter().map(|&d| d as usize).collect();
            ensure!(
                declared == memory_shape,
                "{}: output shape is {memory_shape:?} but the manifest says {:?} (wrong tensor shapes)",
                enc.file,
                enc.output_shape
            );
        } else {
            ensure!(
                memory_shape[2] as i64 == enc.output_shape[2],
                "{}: memory dim {} differs from the manifest's {}",
                enc.file,
                memory_shape[2],
                enc.output_shape[2]
            );
        }
        let encoder_params = count_params(&typed);
        let encoder = typed.into_runnable()?;
        log::debug!(
            "encoder {:?} -> {:?} optimised in {:.0} ms",
            mel_shape,
            memory_shape,
            t0.elapsed().as_secs_f64() * 1e3
        );

        // ---- decoder
        let t1 = std::time::Instant::now();
        let mut model = load_onnx(&dir.join(&dec.file))?;
        ensure!(
            model.input_outlets()?.len() == 2,
            "{}: expected 2 inputs (tokens, memory), found {}",
            dec.file,
            model.input_outlets()?.len()
        );
        let tok_ix = input_index(&model, &dec.input_tokens, &dec.file)?;
        let mem_ix = input_index(&model, &dec.input_memory, &dec.file)?;
        let d = memory_shape[2] as i64;
        check_declared(
            &dec.file,
            &format!("input {:?}", dec.input_tokens),
            declared_dims(model.input_fact(tok_ix)?),
            &[None, None],
        )
        .context("wrong tensor shape")?;
        check_declared(
            &dec.file,
            &format!("input {:?}", dec.input_memory),
            declared_dims(model.input_fact(mem_ix)?),
            &[None, None, Some(d)],
        )
        .context("wrong tensor shape (decoder memory must match the encoder output)")?;
        let b = model.sym("B");
        let l = model.sym("L");
        let t = model.sym("T");
        model.set_input_fact(
            tok_ix,
            InferenceFact::dt_shape(i64::datum_type(), tvec![b.to_dim(), l.to_dim()]),
        )?;
        model.set_input_fact(
            mem_ix,
            InferenceFact::dt_shape(
                f32::datum_type(),
                tvec![b.to_dim(), t.to_dim(), (d as usize).to_dim()],
            ),
        )?;
        model
            .select_outputs_by_name([dec.output.as_str()])
            .map_err(|e| anyhow!("{}: no output named {:?}: {e}", dec.file, dec.output))?;
        let typed = model
            .into_typed()
            .and_then(|m| m.into_decluttered())
            .map_err(|e| anyhow!("{e:#}"))
            .with_context(|| format!("{}: cannot analyse the decoder graph", dec.file))?;
        let logits_fact = typed.output_fact(0)?.clone();
        ensure!(
            logits_fact.rank() == 2,
            "{}: output {:?} must be [B, V], got {:?}",
            dec.file,
            dec.output,
            logits_fact.shape
        );
        let declared_vocab = logits_fact.shape[1].to_i64().ok().map(|v| v as usize);
        if let Some(v) = declared_vocab {
            ensure!(
                v == dec.vocab_size,
                "{}: logits have {v} entries but decoder.vocab_size is {}",
                dec.file,
                dec.vocab_size
            );
        }
        let decoder_params = count_params(&typed);
        // Input positions after into_typed keep the ONNX order.
        // With a key/value-cached decoder the full-prefix plan is never run: skip optimising it
        // (start-up time and resident memory; docs/performance.md).
        let cached =
            super::cached::CachedDecoder::load_if_present(dir, dec.vocab_size, memory_shape[2])
                .context("decoder_cached")?;
        let symbolic = match mode {
            DecoderMode::Symbolic if cached.is_none() => Some(
                typed
                    .clone()
                    .into_optimized()
                    .map_err(|e| anyhow!("{e:#}"))
                    .with_context(|| format!("{}: cannot optimise the decoder", dec.file))?
                    .into_runnable()?,
            ),
            DecoderMode::Symbolic | DecoderMode::PerShape => None,
        };
        log::debug!(
            "decoder ({mode:?}) prepared in {:.0} ms",
            t1.elapsed().as_secs_f64() * 1e3
        );
        let backend = TractBackend {
            encoder,
            mel_shape,
            memory_shape,
            encoder_params,
            decoder: DecoderPlans {
                mode,
                typed,
                symbols: [b, l, t],
                symbolic,
                cache: Mutex::new(HashMap::new()),
                tokens_ix: tok_ix,
            },
            decoder_params,
            vocab: dec.vocab_size,
            cached,
            tags_len,
        };
        Ok(backend)
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
