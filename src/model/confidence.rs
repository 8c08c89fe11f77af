//! Per-caption confidence (manifest section `confidence`, docs/bundle-format.md, "Version-1
//! extensions for model v2"), the same formula as `train/earshot_train/search.py`.
//!
//! For the returned caption's generated ids `y1..yn` (`<end>` included when emitted) and their
//! unmasked log-softmax values `l1..ln` (f32, the numbers the search summed):
//! `s = (l1 + … + ln) / n` (summed in f64) and `confidence = 1 / (1 + exp(−(a·s + b)))` (Platt
//! scaling, `a` and `b` fitted on the validation split by train/).

use anyhow::{ensure, Result};
use serde::{Deserialize, Serialize};

/// The manifest's `confidence` section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ConfidenceSpec {
    /// Only `"platt"`.
    pub method: String,
    pub a: f64,
    pub b: f64,
    /// How `a` and `b` were fitted (informational).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub fit: serde_json::Value,
}

impl ConfidenceSpec {
    pub fn validate(&self) -> Result<()> {
        ensure!(
            self.method == "platt",
            "confidence.method {:?} is not supported (this earshot knows \"platt\")",
            self.method
        );
        ensure!(
            self.a.is_finite() && self.b.is_finite(),
            "confidence.a and confidence.b must be finite numbers"
        );
        Ok(())
    }

    /// Confidence of a caption whose mean per-token log-probability is `score`.
    pub fn confidence(&self, score: f64) -> f64 {
        sigmoid(self.a * score + self.b)
    }
}

/// Mean of the per-token log-probabilities (the length-normalised log-probability `s`), summed
/// in f64; 0 for an empty caption.
pub fn mean_logprob(logprobs: &[f32]) -> f64 {
    if logprobs.is_empty() {
        return 0.0;
    }
    logprobs.iter().map(|&l| f64::from(l)).sum::<f64>() / logprobs.len() as f64
}

/// `1 / (1 + exp(-x))`, without overflow for large |x|.
pub fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(a: f64, b: f64) -> ConfidenceSpec {
        ConfidenceSpec {
            method: "platt".into(),
            a,
            b,
            fit: serde_json::Value::Null,
        }
    }

    #[test]
    fn platt_of_the_mean_logprob() {
        let lps = [(0.9f32).ln(), (0.5f32).ln(), (0.8f32).ln()];
        let s = mean_logprob(&lps);
        let want = (f64::from(lps[0]) + f64::from(lps[1]) + f64::from(lps[2])) / 3.0;
        assert!((s - want).abs() < 1e-15);
        let c = spec(3.1, 2.4).confidence(s);
        assert!((c - 1.0 / (1.0 + (-(3.1 * want + 2.4)).exp())).abs() < 1e-15);
        assert!(c > 0.0 && c < 1.0);
        // a = 1, b = 0 on one token: the token's probability divided by (1 + it) ... sigmoid(ln p)
        let p = 0.25f64;
        assert!((spec(1.0, 0.0).confidence(p.ln()) - p / (1.0 + p)).abs() < 1e-12);
        assert_eq!(mean_logprob(&[]), 0.0);
    }

    #[test]
    fn sigmoid_is_stable() {
        assert_eq!(sigmoid(0.0), 0.5);
        assert_eq!(sigmoid(1000.0), 1.0);
        assert_eq!(sigmoid(-1000.0), 0.0);
        assert!((sigmoid(2.0) + sigmoid(-2.0) - 1.0).abs() < 1e-15);
    }

    #[test]
    fn validation() {
        assert!(spec(1.0, 0.0).validate().is_ok());
        assert!(spec(f64::NAN, 0.0).validate().is_err());
        let mut s = spec(1.0, 0.0);
        s.method = "isotonic".into();
        let e = format!("{:#}", s.validate().unwrap_err());
        assert!(e.contains("isotonic"), "{e}");
    }
}
