"""Greedy and beam search over a step function, exactly as docs/bundle-format.md specifies.

``step(tokens int64 [B, L], memory f32 [B, T, D]) -> logits [B, V]`` may be the PyTorch decoder or an
onnxruntime session, so the same search code proves parity between the two.

Beam search (shrinking beam): start with one hypothesis ``[<start>]`` of score 0. At each step every live
hypothesis is extended by every token, candidate score = hypothesis score + log_softmax(logits) (float32).
The best ``k`` candidates are kept (``k`` = beam minus the number already finished; ties broken by the
lower flattened index ``b * V + v``), in descending score order. A kept candidate that ends in ``<end>`` is
finished; so is every live one after ``max_len`` generated tokens. Finished hypotheses are ranked by
``score / generated_len ** length_norm`` (``<end>`` counted); the first best in finishing order wins.

``mode="constant"`` (manifest ``search.beam_mode: "constant"``) is the beam of the paper's released
student (its authors' implementation): ``k`` is always ``beam`` (a finished hypothesis frees its slot for a
continuation of the live ones), and the search stops after the step at which the number of finished
hypotheses becomes exactly ``beam`` (or when none is live, or at ``max_len``). Ranking as above.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from earshot_train.tokenizer import END, START

StepFn = Callable[[np.ndarray, np.ndarray], np.ndarray]
BEAM_MODES = ("shrinking", "constant")


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    x = logits.astype(np.float32)
    m = x.max(axis=-1, keepdims=True)
    z = x - m
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True, dtype=np.float32)).astype(np.float32)


def greedy(step: StepFn, memory: np.ndarray, max_len: int) -> list[int]:
    """Generated ids (without <start>, with the final <end> if emitted). memory: [1, T, D]."""
    ids = [START]
    for _ in range(max_len):
        logits = np.asarray(step(np.array([ids], dtype=np.int64), memory))
        nxt = int(np.argmax(logits[0]))
        ids.append(nxt)
        if nxt == END:
            break
    return ids[1:]


def beam_search(
    step: StepFn,
    memory: np.ndarray,
    beam: int,
    max_len: int,
    length_norm: float = 1.0,
    mode: str = "shrinking",
) -> list[int]:
    """Best hypothesis' generated ids (without <start>, with <end> if emitted). memory: [1, T, D]."""
    return beam_search_many(step, [memory], beam, max_len, length_norm, mode)[0]


class _Beam:
    """The search state of one clip; :func:`beam_search_many` advances many of them in one batch."""

    def __init__(self, memory: np.ndarray, beam: int, max_len: int, mode: str):
        self.memory, self.beam, self.max_len, self.mode = memory, beam, max_len, mode
        self.live: list[tuple[list[int], float]] = [([START], 0.0)]
        self.finished: list[tuple[list[int], float]] = []
        self.t = 0
        self.done = False

    def advance(self, lp: np.ndarray) -> None:
        """One step from the log-probabilities ``lp`` [len(live), V] of the live hypotheses."""
        self.t += 1
        scores = (np.array([s for _, s in self.live], dtype=np.float32)[:, None] + lp).reshape(-1)
        k = self.beam - len(self.finished) if self.mode == "shrinking" else self.beam
        order = np.argsort(-scores, kind="stable")[:k]
        vocab = lp.shape[1]
        new_live = []
        for flat in order:
            b, v = divmod(int(flat), vocab)
            hyp = (self.live[b][0] + [v], float(scores[flat]))
            if v == END or self.t == self.max_len:
                self.finished.append(hyp)
            else:
                new_live.append(hyp)
        self.live = new_live
        if not self.live or (self.mode == "constant" and len(self.finished) == self.beam):
            self.done = True
        if self.t == self.max_len:
            self.done = True

    def best(self, length_norm: float) -> list[int]:
        best_ids, best_val = None, -np.inf
        for ids, score in self.finished:
            val = score / (float(len(ids) - 1) ** length_norm)
            if val > best_val:
                best_ids, best_val = ids, val
        assert best_ids is not None
        return best_ids[1:]


def beam_search_many(
    step: StepFn,
    memories: list[np.ndarray],
    beam: int,
    max_len: int,
    length_norm: float = 1.0,
    mode: str = "shrinking",
) -> list[list[int]]:
    """:func:`beam_search` for several clips at once (each memory [1, T, D], same T): the live hypotheses
    of all clips share one decoder call per step (they all have the same length), with results identical
    to searching each clip alone."""
    if beam < 1 or max_len < 1:
        raise ValueError("beam and max_len must be >= 1")
    if mode not in BEAM_MODES:
        raise ValueError(f"beam mode must be one of {BEAM_MODES}, got {mode!r}")
    beams = [_Beam(m, beam, max_len, mode) for m in memories]
    while True:
        active = [b for b in beams if not b.done]
        if not active:
            break
        tokens = np.array([h for b in active for h, _ in b.live], dtype=np.int64)
        mem = np.concatenate([np.repeat(b.memory, len(b.live), axis=0) for b in active], axis=0)
        lp = _log_softmax(np.asarray(step(tokens, mem)))
        row = 0
        for b in active:
            n = len(b.live)
            b.advance(lp[row : row + n])
            row += n
    return [b.best(length_norm) for b in beams]
