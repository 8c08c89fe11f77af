"""Fixtures shared by the train/ tests.

The tiny synthetic corpus (``train/configs/corpus-tiny.toml``: tones and noise generated in code, no
shared data) is built once per test session by :func:`tiny_corpus`; every test that needs a corpus
starts from it or, when it needs a smaller one, from :func:`tiny_corpus_config` with overrides.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from earshot_train.corpus import CorpusConfig, build_corpus
from earshot_train.shared import REPO_ROOT

TINY_CORPUS_CONFIG = REPO_ROOT / "train" / "configs" / "corpus-tiny.toml"


def tiny_corpus_config(**overrides) -> CorpusConfig:
    """The tiny corpus config, with ``overrides`` (field name -> value) applied."""
    cfg = CorpusConfig.load(TINY_CORPUS_CONFIG)
    if not overrides:
        return cfg
    return CorpusConfig.from_dict({**vars(cfg), **overrides})


def build_tiny_corpus(out: Path, **overrides) -> Path:
    """Builds the tiny corpus (with ``overrides``) into ``out``."""
    return build_corpus(tiny_corpus_config(**overrides), out, progress=False)


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    """The tiny corpus, built once per session. Read-only: copy it before changing anything."""
    return build_tiny_corpus(tmp_path_factory.mktemp("corpus") / "tiny")
