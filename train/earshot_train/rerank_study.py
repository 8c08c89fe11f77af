"""Whether re-ranking the beam's captions by what the encoder hears would name the right source more often.

On the ORIGINAL files of the curated ``val`` split (first window, Python pipeline: the bundle's encoder
and decoder in onnxruntime), a 5-wide constant beam keeps every finished hypothesis
(:func:`search.beam_hypotheses`). The study reports how often the best one names the file's class, how
often ANY of them does (the ceiling of re-ranking), and what re-ranking by
``score + weight * log(support)`` picks, where ``support`` of a caption comes from one of:

- ``tags``: mn04's AudioSet tag probabilities (the bundle's ``tags`` output) through the taxonomy's
  ``audioset`` tags, as in :func:`confidence_study.tag_support` (lowest over the named classes);
- ``probe``: a softmax probe over the corpus-v2 classes on the time-pooled memory (trained on the
  ``train`` split's cached mn04 embeddings, :func:`probe_v2.fit_probe`), aggregated over the classes a
  caption names by ``max`` or ``sum``;
- ``length``: no support, the length normalisation exponent instead (``sum logprob / n ** alpha``).

Every pick is reported by the strict rule, the broad rule, the strict rule without the speech classes,
and the mean number of classes its captions name: the strict rule counts "a man is talking" wrong
for a speech file whose label does not give the speaker and "someone says a few words" right, so a
search that prefers generic captions gains there without hearing better; and any rule counts a
caption right when it names the file's class among others, so a re-ranker that prefers captions
naming more classes (``sum``, longer captions) gains by inventing a second source. The bundle's own
search (``shipped_search``: its beam width and mode) is the baseline. Validation only; nothing here
touches the held-out recordings.

    python -m earshot_train.rerank_study [--bundle models/default] [--out train/results/rerank-study.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from earshot_train import search
from earshot_train.audio_io import load_audio
from earshot_train.bundle_decode import BundleDecoder
from earshot_train.confidence_study import tag_support
from earshot_train.corpus import CorpusConfig, corpus_dir
from earshot_train.corpus_v2.build import names_all, names_class
from earshot_train.corpus_v2.curate import read_manifest as read_curated
from earshot_train.corpus_v2.taxonomy import SourceClass, load_taxonomy
from earshot_train.probe_v2 import features as probe_features
from earshot_train.probe_v2 import fit_probe
from earshot_train.shared import REPO_ROOT, shared_dir

WIDTH = 5
WEIGHTS = (0.1, 0.3, 1.0)
LENGTH_ALPHAS = (0.5, 1.0, 1.5, 2.0)
FLOOR = 1e-4


def pick(scores: Sequence[float], supports: Sequence[float], weight: float) -> int:
    """Index of the hypothesis with the highest ``score + weight * log(max(support, FLOOR))``
    (the first on ties, so weight 0 keeps the beam's own order)."""
    total = [s + weight * float(np.log(max(u, FLOOR))) for s, u in zip(scores, supports, strict=True)]
    return int(np.argmax(total))


def length_score(mean_logprob: float, n_tokens: int, alpha: float) -> float:
    """The summed log-probability over ``n_tokens ** alpha`` (alpha 1: the beam's mean log-probability)."""
    return mean_logprob * n_tokens / n_tokens**alpha


def probe_support(named: Sequence[int], probs: np.ndarray, how: str) -> float:
    """The probe's probability of the named classes, ``max`` or ``sum`` (``FLOOR`` when none is named)."""
    if not named:
        return FLOOR
    p = [float(probs[i]) for i in named]
    return max(p) if how == "max" else sum(p)


def _hypotheses(dec: BundleDecoder, memory: np.ndarray) -> list[tuple[str, float, int]]:
    """(text, mean log-probability, tokens) of every finished hypothesis of a WIDTH-wide constant beam
    over one window's ``memory``, best first."""
    s = dec.manifest["search"]
    hyps = search.beam_hypotheses(
        dec.step,
        memory,
        WIDTH,
        int(s.get("max_len", 20)),
        float(s.get("length_norm", 1.0)),
        "constant",
        dec.rules,
    )
    return [(dec.text(h.ids), h.score, len(h.ids)) for h in hyps]


def _evaluate(
    rows: list[dict[str, Any]], choose: Callable[[dict[str, Any]], int], classes: dict[str, SourceClass]
) -> dict[str, float]:
    return _score([r["hyps"][choose(r)][0] for r in rows], rows, classes)


def _score(picks: list[str], rows: list[dict[str, Any]], classes: dict[str, SourceClass]) -> dict[str, float]:
    """Strict and broad source accuracy of one caption per file, the strict one without the speech
    classes (whose strict rule turns on the speaker's gender the labels do not give), and the mean
    number of classes the captions name."""
    strict = [names_all(t, [r["class"]], classes) for t, r in zip(picks, rows, strict=True)]
    broad = [names_all(t, [r["class"]], classes, broad=True) for t, r in zip(picks, rows, strict=True)]
    other = [ok for ok, r in zip(strict, rows, strict=True) if not r["class"].startswith("speech")]
    return {
        "source_accuracy": round(float(np.mean(strict)), 4),
        "broad_rule": round(float(np.mean(broad)), 4),
        "without_speech": round(float(np.mean(other)), 4),
        "classes_named": round(
            float(np.mean([sum(names_class(t, c) for c in classes.values()) for t in picks])), 3
        ),
    }


def study(bundle: Path) -> dict[str, Any]:
    classes = {c.id: c for c in load_taxonomy()}
    sources = [c for c in classes.values() if c.id != "nothing"]
    val = [
        r
        for r in read_curated()
        if r["action"] == "keep" and r["class"] and r["collection"] != "generated" and r["split"] == "val"
    ]
    dec = BundleDecoder(bundle)
    if not dec.manifest.get("tags"):
        raise ValueError(f"{bundle}: the bundle has no tags output (the study needs mn04's tags)")
    labels = (bundle / dec.manifest["tags"]["labels"]).read_text().splitlines()
    torch.set_num_threads(1)
    emb, y, names = probe_features(
        corpus_dir(CorpusConfig.load(REPO_ROOT / "train" / "configs" / "corpus-v2.toml"))
    )
    probe = fit_probe(torch.from_numpy(emb["train"]), y["train"], len(names), 300)
    sr = dec.spec.sample_rate
    n = int(round(float(dec.manifest["window_seconds"]) * sr))
    root = shared_dir()
    rows = []
    for r in val:
        x = load_audio(root / r["file"], sr)[:n]
        memory, tags = dec.memory_and_tags(np.pad(x, (0, n - len(x))))
        hyps = _hypotheses(dec, memory)
        with torch.no_grad():
            probs = torch.softmax(probe(torch.from_numpy(memory[0].mean(0)[None])), 1)[0].numpy()
        tag_map = dict(zip(labels, tags.tolist(), strict=True))
        named = [
            [i for i, c in enumerate(names) if c in classes and names_class(t, classes[c])]
            for t, _, _ in hyps
        ]
        rows.append(
            {
                "class": r["class"],
                "shipped": dec.decode_memory(memory).text,
                "hyps": hyps,
                "tags": [tag_support(t, tag_map, sources) for t, _, _ in hyps],
                "probe_max": [probe_support(k, probs, "max") for k in named],
                "probe_sum": [probe_support(k, probs, "sum") for k in named],
            }
        )
    res: dict[str, Any] = {
        "bundle": str(bundle),
        "files": len(rows),
        "beam": WIDTH,
        "shipped_search": _score([r["shipped"] for r in rows], rows, classes),
        "best": _evaluate(rows, lambda r: 0, classes),
        "any_hypothesis": round(
            float(np.mean([any(names_all(t, [r["class"]], classes) for t, _, _ in r["hyps"]) for r in rows])),
            4,
        ),
        "any_hypothesis_without_speech": round(
            float(
                np.mean(
                    [
                        any(names_all(t, [r["class"]], classes) for t, _, _ in r["hyps"])
                        for r in rows
                        if not r["class"].startswith("speech")
                    ]
                )
            ),
            4,
        ),
        "rerank": {},
        "length_norm": {},
    }
    for support in ("tags", "probe_max", "probe_sum"):
        for w in WEIGHTS:
            res["rerank"][f"{support} x{w}"] = _evaluate(
                rows, lambda r, s=support, w=w: pick([h[1] for h in r["hyps"]], r[s], w), classes
            )
    for a in LENGTH_ALPHAS:
        res["length_norm"][str(a)] = _evaluate(
            rows, lambda r, a=a: int(np.argmax([length_score(s, k, a) for _, s, k in r["hyps"]])), classes
        )
    return res


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="earshot_train.rerank_study", description=__doc__.split("\n")[0])
    ap.add_argument("--bundle", type=Path, default=REPO_ROOT / "models" / "default")
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "train" / "results" / "rerank-study.json")
    a = ap.parse_args(argv)
    try:
        res = study(a.bundle)
    except (OSError, ValueError) as e:  # no such bundle, a bundle without tags, an unreadable file
        print(f"rerank_study: {e}", file=sys.stderr)
        return 2
    a.out.write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
