"""Repetition control, per-token log-probabilities and Platt confidence in ``earshot_train.search``, on
hand-made logits mirroring src/model/repetition.rs and src/model/search/tests.rs (same tables, same
expected ids), so that a rule changed on one side shows up on both."""

import math

import numpy as np
import pytest

from earshot_train import search
from earshot_train.search import Repetition

SPECIAL = (0, 1, 2, 3)
VOCAB9 = ["<pad>", "<start>", "<end>", "<unk>", "a", "dog", "barks", "and", "car"]


def test_trigram_rule():
    r = Repetition.from_words(3, [], VOCAB9, SPECIAL)
    assert r.forbidden([4, 5, 6, 7, 4, 5]) == [6]
    assert r.forbidden([]) == []
    assert r.forbidden([4]) == []
    assert r.forbidden([4, 4]) == []
    assert r.forbidden([4, 4, 4]) == [4]
    assert r.forbidden([4, 5, 6, 4, 5, 8, 4, 5]) == [6, 8]


def test_unigram_and_bigram_rules():
    r = Repetition.from_words(1, [], VOCAB9, SPECIAL)
    assert r.forbidden([]) == []
    assert r.forbidden([5, 4, 5]) == [4, 5]
    r = Repetition.from_words(2, [], VOCAB9, SPECIAL)
    assert r.forbidden([4]) == []
    assert r.forbidden([4, 5, 4]) == [5]


def test_special_tokens_count_in_ngrams_but_are_never_forbidden():
    r = Repetition.from_words(2, ["<unk>", "<end>"], VOCAB9, SPECIAL)
    assert not r.once
    assert r.forbidden([3, 5, 3]) == [5]
    assert r.forbidden([3, 3]) == []


def test_once_words():
    r = Repetition.from_words(0, ["dog", "car", "zebra"], VOCAB9, SPECIAL)
    assert sorted(r.once) == [5, 8]
    assert not r.off
    assert r.forbidden([4, 6]) == []
    assert r.forbidden([4, 5, 6, 8, 5]) == [5, 8]
    r = Repetition.from_words(1, ["dog"], VOCAB9, SPECIAL)
    assert r.forbidden([5, 4]) == [4, 5]
    assert Repetition.from_words(0, ["zebra"], VOCAB9, SPECIAL).off
    assert search.NO_RULES.forbidden([4, 4, 4, 4]) == []


def test_from_manifest_reads_the_sections():
    m = {
        "search": {"no_repeat_ngram": 3, "once_words": ["dog"]},
        "tokens": {"pad": 0, "start": 1, "end": 2, "unk": 3},
    }
    r = Repetition.from_manifest(m, VOCAB9)
    assert r.no_repeat_ngram == 3 and r.once == frozenset({5})
    assert Repetition.from_manifest({"search": {}}, VOCAB9).off


# vocab: 0 pad, 1 start, 2 end, 3 "a", 4 "b" (specials 0, 1, 2 as in src/model/search/tests.rs)
VOCAB5 = ["<pad>", "<start>", "<end>", "a", "b"]


def _probs(p):
    return np.log(np.array(p, dtype=np.float32))


def _trap(prefix):
    if prefix == [1]:
        return _probs([0.01, 0.01, 0.08, 0.5, 0.4])
    if prefix == [1, 3]:
        return _probs([0.01, 0.01, 0.3, 0.34, 0.34])
    if prefix == [1, 4]:
        return _probs([0.01, 0.01, 0.96, 0.01, 0.01])
    return _probs([0.01, 0.01, 0.9, 0.04, 0.04])


def _alternate(prefix):
    if prefix[-1] == 3:
        return _probs([0.00005, 0.00005, 0.0999, 0.3, 0.6])
    return _probs([0.00005, 0.00005, 0.0999, 0.6, 0.3])


def _step(f):
    def step(tokens, memory):
        return np.stack([f([int(t) for t in row]) for row in tokens])

    return step


MEM = np.zeros((1, 1, 1), np.float32)


def _rules(n, once):
    return Repetition.from_words(n, once, VOCAB5, (0, 1, 2))


