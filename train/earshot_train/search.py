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

Repetition control (manifest ``search.no_repeat_ngram`` / ``search.once_words``, docs/bundle-format.md,
"Version-1 extensions for model v2"; :class:`Repetition`, the same rules as ``src/model/repetition.rs``):
for a hypothesis with generated ids ``y1..yt`` a token ``v`` is forbidden when the n-gram
``y(t-n+2)..yt v`` already occurs in ``y1..yt``, or when ``v`` is a once-word already in ``y1..yt``;
special tokens are never forbidden. Greedy takes the argmax of the logits with the forbidden tokens at
``-inf``; beam search never keeps a forbidden candidate (even if fewer than ``k`` others remain). Kept
candidates keep their UNMASKED log-softmax scores, so with no active rule the search is unchanged.

The ``*_full`` functions also return each generated token's (unmasked, float32) log-softmax; the
caption's score is their mean (:func:`mean_logprob`, ``<end>`` counted) and its confidence
``sigmoid(a * s + b)`` (:func:`platt`, manifest section ``confidence``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from earshot_train.tokenizer import END, PAD, START, UNK

StepFn = Callable[[np.ndarray, np.ndarray], np.ndarray]
BEAM_MODES = ("shrinking", "constant")


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    x = logits.astype(np.float32)
    m = x.max(axis=-1, keepdims=True)
    z = x - m
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True, dtype=np.float32)).astype(np.float32)


SPECIAL = (PAD, START, END, UNK)


@dataclass(frozen=True)
class Repetition:
    """The repetition rules of one bundle: ``no_repeat_ngram`` (0 = off) and the once-word ids."""

    no_repeat_ngram: int = 0
    once: frozenset[int] = frozenset()
    special: tuple[int, ...] = SPECIAL

    @classmethod
    def from_words(
        cls,
        no_repeat_ngram: int,
        once_words: Sequence[str],
        vocab: Sequence[str],
        special: Sequence[int] = SPECIAL,
    ) -> Repetition:
        """Rules for ``vocab`` (index i = id i); once-words not in the vocabulary are ignored."""
        wanted = set(once_words)
        once = frozenset(i for i, w in enumerate(vocab) if w in wanted and i not in special)
        return cls(int(no_repeat_ngram), once, tuple(special))

    @classmethod
    def from_manifest(cls, manifest: dict, vocab: Sequence[str]) -> Repetition:
        sp = manifest.get("search", {})
        tok = manifest.get("tokens", {})
        special = tuple(
            int(tok.get(k, d)) for k, d in zip(("pad", "start", "end", "unk"), SPECIAL, strict=True)
        )
        return cls.from_words(sp.get("no_repeat_ngram", 0), sp.get("once_words", []), vocab, special)

    @property
    def off(self) -> bool:
        return self.no_repeat_ngram == 0 and not self.once

    def forbidden(self, gen: Sequence[int]) -> list[int]:
        """Sorted token ids forbidden after the generated ids ``gen`` (without <start>)."""
        out: set[int] = set()
        n, t = self.no_repeat_ngram, len(gen)
        if n > 0 and t >= n:
            suffix = list(gen[t - n + 1 :])
            for i in range(t - n + 1):
                if list(gen[i : i + n - 1]) == suffix:
                    out.add(int(gen[i + n - 1]))
        out.update(int(g) for g in gen if g in self.once)
        return sorted(v for v in out if v not in self.special)


NO_RULES = Repetition()


@dataclass
class Hyp:
    """A search result: generated ids (no <start>, <end> if emitted) and each one's log-softmax."""

    ids: list[int]
    logprobs: list[float] = field(default_factory=list)

    @property
    def score(self) -> float:
        return mean_logprob(self.logprobs)


def mean_logprob(logprobs: Sequence[float]) -> float:
    """The length-normalised log-probability ``s`` (mean over the generated ids, <end> counted)."""
    return (
        float(np.sum(np.asarray(logprobs, dtype=np.float32), dtype=np.float64) / len(logprobs))
        if len(logprobs)
        else 0.0
    )


def sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def platt(score: float, a: float, b: float) -> float:
    """Confidence of a caption with mean log-probability ``score``: ``sigmoid(a * score + b)``."""
    return sigmoid(a * score + b)


def greedy_full(step: StepFn, memory: np.ndarray, max_len: int, rules: Repetition = NO_RULES) -> Hyp:
    """Greedy search with repetition control; ids and their unmasked log-probabilities."""
    ids = [START]
    lps: list[float] = []
    for _ in range(max_len):
        logits = np.asarray(step(np.array([ids], dtype=np.int64), memory))[0].astype(np.float32)
        forbidden = rules.forbidden(ids[1:])
        if forbidden:
            masked = logits.copy()
            masked[[f for f in forbidden if 0 <= f < masked.shape[0]]] = -np.inf
            nxt = int(np.argmax(masked))
        else:
            nxt = int(np.argmax(logits))
        lps.append(float(_log_softmax(logits)[nxt]))
        ids.append(nxt)
        if nxt == END:
            break
    return Hyp(ids[1:], lps)


def greedy(step: StepFn, memory: np.ndarray, max_len: int, rules: Repetition = NO_RULES) -> list[int]:
    """Generated ids (without <start>, with the final <end> if emitted). memory: [1, T, D]."""
    return greedy_full(step, memory, max_len, rules).ids


def beam_search(
    step: StepFn,
    memory: np.ndarray,
    beam: int,
    max_len: int,
    length_norm: float = 1.0,
    mode: str = "shrinking",
    rules: Repetition = NO_RULES,
) -> list[int]:
    """Best hypothesis' generated ids (without <start>, with <end> if emitted). memory: [1, T, D]."""
    return beam_search_many(step, [memory], beam, max_len, length_norm, mode, rules)[0]


