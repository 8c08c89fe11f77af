"""The confidence study's pieces: the logistic fit, tag support and named classes of a caption."""

import numpy as np

from earshot_train import confidence_study as cs
from earshot_train.corpus_v2.taxonomy import load_taxonomy

SOURCES = [c for c in load_taxonomy() if c.id != "nothing"]


def test_logistic_fit_orders_by_the_informative_feature():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 4000).astype(float)
    x = np.c_[y * 2.0 + rng.normal(0, 1, 4000), rng.normal(0, 1, 4000)]
    w = cs.fit_logistic(x, y)
    assert w[0] > 1.0 and abs(w[1]) < 0.3


def test_tag_support_is_the_weakest_named_class():
    tags = {"Dog": 0.9, "Bark": 0.4, "Rain": 0.1}
    assert cs.tag_support("a dog barks", tags, SOURCES) == 0.9
    assert cs.tag_support("a dog barks while rain falls", tags, SOURCES) < 0.9
    assert cs.tag_support("nothing can be heard", tags, SOURCES) == 0.5


def test_named_classes_of_a_caption():
    assert "dog_bark" in cs.named_classes("a dog barks", SOURCES)
    assert cs.named_classes("nothing can be heard", SOURCES) == frozenset({"nothing"})
