"""The runtime's captioning of one window, in Python, from an exported bundle (onnxruntime): front end,
encoder, ``memory_len`` slicing, search with the manifest's repetition control, per-token
log-probabilities, score and Platt confidence (docs/bundle-format.md; the Rust side is
src/model/captioner.rs). Used for the model-v2 parity golden (``earshot_train.golden``) and for fitting
the confidence on validation (``earshot_train.calibrate``)."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from earshot_train import search
from earshot_train.export import ort_session, ort_step, window_features
from earshot_train.frontend import FrontendSpec


@dataclass
class Decoded:
    ids: list[int]
    logprobs: list[float]
    score: float
    confidence: float | None
    text: str


class BundleDecoder:
    """A bundle loaded for captioning; ``manifest`` overrides the bundle's own manifest.json."""

    def __init__(self, bundle: str | Path, manifest: dict[str, Any] | None = None):
        self.dir = Path(bundle)
        self.manifest = (
            copy.deepcopy(manifest) if manifest else json.loads((self.dir / "manifest.json").read_text())
        )
        m = self.manifest
        self.vocab = (self.dir / m["vocab"]).read_text().splitlines()
        self.spec = FrontendSpec.from_dict(m["frontend"])
        self.encoder = ort_session(self.dir / m["encoder"]["file"])
        self.step = ort_step(ort_session(self.dir / m["decoder"]["file"]))
        self.rules = search.Repetition.from_manifest(m, self.vocab)
        tok = m["tokens"]
        self.skip = {int(tok["start"]), int(tok["end"]), int(tok["pad"])}

    def memory(self, samples: np.ndarray) -> np.ndarray:
        """Encoder memory of one window: ``samples`` (mono, the bundle's rate) zero-padded or cut."""
        return self._encode(samples, with_tags=False)[0]

    def memory_and_tags(self, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`memory` and the bundle's tag probabilities (sigmoid of its ``tags`` output, one per
        label) of one window, from one encoder run. A bundle without tags is a ``ValueError``."""
        if not self.manifest.get("tags"):
            raise ValueError(f"{self.dir}: the bundle has no tags output")
        mem, logits = self._encode(samples, with_tags=True)
        return mem, 1.0 / (1.0 + np.exp(-logits[0]))

    def _encode(self, samples: np.ndarray, with_tags: bool) -> list[np.ndarray]:
        m = self.manifest
        feats = window_features(samples, self.spec, float(m["window_seconds"]))
        enc = m["encoder"]
        outputs = [enc["output"]] + ([m["tags"]["output"]] if with_tags else [])
        mem, *rest = self.encoder.run(outputs, {enc["input"]: feats})
        if enc.get("memory_len", "full") == "effb2":
            n = min(len(samples), int(round(float(m["window_seconds"]) * self.spec.sample_rate)))
            keep = ((n // self.spec.hop_length) + 1) // 32
            if keep < 1:
                raise ValueError("clip too short for this model")
            mem = mem[:, :keep, :]
        return [np.ascontiguousarray(mem, dtype=np.float32), *rest]

    def text(self, ids: list[int]) -> str:
        """The caption of generated ids (<start>, <end> and <pad> left out)."""
        return " ".join(self.vocab[i] for i in ids if i not in self.skip)

    def decode(self, samples: np.ndarray, beam: int | None = None) -> Decoded:
        return self.decode_memory(self.memory(samples), beam)

    def decode_memory(self, memory: np.ndarray, beam: int | None = None) -> Decoded:
        """:meth:`decode` of an encoder memory already computed (:meth:`memory`)."""
        s = self.manifest["search"]
        hyp = search.search_full(
            self.step,
            memory,
            int(beam if beam is not None else s.get("beam", 3)),
            int(s.get("max_len", 20)),
            float(s.get("length_norm", 1.0)),
            s.get("beam_mode", "shrinking"),
            self.rules,
        )
        conf = self.manifest.get("confidence")
        score = hyp.score
        c = search.platt(score, float(conf["a"]), float(conf["b"])) if conf else None
        return Decoded(hyp.ids, hyp.logprobs, score, c, self.text(hyp.ids))


def repeats(text: str, once_words: set[str], n: int = 3) -> list[str]:
    """Why a caption is degenerate: a repeated word n-gram, a repeated once-word (content noun), or a
    repeated clause (the same word sequence of >= 2 words on both sides of a connective)."""
    words = text.split()
    why = []
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    if len(grams) != len(set(grams)):
        why.append("trigram")
    if any(words.count(w) > 1 for w in set(words) & once_words):
        why.append("noun")
    for i, w in enumerate(words):
        if w in CONNECTIVES and 0 < i < len(words) - 1:
            left, right = words[:i], words[i + 1 :]
            k = min(len(left), len(right))
            if any(left[-j:] == right[:j] or left[:j] == right[:j] for j in range(2, k + 1)):
                why.append("clause")
                break
    return why


CONNECTIVES = {"and", "while", "as", "then", "followed", "with", "over", "before", "after"}
