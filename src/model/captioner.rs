//! [`Captioner`]: one window of samples at the model rate → one [`Caption`].
//!
//! The model (read-only, shared behind an `Arc`) is separate from the per-stream state (front-end
//! buffers, search parameters), so several streams can share one loaded model. Everything that
//! consumes windows (`earshot caption`'s driver, `listen`'s inference thread, the test fakes)
//! talks to the [`WindowCaptioner`] trait, which [`Captioner`] implements.

use super::bundle::Model;
use super::confidence::mean_logprob;
use super::frontend::{Features, LogMel};
use super::repetition::Repetition;
use super::search::{ids_to_text, search, SearchParams};
use anyhow::{bail, ensure, Context, Result};
use std::sync::Arc;
use std::time::Instant;

/// Time spent per stage, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Timings {
    pub frontend_ms: f64,
    pub encoder_ms: f64,
    pub decoder_ms: f64,
    /// Decoder calls made by the search.
    pub decoder_steps: usize,
}

impl Timings {
    pub fn total_ms(&self) -> f64 {
        self.frontend_ms + self.encoder_ms + self.decoder_ms
    }
}

/// A caption for one window.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Caption {
    pub text: String,
    /// Generated ids (without `<start>`, with `<end>` if emitted).
    pub token_ids: Vec<i64>,
    pub timings: Timings,
    /// Log-softmax of each of `token_ids` (f32, unmasked; what the search summed).
    pub token_logprobs: Vec<f32>,
    /// Mean of `token_logprobs`: the length-normalised log-probability of the caption.
    pub score: f64,
    /// `confidence` of the bundle applied to `score` (src/model/confidence.rs); `None` when the
    /// bundle has no `confidence` section.
    pub confidence: Option<f64>,
    /// Clip-level tags with their scores, highest first; `None` when the bundle has no `tags`
    /// section (`Some` and empty: no tag reached `min_score`).
    pub tags: Option<Vec<(String, f32)>>,
}

/// Something that captions one window at the model rate (the real [`Captioner`], or a fake
/// model in tests).
pub trait WindowCaptioner: Send {
    /// Model input length in samples (windows are zero-padded to it).
    fn window_samples(&self) -> usize;
    /// `window` has exactly [`Self::window_samples`] samples; the first `valid` are real audio.
    fn caption(&mut self, window: &[f32], valid: usize) -> Result<Caption>;
}

/// Per-stream captioning state over a shared [`Model`].
pub struct Captioner {
    model: Arc<Model>,
    frontend: LogMel,
    params: SearchParams,
    skip: Vec<i64>,
}

impl std::fmt::Debug for Captioner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Captioner")
            .field("params", &self.params)
            .finish()
    }
}

impl Captioner {
    /// `beam`: `None` = the manifest's `search.beam`; 1 = greedy.
    pub fn new(model: Arc<Model>, beam: Option<usize>) -> Result<Captioner> {
        let m = &model.manifest;
        let beam = beam.unwrap_or(m.search.beam);
        ensure!(beam >= 1, "beam must be >= 1");
        let params = SearchParams {
            beam,
            max_len: m.search.max_len,
            length_norm: m.search.length_norm,
            start: m.tokens.start,
            end: m.tokens.end,
            mode: m.search.beam_mode,
            repetition: Repetition::new(
                m.search.no_repeat_ngram,
                &m.search.once_words,
                &model.vocab,
                &[m.tokens.pad, m.tokens.start, m.tokens.end, m.tokens.unk],
            ),
        };
        let skip = vec![m.tokens.start, m.tokens.end, m.tokens.pad];
        let frontend = LogMel::new(&m.frontend)?;
        Ok(Captioner {
            model,
            frontend,
            params,
            skip,
        })
    }

    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    pub fn params(&self) -> &SearchParams {
        &self.params
    }

    /// Window length the captioner expects, in samples at the model rate.
    pub fn window_samples(&self) -> usize {
        self.model.window_samples()
    }

    /// Log-mel features of one window (exposed for parity tests and tools).
    pub fn features(&mut self, window: &[f32]) -> Result<Features> {
        self.frontend.compute(window)
    }

    /// Captions one window: exactly [`Self::window_samples`] samples at the model rate, of which
    /// the first `valid` are real audio (the rest is zero padding).
    pub fn caption(&mut self, window: &[f32], valid: usize) -> Result<Caption> {
        ensure!(
            window.len() == self.window_samples(),
            "window has {} samples, expected {}",
            window.len(),
            self.window_samples()
        );
        let mut timings = Timings::default();
        let t = Instant::now();
        let feats = self.frontend.compute(window).context("front end")?;
        timings.frontend_ms = ms(t);

        let t = Instant::now();
        let backend = self.model.backend();
        let (memory, tag_logits) = backend.encode_tagged(&feats.data).context("encoder")?;
        timings.encoder_ms = ms(t);

        let valid = valid.min(window.len());
        let len = self.model.memory_len(valid);
        if len == 0 {
            let min = self.model.min_valid_samples();
            let rate = f64::from(self.model.sample_rate());
            bail!(
                "clip too short for this model: {valid} samples ({:.3} s) of audio, it needs at least \
                 {min} samples ({:.2} s)",
                valid as f64 / rate,
                min as f64 / rate
            );
        }
        let memory = if len < memory.frames {
            memory.truncated(len)
        } else {
            memory
        };
        let t = Instant::now();
        let out = search(backend, &memory, &self.params).context("decoder")?;
        timings.decoder_ms = ms(t);
        timings.decoder_steps = out.steps;
        let text = ids_to_text(&out.ids, &self.model.vocab, &self.skip);
        let m = &self.model.manifest;
        let score = mean_logprob(&out.logprobs);
        let confidence = m.confidence.as_ref().map(|c| c.confidence(score));
        let tags = match (&m.tags, tag_logits) {
            (Some(spec), Some(logits)) => Some(spec.top(&logits, &self.model.tag_labels)),
            _ => None,
        };
        Ok(Caption {
            text,
            token_ids: out.ids,
            timings,
            token_logprobs: out.logprobs,
            score,
            confidence,
            tags,
        })
    }
}

impl WindowCaptioner for Captioner {
    fn window_samples(&self) -> usize {
        Captioner::window_samples(self)
    }
    fn caption(&mut self, window: &[f32], valid: usize) -> Result<Caption> {
        Captioner::caption(self, window, valid)
    }
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}
