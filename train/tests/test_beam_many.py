"""beam_search_many (several clips per decoder call) gives exactly the per-clip beam search."""

import numpy as np
import pytest

from earshot_train import search


def _toy_step(vocab: int, seed: int):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(vocab, vocab)).astype(np.float32) * 3
    u = rng.normal(size=(4, vocab)).astype(np.float32) * 2

    def step(tokens: np.ndarray, memory: np.ndarray) -> np.ndarray:
        # depends on the last token, the prefix length and the clip's memory, row by row
        last = tokens[:, -1]
        return w[last] + memory[:, 0, :vocab] + u[tokens.shape[1] % 4]

    return step


@pytest.mark.parametrize("mode", search.BEAM_MODES)
@pytest.mark.parametrize("beam", [1, 2, 3, 5])
def test_many_equals_one_by_one(mode, beam):
    vocab = 12
    step = _toy_step(vocab, 3)
    rng = np.random.default_rng(7)
    mems = [rng.normal(size=(1, 2, vocab)).astype(np.float32) for _ in range(9)]
    alone = [search.beam_search(step, m, beam, 8, 1.0, mode) for m in mems]
    together = search.beam_search_many(step, mems, beam, 8, 1.0, mode)
    assert together == alone
    assert len({tuple(a) for a in alone}) > 1  # the clips really decode differently


def test_many_rejects_bad_arguments():
    with pytest.raises(ValueError):
        search.beam_search_many(_toy_step(5, 0), [np.zeros((1, 1, 5), np.float32)], 0, 5)
    with pytest.raises(ValueError):
        search.beam_search_many(_toy_step(5, 0), [np.zeros((1, 1, 5), np.float32)], 2, 5, mode="wide")
