//! Silence gate: the RMS level of a window in dBFS (0 dBFS = a full-scale square wave).

/// RMS level of `samples` in dBFS; `-inf` for digital silence or an empty slice.
pub fn level_dbfs(samples: &[f32]) -> f64 {
    if samples.is_empty() {
        return f64::NEG_INFINITY;
    }
    let sum: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    let rms = (sum / samples.len() as f64).sqrt();
    if rms <= 0.0 {
        f64::NEG_INFINITY
    } else {
        20.0 * rms.log10()
    }
}

/// True when the window should be captioned (level at or above the threshold, or no gate).
pub fn passes(level: f64, threshold_dbfs: Option<f64>) -> bool {
    threshold_dbfs.is_none_or(|t| level >= t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels() {
        assert_eq!(level_dbfs(&[0.0; 100]), f64::NEG_INFINITY);
        assert!((level_dbfs(&[1.0, -1.0, 1.0, -1.0]) - 0.0).abs() < 1e-9);
        assert!((level_dbfs(&[0.1; 10]) + 20.0).abs() < 1e-6);
        // A full-scale sine is -3.01 dBFS.
        let sine: Vec<f32> = (0..16000).map(|i| (i as f32 * 0.05).sin()).collect();
        assert!((level_dbfs(&sine) + 3.01).abs() < 0.05);
        assert!(passes(-30.0, Some(-40.0)));
        assert!(!passes(-50.0, Some(-40.0)));
        assert!(passes(f64::NEG_INFINITY, None));
    }
}
