//! Greedy and beam search over a decoder step function (docs/bundle-format.md, "Decoder"),
//! step for step the same algorithm as `train/earshot_train/search.py`, so that token ids match.
//!
//! Beam search ("shrinking beam"): start from one hypothesis `[<start>]` with score 0. Every live
//! hypothesis is extended by every token; candidate score = hypothesis score + log-softmax
//! (float32). The best `k = beam − finished` candidates are kept in descending score order (ties:
//! lower flattened index `b·V + v` first). A kept candidate ending in `<end>` is finished, and so is
//! every live one after `max_len` generated tokens. Finished hypotheses are ranked by
//! `score / generated_len^length_norm` (`<end>` counted); the first best in finishing order wins.
//! All live hypotheses are run through the decoder as one batch.
//!
//! Repetition control (manifest `search.no_repeat_ngram`, `search.once_words`; the rules are in
//! [`crate::model::repetition`]): before the selection, the tokens a hypothesis must not repeat
//! are removed from its candidates (greedy: the argmax of the logits with those set to −∞; beam:
//! a removed candidate is never kept, even when fewer than `k` others remain — with `<end>` never
//! forbidden that needs a vocabulary almost all forbidden). The kept candidates keep their
//! unmasked scores, so without active rules the search is exactly the one above. The search also
//! returns the log-softmax of every generated token (for the caption's confidence).
//!
//! `BeamMode::Constant` (manifest `search.beam_mode: "constant"`, the released effb2-trm student's
//! own search): `k` is always `beam`, so a finished hypothesis frees its slot for the live ones, and
//! the search stops after the step at which exactly `beam` hypotheses have finished (or none is
//! live, or at `max_len`). Ranking as above.

use crate::model::backend::{EncoderDecoder, Memory};
use crate::model::repetition::Repetition;
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

/// The `search` section of `manifest.json`: the model's own search defaults.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SearchSpec {
    #[serde(default = "default_beam")]
    pub beam: usize,
    #[serde(default = "default_max_len")]
    pub max_len: usize,
    #[serde(default = "default_length_norm")]
    pub length_norm: f64,
    /// How finished hypotheses affect the beam (docs/bundle-format.md, "Decoder").
    #[serde(default)]
    pub beam_mode: BeamMode,
    /// Forbid repeating any n-gram of this length (0 = off; [`crate::model::repetition`]).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub no_repeat_ngram: usize,
    /// Words that may occur at most once in a caption (those not in the vocabulary are ignored).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub once_words: Vec<String>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Beam variant. `Shrinking` (default): each finished hypothesis takes one slot away. `Constant`:
/// the beam keeps `beam` live hypotheses and stops once exactly `beam` have finished (the search of
/// the paper's released student, so converted checkpoints give the authors' captions).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum BeamMode {
    #[default]
    Shrinking,
    Constant,
}

fn default_beam() -> usize {
    3
}
fn default_max_len() -> usize {
    20
}
fn default_length_norm() -> f64 {
    1.0
}

impl Default for SearchSpec {
    fn default() -> Self {
        SearchSpec {
            beam: default_beam(),
            max_len: default_max_len(),
            length_norm: default_length_norm(),
            beam_mode: BeamMode::default(),
            no_repeat_ngram: 0,
            once_words: Vec::new(),
        }
    }
}

/// Search parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchParams {
    /// 1 = greedy.
    pub beam: usize,
    /// Maximum number of generated tokens (`<end>` included).
    pub max_len: usize,
    pub length_norm: f64,
    pub start: i64,
    pub end: i64,
    pub mode: BeamMode,
    /// Repetition control (default: off).
    pub repetition: Repetition,
}

/// Result of a search: generated ids without `<start>`, with `<end>` if it was emitted.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchOutput {
    pub ids: Vec<i64>,
    /// The log-softmax (f32, unmasked) of each of `ids` where it was chosen.
    pub logprobs: Vec<f32>,
    /// Decoder calls made.
    pub steps: usize,
}

/// Runs greedy search when `params.beam == 1`, beam search otherwise.
pub fn search(
    model: &dyn EncoderDecoder,
    memory: &Memory,
    params: &SearchParams,
) -> Result<SearchOutput> {
    if params.beam <= 1 {
        greedy(model, memory, params)
    } else {
        beam_search(model, memory, params)
    }
}

/// Index of the first maximum (numpy `argmax`); NaN never wins.
fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    let mut best_v = f32::NEG_INFINITY;
    for (i, &v) in row.iter().enumerate() {
        if v > best_v || (i == 0 && !v.is_nan()) {
            best = i;
            best_v = v;
        }
    }
    best
}

/// float32 log-softmax of one row.
pub fn log_softmax(row: &[f32], out: &mut Vec<f32>) {
    out.clear();
    let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = row.iter().map(|&x| f64::from((x - m).exp())).sum();
    let lse = (sum as f32).ln();
    out.extend(row.iter().map(|&x| (x - m) - lse));
}

