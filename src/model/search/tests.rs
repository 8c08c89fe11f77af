//! Search tests on hand-made logits (a decoder that reads its scores from a table).

use super::*;
use crate::model::backend::Logits;

/// A decoder whose next-token scores depend only on the prefix, from a table.
struct TableDecoder {
    vocab: usize,
    f: fn(&[i64]) -> Vec<f32>,
}

impl EncoderDecoder for TableDecoder {
    fn engine(&self) -> &'static str {
        "table"
    }
    fn encode(&self, _mel: &[f32]) -> Result<Memory> {
        unreachable!()
    }
    fn decode_step(&self, tokens: &[i64], batch: usize, _m: &Memory) -> Result<Logits> {
        let len = tokens.len() / batch;
        let mut data = Vec::new();
        for b in 0..batch {
            let row = (self.f)(&tokens[b * len..(b + 1) * len]);
            assert_eq!(row.len(), self.vocab);
            data.extend(row);
        }
        Ok(Logits {
            batch,
            vocab: self.vocab,
            data,
        })
    }
}

fn mem() -> Memory {
    Memory {
        frames: 1,
        dim: 1,
        data: vec![0.0],
    }
}

fn params(beam: usize, max_len: usize) -> SearchParams {
    SearchParams {
        beam,
        max_len,
        length_norm: 1.0,
        start: 1,
        end: 2,
        mode: BeamMode::Shrinking,
        repetition: Repetition::default(),
    }
}

// vocab: 0 pad, 1 start, 2 end, 3 "a", 4 "b"
fn probs(p: &[f32]) -> Vec<f32> {
    p.iter().map(|x| x.ln()).collect()
}

/// Greedy takes "a" (0.5) then is stuck with low-probability tokens; the beam finds
/// "b <end>" which is better overall.
fn trap(prefix: &[i64]) -> Vec<f32> {
    match prefix {
        [1] => probs(&[0.01, 0.01, 0.08, 0.5, 0.4]),
        [1, 3] => probs(&[0.01, 0.01, 0.3, 0.34, 0.34]),
        [1, 4] => probs(&[0.01, 0.01, 0.96, 0.01, 0.01]),
        _ => probs(&[0.01, 0.01, 0.9, 0.04, 0.04]),
    }
}

#[test]
fn greedy_follows_argmax_and_stops_at_end() {
    let d = TableDecoder { vocab: 5, f: trap };
    let out = greedy(&d, &mem(), &params(1, 10)).unwrap();
    assert_eq!(out.ids, vec![3, 3, 2]);
    assert_eq!(out.steps, 3);
    let out = greedy(&d, &mem(), &params(1, 2)).unwrap();
    assert_eq!(out.ids, vec![3, 3]);
}

#[test]
fn beam_finds_the_better_caption() {
    let d = TableDecoder { vocab: 5, f: trap };
    let out = beam_search(&d, &mem(), &params(3, 10)).unwrap();
    assert_eq!(out.ids, vec![4, 2]);
}

#[test]
fn beam_length_normalisation_changes_the_winner() {
    // "<end>" right away: score ln(0.3) over 1 token = -1.20.
    // "a <end>": ln(0.6)+ln(0.9) = -0.616 over 2 tokens = -0.31 (wins when normalised),
    // but -0.616 > -1.20 also wins unnormalised; make the long one lose unnormalised:
    fn f(prefix: &[i64]) -> Vec<f32> {
        match prefix {
            [1] => probs(&[0.01, 0.01, 0.45, 0.52, 0.01]),
            [1, 3] => probs(&[0.01, 0.01, 0.6, 0.37, 0.01]),
            _ => probs(&[0.01, 0.01, 0.96, 0.01, 0.01]),
        }
    }
    let d = TableDecoder { vocab: 5, f };
    let mut p = params(2, 5);
    // unnormalised: <end> = ln .45 = -0.80; a <end> = ln .52 + ln .6 = -1.16 -> "<end>"
    p.length_norm = 0.0;
    assert_eq!(beam_search(&d, &mem(), &p).unwrap().ids, vec![2]);
    // normalised: -0.80 vs -0.58 -> "a <end>"
    p.length_norm = 1.0;
    assert_eq!(beam_search(&d, &mem(), &p).unwrap().ids, vec![3, 2]);
}

