//! A loaded, validated model bundle: manifest + vocabulary + inference backend.

use super::backend::{EncoderDecoder, Memory};
use super::integrity::{bundle_file, verify};
use super::manifest::{Manifest, MemoryLen};
use super::tract::{DecoderMode, FixedTimeAxis, TractBackend};
use anyhow::{bail, ensure, Context, Result};
use std::path::{Path, PathBuf};

/// Options for [`Model::load`] (the commands fill them from flags and environment variables;
/// the model never reads the environment itself).
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Window length in seconds; `None` = the manifest's `window_seconds`.
    pub window_seconds: Option<f64>,
    /// Decoder plan strategy (`EARSHOT_DECODER_PLAN`).
    pub decoder_mode: DecoderMode,
    /// Use the bundle's key/value-cached decoder when it has one (`EARSHOT_DECODER_CACHE=off`
    /// turns it off).
    pub decoder_cache: bool,
}

impl Default for LoadOptions {
    fn default() -> LoadOptions {
        LoadOptions {
            window_seconds: None,
            decoder_mode: DecoderMode::Symbolic,
            decoder_cache: true,
        }
    }
}

/// The window asked for in [`LoadOptions::window_seconds`] does not suit this model: a mistake
/// in a setting, not a broken bundle. It sits in the error chain of [`Model::load`]
/// (`anyhow::Error::downcast_ref`), so that the commands report it as a usage error naming
/// their own flag or key.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowRejected {
    pub window_seconds: f64,
    pub reason: String,
}

impl std::fmt::Display for WindowRejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} s: {}", self.window_seconds, self.reason)
    }
}

impl std::error::Error for WindowRejected {}

/// Summary of a loaded model, for `earshot info` and logs.
#[derive(Debug, Clone)]
pub struct ModelSummary {
    pub engine: &'static str,
    pub mel_shape: [usize; 3],
    pub memory_shape: [usize; 3],
    pub encoder_params: u64,
    pub decoder_params: u64,
    pub load_ms: f64,
}

/// A ready-to-run model. Share it between streams behind an `Arc`.
pub struct Model {
    pub dir: PathBuf,
    pub manifest: Manifest,
    pub vocab: Vec<String>,
    /// Tag names (manifest section `tags`; empty without it), line i = tag i.
    pub tag_labels: Vec<String>,
    backend: Box<dyn EncoderDecoder>,
    window_seconds: f64,
    window_samples: usize,
    summary: ModelSummary,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("dir", &self.dir)
            .field("name", &self.manifest.name)
            .field("summary", &self.summary)
            .finish()
    }
}

/// Reads `vocab.txt`: one token per line, line i = id i.
pub fn read_vocab(path: &Path) -> Result<Vec<String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut lines: Vec<String> = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l).to_string())
        .collect();
    if lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    Ok(lines)
}