pub fn greedy(
    model: &dyn EncoderDecoder,
    memory: &Memory,
    params: &SearchParams,
) -> Result<SearchOutput> {
    let mut ids = vec![params.start];
    let mut logprobs = Vec::new();
    let mut steps = 0;
    let mut lp = Vec::new();
    let mut forbidden = Vec::new();
    let mut masked = Vec::new();
    for _ in 0..params.max_len {
        let logits = model.decode_step(&ids, 1, memory)?;
        steps += 1;
        let row = logits.row(0);
        params.repetition.forbidden(&ids[1..], &mut forbidden);
        let next = if forbidden.is_empty() {
            argmax(row)
        } else {
            masked.clear();
            masked.extend_from_slice(row);
            for &f in &forbidden {
                if let Some(x) = usize::try_from(f).ok().and_then(|f| masked.get_mut(f)) {
                    *x = f32::NEG_INFINITY;
                }
            }
            argmax(&masked)
        };
        log_softmax(row, &mut lp);
        logprobs.push(lp[next]);
        let next = next as i64;
        ids.push(next);
        if next == params.end {
            break;
        }
    }
    ids.remove(0);
    Ok(SearchOutput {
        ids,
        logprobs,
        steps,
    })
}

/// A beam hypothesis: ids (with `<start>`), score, the log-probability of each generated id.
type Hyp = (Vec<i64>, f32, Vec<f32>);

pub fn beam_search(
    model: &dyn EncoderDecoder,
    memory: &Memory,
    params: &SearchParams,
) -> Result<SearchOutput> {
    if params.beam < 1 || params.max_len < 1 {
        bail!("beam and max_len must be >= 1");
    }
    // (ids with <start>, score, per-token log-probabilities)
    let mut live: Vec<Hyp> = vec![(vec![params.start], 0.0, Vec::new())];
    let mut finished: Vec<Hyp> = Vec::new();
    let mut steps = 0;
    let mut lp = Vec::new();
    let mut flat_tokens = Vec::new();
    let mut forbidden = Vec::new();
    for t in 1..=params.max_len {
        flat_tokens.clear();
        for (h, _, _) in &live {
            flat_tokens.extend_from_slice(h);
        }
        let logits = model.decode_step(&flat_tokens, live.len(), memory)?;
        steps += 1;
        let vocab = logits.vocab;
        // Candidate scores and token log-probabilities, flattened b * V + v; the flat indices
        // of the candidates that repetition control removes.
        let mut scores = Vec::with_capacity(live.len() * vocab);
        let mut token_lp = Vec::with_capacity(live.len() * vocab);
        let mut removed = Vec::new();
        for (b, (h, s, _)) in live.iter().enumerate() {
            log_softmax(logits.row(b), &mut lp);
            scores.extend(lp.iter().map(|&x| s + x));
            token_lp.extend_from_slice(&lp);
            params.repetition.forbidden(&h[1..], &mut forbidden);
            removed.extend(
                forbidden
                    .iter()
                    .filter_map(|&v| usize::try_from(v).ok())
                    .filter(|&v| v < vocab)
                    .map(|v| b * vocab + v),
            );
        }
        let k = match params.mode {
            BeamMode::Shrinking => params.beam - finished.len(),
            BeamMode::Constant => params.beam,
        };
        // Stable descending order: higher score first, then lower flat index.
        // `removed` is sorted (rows in order, each row's ids sorted).
        let mut order: Vec<usize> = if removed.is_empty() {
            (0..scores.len()).collect()
        } else {
            (0..scores.len())
                .filter(|i| removed.binary_search(i).is_err())
                .collect()
        };
        let cmp = |a: &usize, b: &usize| {
            scores[*b]
                .partial_cmp(&scores[*a])
                .unwrap_or(std::cmp::Ordering::Equal)
                .then(a.cmp(b))
        };
        if k < order.len() {
            order.select_nth_unstable_by(k, cmp);
            order.truncate(k);
        }
        order.sort_by(cmp);
        let mut new_live = Vec::with_capacity(k);
        for flat in order {
            let (b, v) = (flat / vocab, (flat % vocab) as i64);
            let mut ids = live[b].0.clone();
            ids.push(v);
            let mut lps = live[b].2.clone();
            lps.push(token_lp[flat]);
            let hyp = (ids, scores[flat], lps);
            if v == params.end || t == params.max_len {
                finished.push(hyp);
            } else {
                new_live.push(hyp);
            }
        }
        live = new_live;
        if live.is_empty() || (params.mode == BeamMode::Constant && finished.len() == params.beam) {
            break;
        }
    }
    let mut best: Option<(&Hyp, f64)> = None;
    for hyp in &finished {
        let (ids, score, _) = hyp;
        let norm = ((ids.len() - 1) as f64).powf(params.length_norm);
        let val = f64::from(*score) / norm;
        if best.is_none_or(|(_, b)| val > b) {
            best = Some((hyp, val));
        }
    }
    let Some(((ids, _, lps), _)) = best else {
        bail!("beam search finished without a hypothesis");
    };
    Ok(SearchOutput {
        ids: ids[1..].to_vec(),
        logprobs: lps.clone(),
        steps,
    })
}

/// The caption words of `ids`: `<start>`, `<end>` and `<pad>` dropped, joined by single spaces.
pub fn ids_to_text(ids: &[i64], vocab: &[String], skip: &[i64]) -> String {
    let words: Vec<&str> = ids
        .iter()
        .filter(|id| !skip.contains(id))
        .map(|&id| {
            usize::try_from(id)
                .ok()
                .and_then(|i| vocab.get(i))
                .map_or("<?>", |s| s.as_str())
        })
        .collect();
    words.join(" ")
}

#[cfg(test)]
mod tests;
