"""Which signals would rank right above wrong captions on real files (issue 14's confidence target).

The shipped confidence is Platt scaling of the caption's mean token log-probability; on the original
files it ranks right above wrong captions barely better than chance (ROC AUC ~0.6, ``measure_v2``).
This study asks whether signals the runtime could compute cheaply do better, each fitted (logistic
regression) on the ORIGINAL files of the curated ``val`` split and scored on ESC-10 fold 4 and the
held-out recordings:

- ``mean_logprob``: the shipped score (from the release binary's confidence, a monotone map of it);
- ``tag_support``: for every source class the caption names, the highest score of mn04's AudioSet
  tags that confirm that class (taxonomy ``audioset``), the lowest over the named classes — read from
  the release binary's ``tags`` output with a copy of the bundle that prints all 527 tags;
- ``beam_agreement``: the share of the other hypotheses of a 5-wide beam (Python pipeline) that name
  the same source classes as the best one.

Labels: a caption is right when it names the file's class (strict rule, ``corpus_v2.build.names_all``).
The caption judged is the binary's, except for ``beam_agreement`` alone, where it is the Python beam's
best (in a combination the agreement is a signal about the binary's caption, which is usually the same).
First window of each file.

    python -m earshot_train.confidence_study [--bundle models/default]
        [--out train/results/confidence-study.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from earshot_train import calibrate, search
from earshot_train.audio_io import load_audio
from earshot_train.bundle_decode import BundleDecoder
from earshot_train.corpus_v2.build import names_all, names_class
from earshot_train.corpus_v2.curate import read_manifest as read_curated
from earshot_train.corpus_v2.taxonomy import SourceClass, load_taxonomy
from earshot_train.measure_v2 import _playable, confidence_auc, run_caption
from earshot_train.shared import REPO_ROOT, shared_dir

SETS = ("val", "esc10_fold4", "heldout")
FEATURES = (
    ("mean_logprob",),
    ("tag_support",),
    ("beam_agreement",),
    ("mean_logprob", "tag_support"),
    ("mean_logprob", "beam_agreement"),
    ("mean_logprob", "tag_support", "beam_agreement"),
)


def _logit(p: float) -> float:
    p = min(max(p, 1e-4), 1 - 1e-4)
    return float(np.log(p / (1 - p)))


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 0.1, iters: int = 50) -> np.ndarray:
    """Weights (last: bias) of an L2-regularised logistic regression (the bias not penalised)."""
    return calibrate.fit_logistic(x, y, np.r_[np.full(x.shape[1], l2), 0.0], iters)


def named_classes(caption: str, sources: list[SourceClass]) -> frozenset[str]:
    return frozenset(c.id for c in sources if names_class(caption, c)) or frozenset({"nothing"})


def tag_support(caption: str, tags: dict[str, float], sources: list[SourceClass]) -> float:
    """Lowest, over the classes the caption names, of the best confirming tag score (0.5 if it names none)."""
    sup = [
        max((tags.get(t, 0.0) for t in c.audioset), default=0.0) for c in sources if names_class(caption, c)
    ]
    return min(sup) if sup else 0.5


def beam_agreement(dec: BundleDecoder, samples: np.ndarray, sources: list[SourceClass], width: int = 5):
    """(best caption, share of the other finished hypotheses naming the same classes) of a constant beam."""
    s = dec.manifest["search"]
    hyps = search.beam_hypotheses(
        dec.step,
        dec.memory(samples),
        width,
        int(s.get("max_len", 20)),
        float(s.get("length_norm", 1.0)),
        "constant",
        dec.rules,
    )
    texts = [dec.text(h.ids) for h in hyps]
    best = named_classes(texts[0], sources)
    return texts[0], float(np.mean([named_classes(t, sources) == best for t in texts[1:]]))


def study(bundle: Path, earshot: Path) -> dict[str, Any]:
    classes = {c.id: c for c in load_taxonomy()}
    sources = [c for c in classes.values() if c.id != "nothing"]
    root = shared_dir()
    cur = [
        r for r in read_curated() if r["action"] == "keep" and r["class"] and r["collection"] != "generated"
    ]
    sets = {
        "val": [r for r in cur if r["split"] == "val"],
        "esc10_fold4": [
            r for r in cur if r["collection"] == "esc10" and Path(r["file"]).name.startswith("4-")
        ],
        "heldout": [r for r in cur if r["split"] == "test" and r["collection"] != "esc10"],
    }
    dec = BundleDecoder(bundle)
    sr = dec.spec.sample_rate
    n = int(round(float(dec.manifest["window_seconds"]) * sr))
    feats: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        all_tags = work / "bundle"
        shutil.copytree(bundle, all_tags)
        man = json.loads((all_tags / "manifest.json").read_text())
        if not man.get("tags"):
            raise ValueError(f"{bundle}: the bundle has no tags output")
        n_tags = len((bundle / man["tags"]["labels"]).read_text().splitlines())
        man["tags"].update(top_k=n_tags, min_score=0.0)  # every tag, whatever its score
        (all_tags / "manifest.json").write_text(json.dumps(man))
        for name, rows in sets.items():
            files = [_playable(root / r["file"], work) for r in rows]
            first: dict[str, dict] = {}
            for w in run_caption(earshot, all_tags, files):
                first.setdefault(w["file"], w)
            out = []
            for r, f in zip(rows, files, strict=True):
                w = first[str(f)]
                tags = {t["tag"]: float(t["score"]) for t in w["tags"]}
                x = load_audio(f, sr)[:n]
                text, agree = beam_agreement(dec, np.pad(x, (0, n - len(x))), sources)
                out.append(
                    {
                        "mean_logprob": _logit(float(w["confidence"])),
                        "tag_support": _logit(tag_support(w["caption"], tags, sources)),
                        "right": bool(names_all(w["caption"], [r["class"]], classes)),
                        "beam_agreement": agree,
                        "beam_right": bool(names_all(text, [r["class"]], classes)),
                    }
                )
            feats[name] = out
    res: dict[str, Any] = {"bundle": str(bundle), "files": {k: len(v) for k, v in feats.items()}, "auc": {}}
    for combo in FEATURES:
        label = "beam_right" if combo == ("beam_agreement",) else "right"

        def xy(rows: list[dict], combo=combo, label=label) -> tuple[np.ndarray, np.ndarray]:
            return np.array([[r[k] for k in combo] for r in rows], float), np.array(
                [r[label] for r in rows], float
            )

        w = fit_logistic(*xy(feats["val"]))
        aucs = {}
        for name in SETS:
            x, y = xy(feats[name])
            score = np.c_[x, np.ones(len(x))] @ w
            aucs[name] = confidence_auc(list(zip(score.tolist(), y.astype(bool).tolist(), strict=True)))
        res["auc"][" + ".join(combo)] = aucs
    return res


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="earshot_train.confidence_study", description=__doc__.split("\n")[0])
    ap.add_argument("--bundle", type=Path, default=REPO_ROOT / "models" / "default")
    ap.add_argument("--earshot", type=Path, default=REPO_ROOT / "target" / "release" / "earshot")
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "train" / "results" / "confidence-study.json")
    a = ap.parse_args(argv)
    res = study(a.bundle, a.earshot)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(res, indent=1) + "\n")
    print(f"files: {res['files']}")
    print("| signals (logistic, fitted on val files) | " + " | ".join(SETS) + " |")
    print("|---|" + "---:|" * len(SETS))
    for k, v in res["auc"].items():
        print(f"| {k} | " + " | ".join(f"{v[s]:.3f}" for s in SETS) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
