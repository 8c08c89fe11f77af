"""Caption metrics on hand-checkable inputs (pycocoevalcap, offline with Java) and source accuracy."""

from __future__ import annotations

import json
import math

import pytest

from earshot_train.corpus import read_manifest
from earshot_train.evaluate import (
    METRICS,
    UNAVAILABLE,
    evaluate_predictions,
    java_available,
    main,
    read_predictions,
    score,
    simple_tokenize,
)

REFS = {
    "a": ["a dog barks while rain falls", "a dog is barking in the rain"],
    "b": ["a rooster crows and then a baby cries", "a cock crows followed by a baby crying"],
    "c": ["a woman speaks over music", "a woman talks while music plays"],
}
SOURCES = {"a": ["dog", "rain"], "b": ["rooster", "baby"], "c": ["woman", "music"]}


@pytest.mark.skipif(not java_available(), reason="java not installed (METEOR and the PTB tokenizer need it)")
def test_identical_and_wrong_with_java():
    good = score({k: v[0] for k, v in REFS.items()}, REFS, SOURCES)
    for m in ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L"):
        assert good[m] == pytest.approx(1.0, abs=1e-6), m
    assert good["CIDEr-D"] > 2.0
    assert good["source_accuracy"] == 1.0 and good["source_accuracy_n"] == 3
    assert good["tokenizer"].startswith("ptb")
    bad = score({"a": "a cat meows", "b": "", "c": "music plays"}, REFS, SOURCES)
    assert bad["BLEU-4"] < 1e-3 and bad["METEOR"] < 0.2 and bad["CIDEr-D"] < good["CIDEr-D"] / 4
    # "music plays" names music but not the woman: a two-source clip needs both
    assert bad["source_accuracy"] == 0.0
    for m in ("SPICE", "SPIDEr", "FENSE"):
        assert bad[m] == UNAVAILABLE


def test_hand_checked_bleu1_and_rouge_l():
    refs = {"x": ["a dog barks loudly"], "y": ["rain falls on a roof"]}
    res = score({"x": "a dog barks", "y": "rain falls on a roof"}, refs, use_java=False)
    # corpus BLEU-1: 8/8 matched unigrams, hypothesis length 8 vs reference length 9 -> BP = exp(1 - 9/8)
    assert res["BLEU-1"] == pytest.approx(math.exp(1 - 9 / 8), abs=1e-6)
    # ROUGE-L (beta 1.2), x: LCS 3, P = 1, R = 3/4; y: 1.0; mean of the two
    p, r, b2 = 1.0, 0.75, 1.2**2
    f_x = (1 + b2) * p * r / (r + b2 * p)
    assert res["ROUGE-L"] == pytest.approx((f_x + 1.0) / 2, abs=1e-6)
    assert res["METEOR"] == "unavailable (needs java)"
    assert "source_accuracy" not in res


def test_source_accuracy_partial():
    preds = {"a": "a dog barks in the rain", "b": "a rooster crows", "c": "a lady talks over a song"}
    res = score(preds, REFS, SOURCES, use_java=False)
    assert res["source_accuracy"] == pytest.approx(2 / 3)


def test_bad_inputs():
    with pytest.raises(ValueError, match="no predictions"):
        score({}, REFS)
    with pytest.raises(ValueError, match="without references"):
        score({"zzz": "a dog"}, REFS, use_java=False)
    with pytest.raises(ValueError, match="not a string"):
        score({"a": 3}, REFS, use_java=False)
    assert simple_tokenize("A Dog, barks!\n") == "a dog barks"


def test_evaluate_predictions_on_tiny_corpus(tiny_corpus, tmp_path, capsys):
    corpus = tiny_corpus
    rows = [r for r in read_manifest(corpus, ["test_single", "test_mix"])]
    preds = {r["id"]: r["captions"][0] for r in rows}
    res = evaluate_predictions(preds, corpus, ["test_single", "test_mix"], use_java=False)
    assert set(res) == {"test_single", "test_mix", "all"}
    assert res["all"]["n_clips"] == len(rows)
    for split in res.values():
        assert split["source_accuracy"] == 1.0 and split["BLEU-1"] > 0.99
        assert set(METRICS) <= set(split)
    # CLI: predictions file -> JSON scores
    pf = tmp_path / "preds.jsonl"
    pf.write_text("".join(json.dumps({"id": k, "caption": "static hisses"}) + "\n" for k in preds))
    assert read_predictions(pf) == {k: "static hisses" for k in preds}
    out = tmp_path / "scores.json"
    assert (
        main(
            [
                "--preds",
                str(pf),
                "--corpus",
                str(corpus),
                "--splits",
                "test_mix",
                "--no-java",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    scores = json.loads(out.read_text())
    assert scores["all"]["source_accuracy"] < 1.0
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x"}\n')
    assert main(["--preds", str(bad), "--corpus", str(corpus), "--no-java"]) == 2
    assert "expected" in capsys.readouterr().err
