//! Key/value-cached decoder (optional manifest section `decoder_cached`, docs/bundle-format.md),
//! behind the same `decode_step(tokens, batch, memory)` call as the full-prefix decoder.
//!
//! The search hands every step the full prefixes; this decoder keeps, per prefix, the self-attention
//! keys/values of its positions, so a step runs only the last token of each row
//! (`decoder_step.onnx`), fetching each row's parent state by its prefix (which also re-orders the
//! cache when the beam re-ranks). The memory projection and the cross-attention keys/values are
//! computed once per clip (`decoder_init.onnx`), identified by a hash of the memory. A prefix
//! whose parent is unknown (a caller that does not extend the previous call's rows) is rebuilt
//! token by token, so results never depend on the call history. `EARSHOT_DECODER_CACHE=off`
//! disables the cache (for A/B measurements and parity checks).

use super::backend::{Logits, Memory};
use anyhow::{anyhow, ensure, Context, Result};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::Factoid;

type Plan = Arc<TypedRunnableModel>;

/// The manifest's `decoder_cached` section.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct CachedSpec {
    pub init_file: String,
    pub step_file: String,
    pub layers: usize,
    pub heads: usize,
    pub head_dim: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_positions: Option<usize>,
}

impl CachedSpec {
    /// Checks the section against the search it serves (`search_max_len` generated tokens
    /// after `<start>`), so that a bundle that would fail every caption fails at load instead.
    pub fn validate(&self, search_max_len: usize) -> Result<()> {
        for (key, v) in [
            ("layers", self.layers),
            ("heads", self.heads),
            ("head_dim", self.head_dim),
        ] {
            ensure!(v > 0, "decoder_cached.{key} must be > 0");
        }
        if let Some(max) = self.max_positions {
            // The search feeds prefixes of up to `search_max_len` tokens (<start> and the first
            // max_len - 1 generated ones; the last token is generated from them).
            ensure!(
                max >= search_max_len,
                "decoder_cached.max_positions {max} is too small for search.max_len \
                 {search_max_len}: the cached decoder needs at least {search_max_len} positions \
                 (a prefix of <start> and up to {} generated tokens)",
                search_max_len - 1
            );
        }
        Ok(())
    }

    /// The fixed axes of the keys/values `[layers, batch, heads, length, head_dim]`: (axis,
    /// manifest key, value).
    fn kv_axes(&self) -> [(usize, &'static str, usize); 3] {
        [
            (0, "layers", self.layers),
            (2, "heads", self.heads),
            (4, "head_dim", self.head_dim),
        ]
    }
}

#[derive(Default)]
struct State {
    /// Hash of the clip memory the cross K/V belong to.
    memory_key: Option<u64>,
    cross: Option<(TValue, TValue)>,
    /// Self-attention K/V `[layers, 1, heads, len, head_dim]` per prefix (of the last length).
    rows: HashMap<Vec<i64>, (Tensor, Tensor)>,
}

pub struct CachedDecoder {
    spec: CachedSpec,
    init: Plan,
    step: Plan,
    vocab: usize,
    dim: usize,
    state: Mutex<State>,
}

impl std::fmt::Debug for CachedDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedDecoder")
            .field("spec", &self.spec)
            .finish()
    }
}

/// Checks the key/value tensor `fact` (`[layers, B, heads, T, head_dim]`) that `file` declares
/// against the manifest's `decoder_cached` numbers, naming the key that disagrees.
fn check_kv(spec: &CachedSpec, file: &str, what: &str, fact: &InferenceFact) -> Result<()> {
    if fact.shape.is_open() {
        return Ok(());
    }
    let dims: Vec<Option<i64>> = fact
        .shape
        .dims()
        .map(|d| d.concretize().and_then(|d| d.to_i64().ok()))
        .collect();
    let shown: Vec<String> = dims
        .iter()
        .map(|d| d.map_or_else(|| "?".into(), |v| v.to_string()))
        .collect();
    let shown = format!("[{}]", shown.join(", "));
    ensure!(
        dims.len() == 5,
        "{file}: {what} is declared as {shown}, not [layers, batch, heads, length, head_dim]"
    );
    for (axis, key, want) in spec.kv_axes() {
        if let Some(d) = dims[axis] {
            ensure!(
                d == want as i64,
                "decoder_cached.{key} is {want} but {file} {what} has {d} (declared shape {shown})"
            );
        }
    }
    Ok(())
}