#[test]
fn constant_beam_refills_finished_slots() {
    // Step 1: "<end>" (0.5) finishes at once, "a" (0.3) stays live. Shrinking: one slot left,
    // it follows "a a ..." to max_len and "<end>" (-0.69) wins. Constant (the released effb2
    // student's search): two live slots "a a" and "a b"; "a b <end>" finishes with
    // (ln .3 + ln .45 + ln .99) / 3 = -0.67 and wins; the search stops there (2 finished).
    fn f(prefix: &[i64]) -> Vec<f32> {
        match prefix {
            [1] => probs(&[0.0001, 0.0001, 0.5, 0.3, 0.2]),
            [1, 3] => probs(&[0.0001, 0.0001, 0.1, 0.45, 0.45]),
            [1, 3, 4] => probs(&[0.0001, 0.0001, 0.99, 0.005, 0.005]),
            _ => probs(&[0.0001, 0.0001, 0.02, 0.49, 0.49]),
        }
    }
    let d = TableDecoder { vocab: 5, f };
    let mut p = params(2, 5);
    assert_eq!(beam_search(&d, &mem(), &p).unwrap().ids, vec![2]);
    p.mode = BeamMode::Constant;
    let out = beam_search(&d, &mem(), &p).unwrap();
    assert_eq!(out.ids, vec![3, 4, 2]);
    assert_eq!(out.steps, 3);
}

#[test]
fn beam_hits_max_len() {
    fn f(_p: &[i64]) -> Vec<f32> {
        probs(&[0.01, 0.01, 0.01, 0.5, 0.47])
    }
    let d = TableDecoder { vocab: 5, f };
    let out = beam_search(&d, &mem(), &params(2, 4)).unwrap();
    assert_eq!(out.ids, vec![3, 3, 3, 3]);
}

#[test]
fn ties_prefer_the_lower_index() {
    fn f(_p: &[i64]) -> Vec<f32> {
        vec![0.0, 0.0, 1.0, 1.0, 1.0]
    }
    let d = TableDecoder { vocab: 5, f };
    assert_eq!(greedy(&d, &mem(), &params(1, 3)).unwrap().ids, vec![2]);
    assert_eq!(beam_search(&d, &mem(), &params(2, 3)).unwrap().ids, vec![2]);
}

