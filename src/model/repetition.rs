//! Repetition control of the search (manifest `search.no_repeat_ngram` and `search.once_words`,
//! docs/bundle-format.md, "Version-1 extensions for model v2"), the same rules as
//! `train/earshot_train/search.py`.
//!
//! For a hypothesis whose generated ids (after `<start>`) are `y1..yt`, a token `v` is forbidden
//! when
//! - `no_repeat_ngram = n > 0` and the n-gram `y(t-n+2)..yt v` already occurs in `y1..yt` (for
//!   `n = 1`: `v` occurs in `y1..yt`; nothing is forbidden while `t < n`), or
//! - `v` is one of the `once_words` and already occurs in `y1..yt`.
//!
//! The special tokens (`<pad> <start> <end> <unk>`) are never forbidden (so `<end>` always stays
//! possible), though they count as part of the n-grams they appear in. Forbidding only removes
//! candidates: the scores of the tokens kept are their unmasked log-softmax.

/// The repetition rules of one bundle, with `once_words` resolved to token ids.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Repetition {
    /// `0` = off.
    pub no_repeat_ngram: usize,
    /// Ids of the `once_words` found in the vocabulary (sorted, specials removed).
    once: Vec<i64>,
    /// Never forbidden.
    special: Vec<i64>,
}

impl Repetition {
    /// Rules for `vocab` (line i = id i). Words of `once_words` that are not in the vocabulary
    /// are ignored (the list is robust to retraining); `special` ids are never forbidden.
    pub fn new(
        no_repeat_ngram: usize,
        once_words: &[String],
        vocab: &[String],
        special: &[i64],
    ) -> Repetition {
        let mut once: Vec<i64> = vocab
            .iter()
            .enumerate()
            .filter(|(_, w)| once_words.iter().any(|o| o == *w))
            .map(|(i, _)| i as i64)
            .filter(|id| !special.contains(id))
            .collect();
        once.sort_unstable();
        Repetition {
            no_repeat_ngram,
            once,
            special: special.to_vec(),
        }
    }

    /// No rule is active (the search then runs exactly as without this section).
    pub fn is_off(&self) -> bool {
        self.no_repeat_ngram == 0 && self.once.is_empty()
    }

    /// The token ids of the `once_words` (for tools and tests).
    pub fn once_ids(&self) -> &[i64] {
        &self.once
    }

    /// Writes to `out` the tokens forbidden after the generated ids `gen` (without `<start>`),
    /// sorted and without duplicates.
    pub fn forbidden(&self, gen: &[i64], out: &mut Vec<i64>) {
        out.clear();
        let n = self.no_repeat_ngram;
        if n > 0 && gen.len() >= n {
            let t = gen.len();
            let suffix = &gen[t + 1 - n..];
            // Every n-gram `gen[i..i + n]` of the hypothesis whose first n-1 ids equal the suffix.
            for i in 0..=t - n {
                if gen[i..i + n - 1] == *suffix {
                    out.push(gen[i + n - 1]);
                }
            }
        }
        if !self.once.is_empty() {
            out.extend(
                gen.iter()
                    .copied()
                    .filter(|id| self.once.binary_search(id).is_ok()),
            );
        }
        out.retain(|id| !self.special.contains(id));
        out.sort_unstable();
        out.dedup();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPECIAL: [i64; 4] = [0, 1, 2, 3];

    fn vocab() -> Vec<String> {
        [
            "<pad>", "<start>", "<end>", "<unk>", "a", "dog", "barks", "and", "car",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    fn forbidden(r: &Repetition, gen: &[i64]) -> Vec<i64> {
        let mut out = vec![99];
        r.forbidden(gen, &mut out);
        out
    }

    #[test]
    fn trigram_rule() {
        let r = Repetition::new(3, &[], &vocab(), &SPECIAL);
        // a dog barks and a dog -> "barks" would repeat "a dog barks"
        assert_eq!(forbidden(&r, &[4, 5, 6, 7, 4, 5]), vec![6]);
        // too short for any trigram
        assert_eq!(forbidden(&r, &[]), Vec::<i64>::new());
        assert_eq!(forbidden(&r, &[4]), Vec::<i64>::new());
        // a a -> a (the trigram "a a a" is new: "a a" has no continuation yet)
        assert_eq!(forbidden(&r, &[4, 4]), Vec::<i64>::new());
        // a a a -> a would repeat "a a a"
        assert_eq!(forbidden(&r, &[4, 4, 4]), vec![4]);
        // two earlier continuations of "a dog"
        assert_eq!(forbidden(&r, &[4, 5, 6, 4, 5, 8, 4, 5]), vec![6, 8]);
    }

    #[test]
    fn unigram_and_bigram_rules() {
        let r = Repetition::new(1, &[], &vocab(), &SPECIAL);
        assert_eq!(forbidden(&r, &[]), Vec::<i64>::new());
        assert_eq!(forbidden(&r, &[5, 4, 5]), vec![4, 5]);
        let r = Repetition::new(2, &[], &vocab(), &SPECIAL);
        assert_eq!(forbidden(&r, &[4]), Vec::<i64>::new());
        assert_eq!(forbidden(&r, &[4, 5, 4]), vec![5]);
    }

    #[test]
    fn special_tokens_count_in_ngrams_but_are_never_forbidden() {
        let r = Repetition::new(2, &["<unk>".into(), "<end>".into()], &vocab(), &SPECIAL);
        assert!(r.once_ids().is_empty());
        // <unk> dog <unk> -> dog forbidden (bigram "<unk> dog"), <unk> itself never
        assert_eq!(forbidden(&r, &[3, 5, 3]), vec![5]);
        assert_eq!(forbidden(&r, &[3, 3]), Vec::<i64>::new());
    }

    #[test]
    fn once_words() {
        let r = Repetition::new(
            0,
            &["dog".into(), "car".into(), "zebra".into()],
            &vocab(),
            &SPECIAL,
        );
        assert_eq!(r.once_ids(), &[5, 8]);
        assert!(!r.is_off());
        assert_eq!(forbidden(&r, &[4, 6]), Vec::<i64>::new());
        assert_eq!(forbidden(&r, &[4, 5, 6, 8, 5]), vec![5, 8]);
        // both rules together, deduplicated
        let r = Repetition::new(1, &["dog".into()], &vocab(), &SPECIAL);
        assert_eq!(forbidden(&r, &[5, 4]), vec![4, 5]);
    }

    #[test]
    fn off_by_default() {
        let r = Repetition::default();
        assert!(r.is_off());
        assert!(Repetition::new(0, &["zebra".into()], &vocab(), &SPECIAL).is_off());
        assert_eq!(forbidden(&r, &[4, 4, 4, 4]), Vec::<i64>::new());
    }
}