def _recomputed(f, ids):
    prefix, out = [1], []
    for v in ids:
        out.append(float(search._log_softmax(f(prefix))[v]))
        prefix.append(v)
    return out


def _has_repeated_ngram(ids, n):
    grams = [tuple(ids[i : i + n]) for i in range(len(ids) - n + 1)]
    return len(grams) != len(set(grams))


def test_search_returns_the_unmasked_logprobs():
    for beam in (1, 3):
        h = search.search_full(_step(_trap), MEM, beam, 10)
        assert h.logprobs == _recomputed(_trap, h.ids)
        assert h.score == pytest.approx(sum(h.logprobs) / len(h.logprobs), abs=1e-12)


def test_greedy_no_repeat_trigram():
    plain = search.greedy(_step(_alternate), MEM, 8)
    assert plain == [3, 4, 3, 4, 3, 4, 3, 4]
    h = search.greedy_full(_step(_alternate), MEM, 8, _rules(3, []))
    assert h.ids == [3, 4, 3, 4, 4, 3, 3, 4]
    assert not _has_repeated_ngram(h.ids, 3)
    assert h.logprobs == _recomputed(_alternate, h.ids)


@pytest.mark.parametrize("mode", search.BEAM_MODES)
@pytest.mark.parametrize(("n", "once"), [(3, []), (2, []), (0, ["a"]), (2, ["b"])])
def test_beam_no_repeat_and_once_words(n, once, mode):
    plain = search.beam_search(_step(_alternate), MEM, 2, 8, 1.0, mode)
    h = search.beam_search_many_full(_step(_alternate), [MEM], 2, 8, 1.0, mode, _rules(n, once))[0]
    if n > 0:
        assert _has_repeated_ngram(plain, n)
        assert not _has_repeated_ngram(h.ids, n)
    for w in once:
        assert h.ids.count(VOCAB5.index(w)) <= 1
    assert h.logprobs == _recomputed(_alternate, h.ids)


def test_greedy_once_words_on_the_trap():
    h = search.greedy_full(_step(_trap), MEM, 10, _rules(0, ["a"]))
    assert h.ids == [3, 4, 2]
    assert h.logprobs == pytest.approx([math.log(0.5), math.log(0.34), math.log(0.9)], abs=1e-6)
    off = _rules(0, ["zebra"])
    assert search.greedy_full(_step(_trap), MEM, 10, off) == search.greedy_full(_step(_trap), MEM, 10)
    assert search.search_full(_step(_trap), MEM, 3, 10, rules=off) == search.search_full(
        _step(_trap), MEM, 3, 10
    )


def test_platt_of_the_mean_logprob():
    lps = [float(np.log(np.float32(p))) for p in (0.9, 0.5, 0.8)]
    s = search.mean_logprob(lps)
    assert s == pytest.approx(sum(lps) / 3, abs=1e-15)
    c = search.platt(s, 3.1, 2.4)
    assert c == pytest.approx(1 / (1 + math.exp(-(3.1 * s + 2.4))), abs=1e-15)
    assert search.platt(math.log(0.25), 1.0, 0.0) == pytest.approx(0.25 / 1.25, abs=1e-12)
    assert search.mean_logprob([]) == 0.0
    assert search.sigmoid(0.0) == 0.5
    assert search.sigmoid(1000.0) == 1.0 and search.sigmoid(-1000.0) == 0.0


@pytest.mark.parametrize("mode", ["shrinking", "constant"])
def test_beam_hypotheses_are_ranked_and_start_with_the_search_result(mode):
    for f in (_trap, _alternate):
        hyps = search.beam_hypotheses(_step(f), MEM, 3, 6, 1.0, mode)
        best = search.search_full(_step(f), MEM, 3, 6, 1.0, mode)
        assert hyps[0].ids == best.ids and hyps[0].logprobs == best.logprobs
        scores = [h.score for h in hyps]
        assert scores == sorted(scores, reverse=True)
        assert len(hyps) >= (3 if mode == "constant" else 1)  # constant: until `beam` have finished
