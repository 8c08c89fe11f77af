//! Caption de-duplication: a caption identical or nearly identical (word-level edit similarity at
//! or above a threshold) to one *emitted* within the last `holdoff` seconds of stream time is
//! suppressed. Only emitted captions start a hold-off, so a sound that goes on for a long time is
//! re-announced once per hold-off.

use heapless::Deque;

/// Remembered emitted captions (older ones fall out of the hold-off anyway).
const HISTORY: usize = 16;

#[derive(Debug)]
pub struct Dedup {
    holdoff: f64,
    similarity: f64,
    recent: Deque<(f64, Vec<String>), HISTORY>,
}

/// Lower-case words with punctuation trimmed.
fn words(text: &str) -> Vec<String> {
    text.split_whitespace()
        .map(|w| {
            w.trim_matches(|c: char| !c.is_alphanumeric())
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

/// 1 - word edit distance / longer length (1.0 = identical, both empty = identical).
pub fn similarity(a: &[String], b: &[String]) -> f64 {
    let n = a.len().max(b.len());
    if n == 0 {
        return 1.0;
    }
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, wa) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, wb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(wa != wb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    1.0 - prev[b.len()] as f64 / n as f64
}

impl Dedup {
    pub fn new(holdoff_seconds: f64, similarity: f64) -> Dedup {
        Dedup {
            holdoff: holdoff_seconds,
            similarity,
            recent: Deque::new(),
        }
    }

    /// Decides for a caption of the window ending at `t` (stream seconds): `true` = emit it
    /// (and remember it), `false` = suppress.
    pub fn admit(&mut self, text: &str, t: f64) -> bool {
        while let Some((t0, _)) = self.recent.front() {
            if t - *t0 >= self.holdoff {
                self.recent.pop_front();
            } else {
                break;
            }
        }
        let w = words(text);
        if self
            .recent
            .iter()
            .any(|(_, prev)| similarity(prev, &w) >= self.similarity)
        {
            return false;
        }
        if self.recent.is_full() {
            self.recent.pop_front();
        }
        let _ = self.recent.push_back((t, w));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn similarity_values() {
        let a = words("A dog barks loudly");
        assert_eq!(similarity(&a, &words("a dog barks, loudly.")), 1.0);
        assert!((similarity(&a, &words("a dog barks softly")) - 0.75).abs() < 1e-9);
        assert_eq!(similarity(&a, &words("rain falls")), 0.0);
    }

    #[test]
    fn holdoff_and_near_duplicates() {
        let mut d = Dedup::new(30.0, 0.75);
        assert!(d.admit("a dog barks loudly", 10.0));
        assert!(!d.admit("a dog barks loudly", 15.0)); // identical
        assert!(!d.admit("a dog barks softly", 20.0)); // near-identical (0.75)
        assert!(d.admit("rain falls on a roof", 25.0)); // different
        assert!(!d.admit("a dog barks loudly", 39.9)); // still inside 30 s of t=10
        assert!(d.admit("a dog barks loudly", 40.0)); // hold-off over
        assert!(!d.admit("rain falls on a roof", 50.0));
        assert!(d.admit("rain falls on a roof", 55.0));
    }

    #[test]
    fn zero_holdoff_never_suppresses() {
        let mut d = Dedup::new(0.0, 0.8);
        assert!(d.admit("x y", 1.0));
        assert!(d.admit("x y", 1.0));
    }
}
