"""The re-ranking study's pieces: the pick, the length score, the probe support, and the fitted probe."""

import numpy as np
import torch

from earshot_train import probe_v2
from earshot_train import rerank_study as rs


def test_pick_keeps_the_beam_order_without_weight_and_follows_support_with_it():
    scores, supports = [-0.5, -0.6, -0.9], [0.01, 0.9, 0.5]
    assert rs.pick(scores, supports, 0.0) == 0
    assert rs.pick(scores, supports, 1.0) == 1
    # Ties go to the beam's own best.
    assert rs.pick([-1.0, -1.0], [0.5, 0.5], 1.0) == 0
    # A zero support is floored, not -inf.
    assert rs.pick([-0.1, -5.0], [0.0, 1.0], 0.1) == 0


def test_length_score_is_the_mean_at_alpha_one_and_favours_long_captions_above():
    assert rs.length_score(-0.5, 6, 1.0) == -0.5
    short, long_ = (-0.5, 4), (-0.55, 8)
    assert rs.length_score(*short, 1.0) > rs.length_score(*long_, 1.0)
    assert rs.length_score(*short, 2.0) < rs.length_score(*long_, 2.0)


def test_probe_support_max_and_sum():
    p = np.array([0.1, 0.6, 0.3])
    assert rs.probe_support([1, 2], p, "max") == 0.6
    assert abs(rs.probe_support([1, 2], p, "sum") - 0.9) < 1e-9
    assert rs.probe_support([], p, "max") == rs.FLOOR


def test_fitted_probe_separates_separable_classes():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 600)
    x = torch.from_numpy((np.eye(3)[y] * 3 + rng.normal(0, 0.5, (600, 3))).astype(np.float32))
    probe = probe_v2.fit_probe(x, y, 3, 200)
    with torch.no_grad():
        assert (probe(x).argmax(1).numpy() == y).mean() > 0.95


def test_scores_strict_broad_and_without_speech():
    from earshot_train.corpus_v2.taxonomy import load_taxonomy

    classes = {c.id: c for c in load_taxonomy()}
    rows = [{"class": "speech_person"}, {"class": "dog_bark"}, {"class": "dog_bark"}]
    got = rs._score(["a man is talking", "a dog barks", "rain falls"], rows, classes)
    assert got["source_accuracy"] == round(1 / 3, 4)  # the speaker's gender is not in the label
    assert got["broad_rule"] == round(2 / 3, 4)  # "a man" is a narrower class of "a person"
    assert got["without_speech"] == 0.5  # the two dog files only