def search_full(
    step: StepFn,
    memory: np.ndarray,
    beam: int,
    max_len: int,
    length_norm: float = 1.0,
    mode: str = "shrinking",
    rules: Repetition = NO_RULES,
) -> Hyp:
    """Greedy when ``beam == 1``, beam search otherwise (as the runtime chooses), with log-probabilities."""
    if beam <= 1:
        return greedy_full(step, memory, max_len, rules)
    return beam_search_many_full(step, [memory], beam, max_len, length_norm, mode, rules)[0]


class _Beam:
    """The search state of one clip; :func:`beam_search_many` advances many of them in one batch."""

    def __init__(self, memory: np.ndarray, beam: int, max_len: int, mode: str, rules: Repetition):
        self.memory, self.beam, self.max_len, self.mode, self.rules = memory, beam, max_len, mode, rules
        # (ids with <start>, score, per-token log-probabilities)
        self.live: list[tuple[list[int], float, list[float]]] = [([START], 0.0, [])]
        self.finished: list[tuple[list[int], float, list[float]]] = []
        self.t = 0
        self.done = False

    def advance(self, lp: np.ndarray) -> None:
        """One step from the log-probabilities ``lp`` [len(live), V] of the live hypotheses."""
        self.t += 1
        scores = (np.array([s for _, s, _ in self.live], dtype=np.float32)[:, None] + lp).reshape(-1)
        k = self.beam - len(self.finished) if self.mode == "shrinking" else self.beam
        vocab = lp.shape[1]
        order = np.argsort(-scores, kind="stable")
        if not self.rules.off:
            removed = np.zeros(scores.shape[0], dtype=bool)
            for b, (h, _, _) in enumerate(self.live):
                for v in self.rules.forbidden(h[1:]):
                    if 0 <= v < vocab:
                        removed[b * vocab + v] = True
            order = order[~removed[order]]
        order = order[:k]
        new_live = []
        for flat in order:
            b, v = divmod(int(flat), vocab)
            ids, _, lps = self.live[b]
            hyp = (ids + [v], float(scores[flat]), lps + [float(lp[b, v])])
            if v == END or self.t == self.max_len:
                self.finished.append(hyp)
            else:
                new_live.append(hyp)
        self.live = new_live
        if not self.live or (self.mode == "constant" and len(self.finished) == self.beam):
            self.done = True
        if self.t == self.max_len:
            self.done = True

    def ranked(self, length_norm: float) -> list[Hyp]:
        """The finished hypotheses, best first by score / generated length ** ``length_norm`` (ties keep
        the order in which they finished)."""
        order = sorted(self.finished, key=lambda h: -h[1] / (float(len(h[0]) - 1) ** length_norm))
        return [Hyp(ids[1:], lps) for ids, _, lps in order]

    def best(self, length_norm: float) -> Hyp:
        ranked = self.ranked(length_norm)
        if not ranked:
            raise RuntimeError("beam search finished without a hypothesis")
        return ranked[0]


def beam_search_many(
    step: StepFn,
    memories: list[np.ndarray],
    beam: int,
    max_len: int,
    length_norm: float = 1.0,
    mode: str = "shrinking",
    rules: Repetition = NO_RULES,
) -> list[list[int]]:
    """:func:`beam_search` for several clips at once (each memory [1, T, D], same T): the live hypotheses
    of all clips share one decoder call per step (they all have the same length), with results identical
    to searching each clip alone."""
    return [h.ids for h in beam_search_many_full(step, memories, beam, max_len, length_norm, mode, rules)]


def beam_search_many_full(
    step: StepFn,
    memories: list[np.ndarray],
    beam: int,
    max_len: int,
    length_norm: float = 1.0,
    mode: str = "shrinking",
    rules: Repetition = NO_RULES,
) -> list[Hyp]:
    """:func:`beam_search_many` returning each clip's best :class:`Hyp` (ids and log-probabilities)."""
    return [b.best(length_norm) for b in _search_beams(step, memories, beam, max_len, mode, rules)]


def beam_hypotheses(
    step: StepFn,
    memory: np.ndarray,
    beam: int,
    max_len: int,
    length_norm: float = 1.0,
    mode: str = "shrinking",
    rules: Repetition = NO_RULES,
) -> list[Hyp]:
    """Every finished hypothesis of one clip's beam search, best first (:meth:`_Beam.ranked`, so the
    first is what :func:`search_full` returns)."""
    (b,) = _search_beams(step, [memory], beam, max_len, mode, rules)
    return b.ranked(length_norm)


def _search_beams(
    step: StepFn, memories: list[np.ndarray], beam: int, max_len: int, mode: str, rules: Repetition
) -> list[_Beam]:
    """The finished beams of ``memories``, searched together (one decoder call per step)."""
    if beam < 1 or max_len < 1:
        raise ValueError("beam and max_len must be >= 1")
    if mode not in BEAM_MODES:
        raise ValueError(f"beam mode must be one of {BEAM_MODES}, got {mode!r}")
    beams = [_Beam(m, beam, max_len, mode, rules) for m in memories]
    while True:
        active = [b for b in beams if not b.done]
        if not active:
            break
        tokens = np.array([h for b in active for h, _, _ in b.live], dtype=np.int64)
        mem = np.concatenate([np.repeat(b.memory, len(b.live), axis=0) for b in active], axis=0)
        lp = _log_softmax(np.asarray(step(tokens, mem)))
        row = 0
        for b in active:
            n = len(b.live)
            b.advance(lp[row : row + n])
            row += n
    return beams