/// Names of the graph inputs (or outputs) of `model`, in order.
fn io_names(model: &InferenceModel, outlets: &[OutletId]) -> Vec<String> {
    outlets
        .iter()
        .map(|o| model.node(o.node).name.clone())
        .collect()
}

/// Loads, checks the declared shapes (`check`), sets the input facts (built from the model's own
/// symbols B, T, P) and optimises.
fn load_plan(
    path: &Path,
    check: impl FnOnce(&InferenceModel) -> Result<()>,
    facts: impl FnOnce([Symbol; 3]) -> Vec<InferenceFact>,
) -> Result<Plan> {
    let mut model = tract_onnx::onnx()
        .model_for_path(path)
        .map_err(|e| anyhow!("{e:#}"))
        .with_context(|| format!("cannot load ONNX model {}", path.display()))?;
    check(&model)?;
    let facts = facts([model.sym("B"), model.sym("T"), model.sym("P")]);
    ensure!(
        model.input_outlets()?.len() == facts.len(),
        "{}: expected {} inputs",
        path.display(),
        facts.len()
    );
    for (i, f) in facts.into_iter().enumerate() {
        model.set_input_fact(i, f)?;
    }
    let plan = model
        .into_optimized()
        .and_then(|m| m.into_runnable())
        .map_err(|e| anyhow!("{}: {e:#}", path.display()))?;
    Ok(plan)
}

/// FNV-1a over the memory's shape and bits.
fn memory_key(m: &Memory) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |x: u64| {
        h ^= x;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    };
    eat(m.frames as u64);
    eat(m.dim as u64);
    for v in &m.data {
        eat(u64::from(v.to_bits()));
    }
    h
}

impl CachedDecoder {
    /// Loads the cached decoder when the manifest has a `decoder_cached` section (the caller
    /// decides whether to use it at all: [`crate::model::LoadOptions::decoder_cache`]).
    pub fn load_if_present(dir: &Path, vocab: usize, dim: usize) -> Result<Option<CachedDecoder>> {
        // The section was parsed and validated with the rest of the manifest.
        let manifest = super::manifest::Manifest::load(&dir.join("manifest.json"))?;
        let Some(spec) = manifest.decoder_cached else {
            return Ok(None);
        };
        let t0 = std::time::Instant::now();
        let (l, h, dh) = (spec.layers, spec.heads, spec.head_dim);
        let f32s = |dims: TVec<TDim>| InferenceFact::dt_shape(f32::datum_type(), dims);
        let init_check = |m: &InferenceModel| -> Result<()> {
            let outs = m.output_outlets()?.to_vec();
            let names = io_names(m, &outs);
            for (i, name) in names.iter().enumerate().take(2) {
                let what = format!("output {name:?}");
                check_kv(&spec, &spec.init_file, &what, m.output_fact(i)?)?;
            }
            Ok(())
        };
        let init = load_plan(&dir.join(&spec.init_file), init_check, |[_, t, _]| {
            vec![f32s(tvec![1.to_dim(), t.to_dim(), dim.to_dim()])]
        })?;
        let step_check = |m: &InferenceModel| -> Result<()> {
            let ins = m.input_outlets()?.to_vec();
            let names = io_names(m, &ins);
            for (i, name) in names.iter().enumerate().skip(2) {
                let what = format!("input {name:?}");
                check_kv(&spec, &spec.step_file, &what, m.input_fact(i)?)?;
            }
            Ok(())
        };
        let step = load_plan(&dir.join(&spec.step_file), step_check, |[b, t, p]| {
            let cross = f32s(tvec![
                l.to_dim(),
                1.to_dim(),
                h.to_dim(),
                t.to_dim(),
                dh.to_dim()
            ]);
            let past = f32s(tvec![
                l.to_dim(),
                b.to_dim(),
                h.to_dim(),
                p.to_dim(),
                dh.to_dim()
            ]);
            vec![
                InferenceFact::dt_shape(i64::datum_type(), tvec![b.to_dim(), 1.to_dim()]),
                InferenceFact::dt_shape(i64::datum_type(), tvec![1.to_dim()]),
                cross.clone(),
                cross,
                past.clone(),
                past,
            ]
        })?;
        log::debug!(
            "cached decoder prepared in {:.0} ms",
            t0.elapsed().as_secs_f64() * 1e3
        );
        let decoder = CachedDecoder {
            spec,
            init,
            step,
            vocab,
            dim,
            state: Mutex::new(State::default()),
        };
        decoder.probe()?;
        Ok(Some(decoder))
    }

