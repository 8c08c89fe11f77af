"""Corpus-v2 rendering plan, caption forms, source matching, and the confidence threshold rule."""

import random

import numpy as np

from earshot_train.calibrate import threshold_for
from earshot_train.corpus_v2.build import PLAN, _captions, _plan_split, names_class
from earshot_train.corpus_v2.grammar import Grammar
from earshot_train.corpus_v2.taxonomy import load_taxonomy

CLASSES = load_taxonomy()
BY_ID = {c.id: c for c in CLASSES}


def _files():
    return {
        "dog_bark": [f"d{i}" for i in range(3)],
        "rain": [f"r{i}" for i in range(500)],
        "rooster": ["c0"],
        "nothing": ["gen:silence/0"],
    }


def test_plan_balances_classes_and_is_deterministic():
    g = Grammar(CLASSES)
    a = _plan_split("train", _files(), g, 1)
    assert a == _plan_split("train", _files(), g, 1)
    floor, cap, n_mix, n_nothing, _ = PLAN["train"]
    singles = [x for x in a if x[0] == "single"]
    per = {c: sum(1 for x in singles if x[1] == [c]) for c in ("dog_bark", "rain", "rooster")}
    assert per == {"dog_bark": floor, "rain": cap, "rooster": floor}
    mixes = [x for x in a if x[0] in ("overlap", "sequence")]
    assert len(mixes) == n_mix and all(g.can_pair(*x[1]) for x in mixes)
    assert sum(1 for x in a if x[0] == "nothing") == n_nothing
    # generated recipes differ between splits
    gen = lambda s: {x[2][0] for x in _plan_split(s, _files(), g, 1) if x[2][0].startswith("gen:")}  # noqa: E731
    assert not (gen("train") - {"gen:silence/0"}) & gen("test")


def test_captions_name_their_classes_once_and_begin_with_a_clause():
    g = Grammar(CLASSES)
    rng = random.Random(0)
    for cid in ("dog_bark", "rain", "rooster", "chainsaw"):
        for cap in _captions(g, [cid], None, 4, rng):
            assert names_class(cap, BY_ID[cid]), cap
            assert not g.repeated_source_words(cap)
            assert not cap.startswith("the sound of") and "can be heard" not in cap
    for cap in _captions(g, ["dog_bark", "rain"], "while", 3, rng):
        assert names_class(cap, BY_ID["dog_bark"]) and names_class(cap, BY_ID["rain"]), cap


def test_names_class():
    assert names_class("a dog barks while rain falls", BY_ID["dog_bark"])
    assert not names_class("a cat meows", BY_ID["dog_bark"])
    assert names_class("nothing but silence", BY_ID["nothing"])


def test_threshold_keeps_at_most_ten_percent_wrong():
    conf = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3])
    right = np.array([1, 1, 1, 0, 1, 0, 0], float)
    t, wrong, kept = threshold_for(conf, right)
    assert t == 0.61 and wrong == 0.0 and kept == 3 / 7
    t, wrong, kept = threshold_for(conf, right, max_wrong=0.25)
    assert t == 0.41 and abs(wrong - 0.2) < 1e-9
    assert threshold_for(np.array([0.5]), np.array([0.0])) == (1.0, 0.0, 0.0)


def test_shipped_confidence_refits_from_its_validation_clips():
    """models/default's confidence section is what calibrate --v2 fits on the recorded val clips."""
    import json
    from pathlib import Path

    from earshot_train.calibrate import confidence_section

    root = Path(__file__).resolve().parents[2]
    clips = json.loads((root / "train/results/student-v2-mn04/val-clips.json").read_text())
    shipped = json.loads((root / "models/default/manifest.json").read_text())["confidence"]
    sec = confidence_section(
        [c["score"] for c in clips],
        [float(c["right"]) for c in clips],
        shipped["fit"]["target"],
        shipped["fit"]["generator"],
        threshold=True,
    )
    assert sec == shipped


def test_confidence_auc_ranks_right_above_wrong():
    from earshot_train.measure_v2 import confidence_auc

    assert confidence_auc([(0.9, True), (0.8, True), (0.2, False)]) == 1.0
    assert confidence_auc([(0.1, True), (0.8, False)]) == 0.0
    assert confidence_auc([(0.5, True), (0.5, False)]) == 0.5
    assert confidence_auc([(0.5, True)]) is None


def test_broad_rule_accepts_narrower_classes_only_for_general_ones():
    from earshot_train.corpus_v2.build import names_all
    from earshot_train.corpus_v2.taxonomy import load_taxonomy

    classes = {c.id: c for c in load_taxonomy()}
    assert not names_all("a woman says something", ["speech_person"], classes)
    assert names_all("a woman says something", ["speech_person"], classes, broad=True)
    assert names_all("a piano plays softly", ["music"], classes, broad=True)
    # the other way round stays wrong: a general caption does not name a specific class
    assert not names_all("someone is talking", ["speech_woman"], classes, broad=True)
    assert not names_all("music plays", ["piano"], classes, broad=True)


def test_taxonomy_rejects_unknown_includes(tmp_path):
    import pytest

    from earshot_train.corpus_v2.taxonomy import default_taxonomy_path, load_taxonomy

    text = (
        default_taxonomy_path()
        .read_text()
        .replace('includes = ["speech_man",', 'includes = ["no_such_class", "speech_man",')
    )
    p = tmp_path / "taxonomy.toml"
    p.write_text(text)
    with pytest.raises(ValueError, match="no_such_class"):
        load_taxonomy(p)


def test_largest_losses_counts_misses_per_class_with_their_captions():
    from earshot_train.measure_v2 import largest_losses

    per_class = {"speech_person": [0, 0, 1, 0], "drums": [0, 1], "dog_bark": [1, 1]}
    missed = {
        "speech_person": [("a woman speaks", True), ("a woman speaks", True), ("a dog barks", False)],
        "drums": [("a bell rings", False)],
    }
    out = largest_losses(missed, per_class, top=5)
    assert [x["class"] for x in out] == ["speech_person", "drums"]  # most misses first, no zero rows
    assert out[0] == {
        "class": "speech_person",
        "missed": 3,
        "of": 4,
        "broad_ok": 2,
        "captions": ["a woman speaks (2)", "a dog barks (1)"],
    }
