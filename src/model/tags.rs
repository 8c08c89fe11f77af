//! Clip-level tags (manifest section `tags`, docs/bundle-format.md, "Version-1 extensions for
//! model v2"): a second encoder output of `K` tag logits (`[1, K]`, f32), named by `tags.output`,
//! and a labels file with one tag name per line (line i = index i).
//!
//! Reported: the `top_k` tags whose `sigmoid(logit) >= min_score`, highest first (ties: the lower
//! index first). The activation is computed in f64 from the f32 logit.

use anyhow::{ensure, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The manifest's `tags` section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TagsSpec {
    /// Name of the encoder's tag-logits output.
    pub output: String,
    /// Labels file in the bundle (K lines).
    pub labels: String,
    /// Only `"sigmoid"`.
    #[serde(default = "default_activation")]
    pub activation: String,
    pub top_k: usize,
    pub min_score: f64,
}

fn default_activation() -> String {
    "sigmoid".to_string()
}

impl TagsSpec {
    pub fn validate(&self) -> Result<()> {
        ensure!(
            !self.output.is_empty(),
            "tags.output must name an encoder output"
        );
        ensure!(!self.labels.is_empty(), "tags.labels must name a file");
        ensure!(
            self.activation == "sigmoid",
            "tags.activation {:?} is not supported (this earshot knows \"sigmoid\")",
            self.activation
        );
        ensure!(self.top_k >= 1, "tags.top_k must be >= 1");
        ensure!(
            self.min_score.is_finite(),
            "tags.min_score must be a number"
        );
        Ok(())
    }

    /// The reported tags of one clip's `logits` (one per label).
    pub fn top(&self, logits: &[f32], labels: &[String]) -> Vec<(String, f32)> {
        let mut scored: Vec<(usize, f64)> = logits
            .iter()
            .map(|&l| super::confidence::sigmoid(f64::from(l)))
            .enumerate()
            .filter(|&(_, s)| s >= self.min_score)
            .collect();
        // Stable: equal scores keep the lower index first.
        scored.sort_by(|a, b| b.1.total_cmp(&a.1));
        scored.truncate(self.top_k);
        scored
            .into_iter()
            .map(|(i, s)| {
                let name = labels.get(i).map_or("<?>", |s| s.as_str());
                (name.to_string(), s as f32)
            })
            .collect()
    }
}

/// Reads the labels file of `spec` in `dir` and checks that it has `k` lines (the width of the
/// encoder's tags output).
pub fn read_labels(dir: &Path, spec: &TagsSpec, k: usize) -> Result<Vec<String>> {
    let path = dir.join(&spec.labels);
    ensure!(path.is_file(), "tags labels {} are missing", path.display());
    let labels = super::bundle::read_vocab(&path)
        .with_context(|| format!("tags labels {}", path.display()))?;
    ensure!(
        labels.len() == k,
        "{} has {} labels but the encoder's {:?} output has {k} tags (labels mismatch)",
        spec.labels,
        labels.len(),
        spec.output
    );
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(top_k: usize, min_score: f64) -> TagsSpec {
        TagsSpec {
            output: "tags".into(),
            labels: "tags.txt".into(),
            activation: "sigmoid".into(),
            top_k,
            min_score,
        }
    }

    fn labels() -> Vec<String> {
        ["Speech", "Dog", "Rain", "Car"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    #[test]
    fn top_k_above_min_score_highest_first() {
        // sigmoid: 0.5, 0.881, 0.269, 0.881
        let logits = [0.0f32, 2.0, -1.0, 2.0];
        let t = spec(5, 0.3).top(&logits, &labels());
        let names: Vec<&str> = t.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["Dog", "Car", "Speech"]);
        assert!((t[0].1 - 0.880_797).abs() < 1e-6);
        assert_eq!(t[2].1, 0.5);
        let t = spec(1, 0.0).top(&logits, &labels());
        assert_eq!(t, vec![("Dog".to_string(), t[0].1)]);
        assert!(spec(3, 0.9).top(&logits, &labels()).is_empty());
        // NaN never qualifies
        assert!(spec(3, 0.0).top(&[f32::NAN], &labels()).is_empty());
    }

    #[test]
    fn validation_and_labels() {
        assert!(spec(5, 0.2).validate().is_ok());
        assert!(spec(0, 0.2).validate().is_err());
        let mut s = spec(5, 0.2);
        s.activation = "softmax".into();
        assert!(s.validate().is_err());
        let dir = tempfile::tempdir().unwrap();
        let e = format!("{:#}", read_labels(dir.path(), &s, 4).unwrap_err());
        assert!(e.contains("missing"), "{e}");
        std::fs::write(dir.path().join("tags.txt"), "Speech\nDog\nRain\n").unwrap();
        let e = format!("{:#}", read_labels(dir.path(), &s, 4).unwrap_err());
        assert!(e.contains("3 labels") && e.contains("4 tags"), "{e}");
        assert_eq!(read_labels(dir.path(), &s, 3).unwrap().len(), 3);
    }
}
