//! Loading the two graphs of a bundle into tract, one loader per graph: [`encoder`] (concrete
//! input shape, optimised once) and [`decoder`] (symbolic batch/length/memory axes). Both check
//! the shapes the ONNX files declare against the manifest and name the file in every error.

use crate::model::manifest::{DecoderSpec, EncoderSpec};
use anyhow::{anyhow, bail, ensure, Context, Result};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::Factoid;

/// An optimised, runnable graph (shared read-only between streams).
pub(super) type Plan = Arc<TypedRunnableModel>;

/// How the decoder plan is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecoderMode {
    /// One optimised plan with symbolic batch/length axes (default).
    Symbolic,
    /// One optimised plan per concrete `(batch, len, frames)`, cached.
    PerShape,
}

impl DecoderMode {
    /// The value of `EARSHOT_DECODER_PLAN` (read by the commands): `per-shape` selects
    /// [`DecoderMode::PerShape`] (for measurements), anything else the default.
    pub fn from_setting(value: Option<&str>) -> DecoderMode {
        match value {
            Some("per-shape") => DecoderMode::PerShape,
            _ => DecoderMode::Symbolic,
        }
    }
}

/// The decoder as loaded: the decluttered graph and its plan(s) for [`DecoderMode`].
pub(super) struct DecoderPlans {
    pub(super) mode: DecoderMode,
    /// Decluttered model with symbols B (batch), L (prefix length), T (memory frames).
    pub(super) typed: TypedModel,
    pub(super) symbols: [Symbol; 3],
    pub(super) symbolic: Option<Plan>,
    pub(super) cache: Mutex<HashMap<(usize, usize, usize), Plan>>,
    /// Positions of the tokens and memory inputs in the plan's input list.
    pub(super) tokens_ix: usize,
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

/// The optimised encoder graph and the shapes it was built for.
pub(super) struct EncoderGraph {
    pub(super) plan: Plan,
    pub(super) mel_shape: [usize; 3],
    pub(super) memory_shape: [usize; 3],
    pub(super) params: u64,
    /// Width K of the second output (the tags), when one was asked for.
    pub(super) tags_len: Option<usize>,
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

/// Loads the encoder with a concrete `[1, n_mels, frames]` input and optimises it once; checks
/// the declared input and the output against the manifest. `tags_output`: the name of the
/// encoder's tag-logits output (manifest section `tags`), computed as the second output.
pub(super) fn encoder(
    dir: &Path,
    enc: &EncoderSpec,
    n_mels: usize,
    frames: usize,
    tags_output: Option<&str>,
) -> Result<EncoderGraph> {
    let t0 = std::time::Instant::now();
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
    Ok(EncoderGraph {
        plan: encoder,
        mel_shape,
        memory_shape,
        params: encoder_params,
        tags_len,
    })
}

/// The decoder graph(s): the symbolic plan or per-shape plans, and the cached decoder.
pub(super) struct DecoderGraph {
    pub(super) plans: DecoderPlans,
    pub(super) params: u64,
    pub(super) cached: Option<crate::model::cached::CachedDecoder>,
}

/// Loads the decoder with symbolic batch/length/memory axes (`memory_dim` = the encoder's D)
/// and prepares its plan(s) for `mode`.
pub(super) fn decoder(
    dir: &Path,
    dec: &DecoderSpec,
    memory_dim: usize,
    mode: DecoderMode,
    use_cache: bool,
) -> Result<DecoderGraph> {
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
    let d = memory_dim as i64;
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
    let cached = if use_cache {
        crate::model::cached::CachedDecoder::load_if_present(dir, dec.vocab_size, d as usize)
            .context("decoder_cached")?
    } else {
        None
    };
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
    Ok(DecoderGraph {
        plans: DecoderPlans {
            mode,
            typed,
            symbols: [b, l, t],
            symbolic,
            cache: Mutex::new(HashMap::new()),
            tokens_ix: tok_ix,
        },
        params: decoder_params,
        cached,
    })
}