    /// Runs both graphs once on a one-frame zero memory and checks the key/value shapes, so that
    /// a section that disagrees with graphs that declare no shapes fails at load, naming it.
    fn probe(&self) -> Result<()> {
        let s = &self.spec;
        let run = || -> Result<()> {
            let mem = Tensor::zero::<f32>(&[1, 1, self.dim])?;
            let cross = self
                .init
                .run(tvec!(mem.into()))
                .map_err(|e| anyhow!("{}: {e:#}", s.init_file))?;
            ensure!(cross.len() >= 2, "{}: expected 2 outputs", s.init_file);
            let empty = self.empty_past()?;
            let (_, k, _) = self.run_step(
                &(cross[0].clone(), cross[1].clone()),
                &[0],
                &[(&empty, &empty)],
                0,
            )?;
            let want = [s.layers, 1, s.heads, 1, s.head_dim];
            ensure!(
                k.shape() == want,
                "{}: present keys have shape {:?}, expected {want:?}",
                s.step_file,
                k.shape()
            );
            Ok(())
        };
        run().with_context(|| {
            format!(
                "the cached decoder ({}, {}) does not run as decoder_cached describes it \
                 (layers {}, heads {}, head_dim {})",
                s.init_file, s.step_file, s.layers, s.heads, s.head_dim
            )
        })
    }

    fn empty_past(&self) -> Result<Tensor> {
        let s = &self.spec;
        Tensor::zero::<f32>(&[s.layers, 1, s.heads, 0, s.head_dim]).map_err(|e| anyhow!("{e:#}"))
    }

    /// One batched step: `last[b]` after `parents[b]` (all of the same length `p`).
    fn run_step(
        &self,
        cross: &(TValue, TValue),
        last: &[i64],
        pasts: &[(&Tensor, &Tensor)],
        p: usize,
    ) -> Result<(Vec<f32>, Tensor, Tensor)> {
        let batch = last.len();
        let (k, v) = if batch == 1 {
            (pasts[0].0.clone(), pasts[0].1.clone())
        } else {
            let ks: Vec<&Tensor> = pasts.iter().map(|x| x.0).collect();
            let vs: Vec<&Tensor> = pasts.iter().map(|x| x.1).collect();
            (
                Tensor::stack_tensors(1, &ks)?,
                Tensor::stack_tensors(1, &vs)?,
            )
        };
        let out = self
            .step
            .run(tvec!(
                Tensor::from_shape(&[batch, 1], last)?.into(),
                Tensor::from_shape(&[1], &[p as i64])?.into(),
                cross.0.clone(),
                cross.1.clone(),
                k.into(),
                v.into()
            ))
            .map_err(|e| anyhow!("decoder step failed: {e:#}"))?;
        let logits = out[0].to_plain_array_view::<f32>()?;
        ensure!(
            logits.shape() == [batch, self.vocab],
            "decoder step returned logits {:?}, expected [{batch}, {}]",
            logits.shape(),
            self.vocab
        );
        let data = logits.iter().copied().collect();
        Ok((
            data,
            out[1].clone().into_tensor(),
            out[2].clone().into_tensor(),
        ))
    }