fn vocab5() -> Vec<String> {
    ["<pad>", "<start>", "<end>", "a", "b"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

fn with_rules(mut p: SearchParams, n: usize, once: &[&str]) -> SearchParams {
    let once: Vec<String> = once.iter().map(|s| s.to_string()).collect();
    p.repetition = Repetition::new(n, &once, &vocab5(), &[0, 1, 2]);
    p
}

/// The log-softmax of each chosen token, recomputed from the decoder on each prefix.
fn recomputed_logprobs(f: fn(&[i64]) -> Vec<f32>, ids: &[i64]) -> Vec<f32> {
    let mut prefix = vec![1];
    let mut lp = Vec::new();
    ids.iter()
        .map(|&v| {
            log_softmax(&f(&prefix), &mut lp);
            prefix.push(v);
            lp[v as usize]
        })
        .collect()
}

fn has_repeated_ngram(ids: &[i64], n: usize) -> bool {
    let grams: Vec<&[i64]> = ids.windows(n).collect();
    (0..grams.len()).any(|i| grams[i + 1..].contains(&grams[i]))
}

/// "a b a b ..." forever unless stopped: after <start> or "b", "a" (0.6) then "b" (0.3);
/// after "a", "b" (0.6) then "a" (0.3); "<end>" 0.1 - 1e-4.
fn alternate(prefix: &[i64]) -> Vec<f32> {
    match prefix.last() {
        Some(3) => probs(&[0.00005, 0.00005, 0.0999, 0.3, 0.6]),
        _ => probs(&[0.00005, 0.00005, 0.0999, 0.6, 0.3]),
    }
}

#[test]
fn search_returns_the_unmasked_logprobs() {
    let d = TableDecoder { vocab: 5, f: trap };
    for beam in [1, 3] {
        let out = search(&d, &mem(), &params(beam, 10)).unwrap();
        assert_eq!(
            out.logprobs,
            recomputed_logprobs(trap, &out.ids),
            "beam {beam}"
        );
    }
}

#[test]
fn greedy_no_repeat_trigram() {
    let d = TableDecoder {
        vocab: 5,
        f: alternate,
    };
    let plain = greedy(&d, &mem(), &params(1, 8)).unwrap();
    assert_eq!(plain.ids, vec![3, 4, 3, 4, 3, 4, 3, 4]);
    let out = greedy(&d, &mem(), &with_rules(params(1, 8), 3, &[])).unwrap();
    // "a b a b": "a" would repeat "a b a" -> "b" (0.3); "a b a b b a": "b" would repeat
    // "b a b" -> "a" (0.3); then "a a b" is new.
    assert_eq!(out.ids, vec![3, 4, 3, 4, 4, 3, 3, 4]);
    assert!(!has_repeated_ngram(&out.ids, 3));
    // the scores of the tokens taken are their unmasked log-softmax
    assert_eq!(out.logprobs, recomputed_logprobs(alternate, &out.ids));
}

#[test]
fn beam_no_repeat_and_once_words() {
    let d = TableDecoder {
        vocab: 5,
        f: alternate,
    };
    for (n, once) in [(3, vec![]), (2, vec![]), (0, vec!["a"]), (2, vec!["b"])] {
        for mode in [BeamMode::Shrinking, BeamMode::Constant] {
            let mut p = with_rules(params(2, 8), n, &once);
            p.mode = mode;
            let out = beam_search(&d, &mem(), &p).unwrap();
            let what = format!("n {n} once {once:?} {mode:?}: {:?}", out.ids);
            if n > 0 {
                assert!(!has_repeated_ngram(&out.ids, n), "{what}");
            }
            for w in &once {
                let id = vocab5().iter().position(|v| v == w).unwrap() as i64;
                assert!(out.ids.iter().filter(|&&x| x == id).count() <= 1, "{what}");
            }
            assert_eq!(
                out.logprobs,
                recomputed_logprobs(alternate, &out.ids),
                "{what}"
            );
        }
    }
}

#[test]
fn greedy_once_words_on_the_trap() {
    // "a" (0.5), then "a" is used: "b" (0.34, tied with the masked "a"), then "<end>" (0.9).
    let d = TableDecoder { vocab: 5, f: trap };
    let out = greedy(&d, &mem(), &with_rules(params(1, 10), 0, &["a"])).unwrap();
    assert_eq!(out.ids, vec![3, 4, 2]);
    let want = [0.5f32.ln(), 0.34f32.ln(), 0.9f32.ln()];
    for (g, w) in out.logprobs.iter().zip(want) {
        assert!((g - w).abs() < 1e-6, "{:?}", out.logprobs);
    }
    // rules off: exactly the plain search
    let off = with_rules(params(1, 10), 0, &["zebra"]);
    assert_eq!(
        greedy(&d, &mem(), &off).unwrap(),
        greedy(&d, &mem(), &params(1, 10)).unwrap()
    );
    let off = with_rules(params(3, 10), 0, &["zebra"]);
    assert_eq!(
        beam_search(&d, &mem(), &off).unwrap(),
        beam_search(&d, &mem(), &params(3, 10)).unwrap()
    );
}

#[test]
fn text_skips_special_tokens() {
    let vocab: Vec<String> = ["<pad>", "<start>", "<end>", "a", "dog"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(ids_to_text(&[3, 4, 0, 2], &vocab, &[0, 1, 2]), "a dog");
}