impl Model {
    /// Loads and validates the bundle in `dir` with the tract backend.
    pub fn load(dir: &Path, opts: &LoadOptions) -> Result<Model> {
        let t0 = std::time::Instant::now();
        ensure!(
            dir.is_dir(),
            "model bundle {} is not a directory",
            dir.display()
        );
        let in_bundle = |r: Result<PathBuf>| r.with_context(|| format!("bundle {}", dir.display()));
        let manifest_path = in_bundle(bundle_file(dir, "manifest.json", "manifest"))?;
        let manifest = Manifest::load(&manifest_path)?;
        // Every file the runtime will read: inside the bundle, and as exported when the manifest
        // has sha256s (checked before any graph is parsed).
        let mut used = vec![
            (manifest.encoder.file.as_str(), "encoder"),
            (manifest.decoder.file.as_str(), "decoder"),
            (manifest.vocab.as_str(), "vocabulary"),
        ];
        if let Some(c) = manifest
            .decoder_cached
            .as_ref()
            .filter(|_| opts.decoder_cache)
        {
            used.push((c.init_file.as_str(), "cached decoder (init)"));
            used.push((c.step_file.as_str(), "cached decoder (step)"));
        }
        if let Some(t) = &manifest.tags {
            used.push((t.labels.as_str(), "tags labels"));
        }
        for (name, what) in &used {
            in_bundle(bundle_file(dir, name, what))?;
        }
        if let Some(files) = &manifest.files {
            verify(dir, files, &used).with_context(|| format!("bundle {}", dir.display()))?;
        }
        let vocab_path = dir.join(&manifest.vocab);
        let vocab = read_vocab(&vocab_path)?;
        ensure!(
            vocab.len() == manifest.decoder.vocab_size,
            "bundle {}: {} has {} tokens but decoder.vocab_size is {} (vocabulary mismatch)",
            dir.display(),
            manifest.vocab,
            vocab.len(),
            manifest.decoder.vocab_size
        );
        let window_seconds = opts.window_seconds.unwrap_or(manifest.window_seconds);
        let rejected = |reason: &str| WindowRejected {
            window_seconds,
            reason: reason.to_string(),
        };
        if !(window_seconds.is_finite() && window_seconds > 0.0) {
            return Err(rejected("the window must be > 0 seconds").into());
        }
        let window_samples = manifest.samples_for_seconds(window_seconds);
        let frames = manifest.frontend.frames_for_len(window_samples);
        if frames == 0 || window_samples <= manifest.frontend.n_fft / 2 {
            return Err(rejected("too short for this model").into());
        }
        let backend = TractBackend::load(
            dir,
            &manifest.encoder,
            &manifest.decoder,
            manifest.frontend.n_mels,
            frames,
            opts.decoder_mode,
            opts.decoder_cache,
            manifest.tags.as_ref().map(|t| t.output.as_str()),
        )
        .map_err(|e| {
            let own = manifest.window_seconds;
            match e.downcast_ref::<FixedTimeAxis>() {
                Some(_) => e.context(rejected(&format!(
                    "this model accepts only its own window of {own} s"
                ))),
                None => e.context(format!("bundle {}", dir.display())),
            }
        })?;
        let tag_labels = match (&manifest.tags, backend.tags_len()) {
            (Some(spec), Some(k)) => super::tags::read_labels(dir, spec, k)
                .with_context(|| format!("bundle {}", dir.display()))?,
            _ => Vec::new(),
        };
        let (encoder_params, decoder_params) = backend.param_counts();
        let summary = ModelSummary {
            engine: backend.engine(),
            mel_shape: backend.mel_shape(),
            memory_shape: backend.memory_shape(),
            encoder_params,
            decoder_params,
            load_ms: 0.0,
        };
        let mut model = Model {
            dir: dir.to_path_buf(),
            manifest,
            vocab,
            tag_labels,
            backend: Box::new(backend),
            window_seconds,
            window_samples,
            summary,
        };
        model.self_check().with_context(|| {
            format!(
                "bundle {}: the decoder does not work with this encoder",
                dir.display()
            )
        })?;
        model.summary.load_ms = t0.elapsed().as_secs_f64() * 1e3;
        log::info!(
            "loaded model {:?} from {} in {:.0} ms",
            model.manifest.name,
            dir.display(),
            model.summary.load_ms
        );
        Ok(model)
    }

    /// Runs one decoder step on zero memory: catches decoder/encoder mismatches and a logits
    /// width that differs from the vocabulary at load time rather than on the first file.
    fn self_check(&self) -> Result<()> {
        let [_, t, d] = self.summary.memory_shape;
        let memory = Memory {
            frames: t,
            dim: d,
            data: vec![0.0; t * d],
        };
        let logits = self
            .backend
            .decode_step(&[self.manifest.tokens.start], 1, &memory)?;
        if logits.vocab != self.vocab.len() {
            bail!(
                "decoder returns {} logits, vocabulary has {} tokens",
                logits.vocab,
                self.vocab.len()
            );
        }
        Ok(())
    }

    pub fn backend(&self) -> &dyn EncoderDecoder {
        self.backend.as_ref()
    }

    pub fn summary(&self) -> &ModelSummary {
        &self.summary
    }

    /// Model sample rate (Hz).
    pub fn sample_rate(&self) -> u32 {
        self.manifest.frontend.sample_rate
    }

    /// Window length in seconds (as loaded).
    pub fn window_seconds(&self) -> f64 {
        self.window_seconds
    }

    /// Window length in samples at the model rate.
    pub fn window_samples(&self) -> usize {
        self.window_samples
    }

    /// Memory frames the decoder attends to for a window holding `valid` real samples.
    ///
    /// `effb2`: `floor((floor(valid / hop_length) + 1) / 32)`, clamped to `1..=T` — computed from
    /// the real (not zero-padded) samples, as the reference model would see an unpadded clip.
    pub fn memory_len(&self, valid: usize) -> usize {
        let t = self.summary.memory_shape[1];
        match self.manifest.encoder.memory_len {
            MemoryLen::Full => t,
            MemoryLen::Effb2 => {
                let hop = self.manifest.frontend.hop_length;
                ((valid / hop + 1) / 32).min(t)
            }
        }
    }

    /// Fewest real samples that give a non-empty memory (`memory_len` >= 1): 1 for `full`,
    /// `31 * hop_length` for `effb2` (0.31 s at 16 kHz).
    pub fn min_valid_samples(&self) -> usize {
        match self.manifest.encoder.memory_len {
            MemoryLen::Full => 1,
            MemoryLen::Effb2 => 31 * self.manifest.frontend.hop_length,
        }
    }
}