    /// Makes sure `rows` holds the state of `prefix` (rebuilding it token by token if needed).
    fn ensure_prefix(&self, st: &mut State, prefix: &[i64]) -> Result<()> {
        if prefix.is_empty() || st.rows.contains_key(prefix) {
            return Ok(());
        }
        self.ensure_prefix(st, &prefix[..prefix.len() - 1])?;
        let empty;
        let (k, v) = if prefix.len() == 1 {
            empty = self.empty_past()?;
            (&empty, &empty)
        } else {
            let (k, v) = &st.rows[&prefix[..prefix.len() - 1]];
            (k, v)
        };
        let cross = st.cross.clone().ok_or_else(|| anyhow!("no cross K/V"))?;
        let (_, k, v) = self.run_step(
            &cross,
            &prefix[prefix.len() - 1..],
            &[(k, v)],
            prefix.len() - 1,
        )?;
        st.rows.insert(prefix.to_vec(), (k, v));
        Ok(())
    }

    pub fn decode_step(&self, tokens: &[i64], batch: usize, memory: &Memory) -> Result<Logits> {
        ensure!(
            batch > 0 && !tokens.is_empty() && tokens.len().is_multiple_of(batch),
            "bad token batch"
        );
        ensure!(
            memory.dim == self.dim,
            "memory dim {} != {}",
            memory.dim,
            self.dim
        );
        let len = tokens.len() / batch;
        if let Some(max) = self.spec.max_positions {
            ensure!(
                len <= max,
                "token prefix of {len} exceeds max_positions {max}"
            );
        }
        let mut st = self.state.lock().map_err(|_| anyhow!("poisoned"))?;
        let key = memory_key(memory);
        if st.memory_key != Some(key) {
            let mem = Tensor::from_shape(&[1, memory.frames, memory.dim], &memory.data)?;
            let out = self
                .init
                .run(tvec!(mem.into()))
                .map_err(|e| anyhow!("decoder init failed: {e:#}"))?;
            st.cross = Some((out[0].clone(), out[1].clone()));
            st.rows.clear();
            st.memory_key = Some(key);
        }
        let rows: Vec<&[i64]> = tokens.chunks(len).collect();
        for r in &rows {
            self.ensure_prefix(&mut st, &r[..len - 1])?;
        }
        let empty = self.empty_past()?;
        let last: Vec<i64> = rows.iter().map(|r| r[len - 1]).collect();
        let cross = st.cross.clone().ok_or_else(|| anyhow!("no cross K/V"))?;
        let (data, k, v) = {
            let pasts: Vec<(&Tensor, &Tensor)> = rows
                .iter()
                .map(|r| {
                    if len == 1 {
                        (&empty, &empty)
                    } else {
                        let (k, v) = &st.rows[&r[..len - 1]];
                        (k, v)
                    }
                })
                .collect();
            self.run_step(&cross, &last, &pasts, len - 1)?
        };
        // Keep only the states of this step's prefixes: the search extends only these.
        st.rows.retain(|p, _| p.len() == len);
        for (b, r) in rows.iter().enumerate() {
            st.rows
                .insert(r.to_vec(), (k.slice(1, b, b + 1)?, v.slice(1, b, b + 1)?));
        }
        Ok(Logits {
            batch,
            vocab: self.vocab,
            data,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_key_sees_shape_and_values() {
        let m = |frames, dim, data: Vec<f32>| Memory { frames, dim, data };
        let a = memory_key(&m(2, 2, vec![0.0, 1.0, 2.0, 3.0]));
        assert_eq!(a, memory_key(&m(2, 2, vec![0.0, 1.0, 2.0, 3.0])));
        assert_ne!(a, memory_key(&m(1, 4, vec![0.0, 1.0, 2.0, 3.0])));
        assert_ne!(a, memory_key(&m(2, 2, vec![0.0, 1.0, 2.0, 3.5])));
        assert_ne!(a, memory_key(&m(2, 2, vec![-0.0, 1.0, 2.0, 3.0])));
    }

    #[test]
    fn absent_section_means_no_cache() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/tiny-bundle");
        assert!(CachedDecoder::load_if_present(&dir, 56, 32)
            .unwrap()
            .is_none());
    }
}
