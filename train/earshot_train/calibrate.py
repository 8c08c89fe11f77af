"""Fits a bundle's caption confidence on the validation split and writes its decoding sections.

``python -m earshot_train.calibrate --bundle models/default`` (defaults: ``train/configs/corpus.toml``,
``--ngram 3``):

1. renders the corpus' VALIDATION clips (the split ``earshot_train.ship`` selected the shipped model on; the
   per-clip seeds are those of the full corpus build, so the clips are the same; only val is built);
2. decodes each with the bundle's own search (``earshot_train.bundle_decode``, the runtime's algorithm) and
   repetition control on: ``no_repeat_ngram`` and ``once_words`` = the canonical source names of
   ``earshot_train.captions.SYNONYMS`` that are in the vocabulary (the content nouns a caption should name
   at most once);
3. fits Platt ``a``, ``b`` by logistic regression of "the caption names every source of the clip"
   (``names_all_sources``, the source accuracy of ship.py/results.py) on the mean log-probability ``s``;
4. reports the expected calibration error (10 equal-width bins) on val and writes ``search.no_repeat_ngram``,
   ``search.once_words`` and ``confidence`` into the bundle's manifest.json (other keys untouched).
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from earshot_train.audio_io import load_audio
from earshot_train.bundle_decode import BundleDecoder
from earshot_train.captions import SYNONYMS, names_all_sources
from earshot_train.corpus import CorpusConfig, build_corpus, read_manifest
from earshot_train.shared import REPO_ROOT

KINDS = ("single", "bed", "overlap", "sequence")


def once_words(vocab: Sequence[str]) -> list[str]:
    """The stated rule: canonical source names (``SYNONYMS`` keys) present in the vocabulary, sorted."""
    return sorted(set(SYNONYMS) & set(vocab))


def val_corpus(config: Path, out: Path) -> Path:
    """Builds only the validation clips of the corpus ``config`` into ``out`` (clip seeds unchanged)."""
    cfg = CorpusConfig.load(config)
    zero = {f"n_train_{k}": 0 for k in KINDS} | {f"n_test_{k}": 0 for k in KINDS if k != "single"}
    cfg = replace(cfg, **zero, n_test_single=1, n_audio_only=0)
    return build_corpus(cfg, out, progress=False)


def fit_logistic(x: np.ndarray, y: np.ndarray, ridge: np.ndarray, iters: int, tol: float = 0.0) -> np.ndarray:
    """Weights (last: the bias) of a logistic regression ``P(y=1) = sigmoid([x, 1] @ w)`` by Newton's
    method, with the L2 penalty ``ridge`` (one per weight, the bias's last); stops early when a step is
    below ``tol``."""
    X = np.c_[x, np.ones(len(x))]
    reg = np.diag(np.asarray(ridge, dtype=float))
    w = np.zeros(X.shape[1])
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-(X @ w)))
        g = X.T @ (p - y) + reg @ w
        H = (X * (p * (1 - p))[:, None]).T @ X + reg
        step = np.linalg.solve(H, g)
        w -= step
        if np.abs(step).max() < tol:
            break
    return w


def fit_platt(s: np.ndarray, y: np.ndarray, iters: int = 100) -> tuple[float, float]:
    """Platt scaling ``P(y=1) = sigmoid(a*s + b)`` (a tiny ridge for stability)."""
    a, b = fit_logistic(s[:, None], y, np.array([1e-6, 1e-6]), iters, tol=1e-10)
    return float(a), float(b)


def ece(conf: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error: sum over equal-width confidence bins of |accuracy - mean confidence|
    weighted by the bin's share of the clips."""
    idx = np.minimum((conf * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            total += m.mean() * abs(y[m].mean() - conf[m].mean())
    return float(total)


def calibrate(
    bundle: Path, corpus_config: Path, work: Path, ngram: int = 3, write: bool = True
) -> dict[str, Any]:
    return _fit_on_val(
        bundle,
        val_corpus(corpus_config, work),
        once_words,
        names_all_sources,
        "caption names every source of the clip (names_all_sources)",
        "python -m earshot_train.calibrate",
        ngram,
        write,
    )


def _fit_on_val(
    bundle: Path,
    corpus: Path,
    words_of: Any,
    is_right: Any,
    target: str,
    generator: str,
    ngram: int,
    write: bool,
    threshold: bool = False,
    clips: Sequence[tuple[str, str, Path, list[str]]] | None = None,
    split: str = "val",
) -> dict[str, Any]:
    """Decode the ``val`` clips of ``corpus`` (or ``clips``: (id, kind, audio path, sources)) with the
    bundle's search plus repetition control (``once_words = words_of(vocab)``), fit the confidence on
    ``is_right(caption, sources)``, and write both into the manifest when ``write``."""
    m = json.loads((bundle / "manifest.json").read_text())
    search_ = {**m["search"], "no_repeat_ngram": ngram, "once_words": words_of(BundleDecoder(bundle).vocab)}
    dec = BundleDecoder(bundle, {**m, "search": search_})
    sr = dec.spec.sample_rate
    if clips is None:
        clips = [
            (r["id"], r["kind"], corpus / r["audio"], r["sources"]) for r in read_manifest(corpus, ["val"])
        ]
    scores, right, out = [], [], []
    for cid, kind, audio, sources in clips:
        d = dec.decode(load_audio(audio, sr))
        ok = bool(is_right(d.text, sources))
        scores.append(d.score)
        right.append(float(ok))
        out.append({"id": cid, "kind": kind, "caption": d.text, "score": d.score, "right": ok})
    section = confidence_section(scores, right, target, generator, threshold, split)
    if write:
        m["search"] = search_
        m["confidence"] = section
        (bundle / "manifest.json").write_text(json.dumps(m, indent=2) + "\n")
    return {"search": search_, "confidence": section, "clips": out}


def confidence_section(
    scores: Sequence[float],
    right: Sequence[float],
    target: str,
    generator: str,
    threshold: bool = False,
    split: str = "val",
) -> dict[str, Any]:
    """The manifest's ``confidence`` section: Platt ``a``, ``b`` fitted on validation ``scores``
    (mean token log-probabilities) against ``right``, with the calibration error there and, when
    ``threshold``, the 10 %-wrong threshold (:func:`threshold_for`)."""
    s, y = np.array(scores), np.array(right)
    a, b = fit_platt(s, y)
    conf = 1.0 / (1.0 + np.exp(-(a * s + b)))
    fit: dict[str, Any] = {
        "split": split,
        "n": len(s),
        "ece": round(ece(conf, y), 4),
        "bins": 10,
        "target": target,
        "source_accuracy": round(float(y.mean()), 4),
    }
    if threshold:
        t, wrong, kept = threshold_for(conf, y)
        fit.update(threshold=t, threshold_wrong_share=round(wrong, 4), threshold_kept_share=round(kept, 4))
    fit["generator"] = generator
    return {"method": "platt", "a": round(a, 6), "b": round(b, 6), "fit": fit}


def threshold_for(conf: np.ndarray, y: np.ndarray, max_wrong: float = 0.10) -> tuple[float, float, float]:
    """The lowest confidence threshold at which at most ``max_wrong`` of the captions kept (confidence
    >= threshold) are wrong: (threshold, wrong share among kept, kept share)."""
    for t in np.round(np.arange(0.0, 1.0001, 0.01), 2):
        kept = conf >= t
        if kept.any() and 1.0 - y[kept].mean() <= max_wrong:
            return float(t), float(1.0 - y[kept].mean()), float(kept.mean())
    return 1.0, 0.0, 0.0


#: ``calibrate --v2 --on``: what the confidence is fitted on (both from the validation split only)
V2_SETS = {
    "rendered": "val",
    "files": "val: original files of the curated val split (first window), rendered val mixtures and nothing",
}


def calibrate_v2(
    bundle: Path, corpus: Path, ngram: int = 3, write: bool = True, on: str = "rendered"
) -> dict[str, Any]:
    """:func:`calibrate` for a corpus-v2 bundle: a caption is right when it names every class of the
    clip (``corpus_v2.build.names_class``); the once-words are the taxonomy's source nouns in the
    vocabulary. Also fits the threshold at which at most 10 % of the captions kept name a wrong source
    (``fit.threshold``).

    ``on = "rendered"``: the rendered ``val`` windows of ``corpus``. ``on = "files"``: for one-event
    clips the ORIGINAL files of the curated val split, as users give them to ``earshot caption`` (its
    first window: the clip at the start, exact zeros after it, no added noise), plus the rendered val
    mixtures and "nothing" windows (they have no original file). Confidences fitted on renders did not
    carry over to real files (train/RESULTS-v2.md); the original files are closer to what users hear.
    """
    from earshot_train.corpus_v2.build import taxonomy_rule
    from earshot_train.corpus_v2.curate import read_manifest as read_curated
    from earshot_train.corpus_v2.taxonomy import load_taxonomy
    from earshot_train.shared import shared_dir

    if on not in V2_SETS:
        raise ValueError(f"calibrate --on must be one of {sorted(V2_SETS)}, got {on!r}")
    nouns = {n for c in load_taxonomy() for n in c.nouns}
    clips = None
    if on == "files":
        root = shared_dir()
        cur = [
            r
            for r in read_curated()
            if r["split"] == "val" and r["action"] == "keep" and r["class"] and r["collection"] != "generated"
        ]
        clips = [(r["file"], "file", root / r["file"], [r["class"]]) for r in cur]
        clips += [
            (r["id"], r["kind"], corpus / r["audio"], r["sources"])
            for r in read_manifest(corpus, ["val"])
            if r["kind"] != "single"
        ]
    return _fit_on_val(
        bundle,
        corpus,
        lambda vocab: sorted(nouns & set(vocab)),
        taxonomy_rule(),
        "caption names every source class of the clip (corpus v2 taxonomy)",
        "python -m earshot_train.calibrate --v2" + (f" --on {on}" if on != "rendered" else ""),
        ngram,
        write,
        threshold=True,
        clips=clips,
        split=V2_SETS[on],
    )


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="earshot_train.calibrate", description=__doc__.split("\n")[0])
    ap.add_argument("--bundle", type=Path, default=REPO_ROOT / "models" / "default")
    ap.add_argument("--corpus-config", type=Path, default=REPO_ROOT / "train" / "configs" / "corpus.toml")
    ap.add_argument("--work", type=Path, default=Path("/tmp/earshot-calibrate-val"))
    ap.add_argument("--ngram", type=int, default=3)
    ap.add_argument("--dry-run", action="store_true", help="report only, leave manifest.json alone")
    ap.add_argument("--clips-out", type=Path, default=None, help="write per-clip results (JSON)")
    ap.add_argument("--v2", action="store_true", help="corpus-v2 bundle: use its val split")
    ap.add_argument(
        "--on",
        choices=sorted(V2_SETS),
        default="rendered",
        help="--v2: fit on the rendered val windows "
        "or on the original val files (+ rendered val mixtures and nothing)",
    )
    a = ap.parse_args(argv)
    if a.v2:
        from earshot_train.corpus import corpus_dir

        cdir = corpus_dir(CorpusConfig.load(REPO_ROOT / "train" / "configs" / "corpus-v2.toml"))
        res = calibrate_v2(a.bundle, cdir, a.ngram, write=not a.dry_run, on=a.on)
    else:
        res = calibrate(a.bundle, a.corpus_config, a.work, a.ngram, write=not a.dry_run)
    if a.clips_out:
        a.clips_out.write_text(json.dumps(res["clips"], indent=1) + "\n")
    print(json.dumps({"confidence": res["confidence"], "once_words": res["search"]["once_words"]}))
    return 0 if all(math.isfinite(v) for v in (res["confidence"]["a"], res["confidence"]["b"])) else 1


if __name__ == "__main__":
    raise SystemExit(main())
