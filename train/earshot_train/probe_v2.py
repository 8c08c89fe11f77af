"""How much of corpus v2 the frozen mn04 encoder separates: a linear probe on its cached features.

A softmax-regression classifier over the one-event classes (and "nothing") is trained on the ``train``
split's single windows and scored on ``val`` and ``test_single`` — once on mn04's pooled 384-d embedding
(what the decoder's memory is made of) and once on its 527 AudioSet tag probabilities (what the tag row
carries). The accuracy bounds what a decoder on the frozen encoder can name without fine-tuning it
(train/RESULTS-v2.md). Deterministic (seeded, full-batch Adam).

    python -m earshot_train.probe_v2 [--steps 300] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from earshot_train.corpus import CorpusConfig, corpus_dir, read_manifest
from earshot_train.models.captioner import mn04_tag_head
from earshot_train.shared import REPO_ROOT
from earshot_train.teacher_cache import clip_path, default_out_dir

SPLITS = ("train", "val", "test_single")


def features(cdir: Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], list[str]]:
    """(pooled mn04 embeddings by split, class indices by split, class names) of the one-event windows."""
    rows = [r for r in read_manifest(cdir, list(SPLITS)) if r["kind"] in ("single", "nothing")]
    names = sorted({r["classes"][0] for r in rows})
    index = {c: i for i, c in enumerate(names)}
    root = default_out_dir(cdir)
    x: dict[str, list[np.ndarray]] = {s: [] for s in SPLITS}
    y: dict[str, list[int]] = {s: [] for s in SPLITS}
    for r in rows:
        with np.load(clip_path(root, r["id"])) as z:
            x[r["split"]].append(z["emb"].astype(np.float32))
        y[r["split"]].append(index[r["classes"][0]])
    return {s: np.stack(v) for s, v in x.items()}, {s: np.array(v) for s, v in y.items()}, names


def fit_probe(xt: torch.Tensor, yt: np.ndarray, n_classes: int, steps: int) -> nn.Module:
    """The probe fitted on ``xt`` (standardised inside): a module from features to class logits."""
    torch.manual_seed(0)
    mu, sd = xt.mean(0), xt.std(0) + 1e-4
    lin = nn.Linear(xt.shape[1], n_classes)
    opt = torch.optim.Adam(lin.parameters(), lr=1e-2, weight_decay=1e-4)
    y = torch.from_numpy(yt)
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.cross_entropy(lin((xt - mu) / sd), y).backward()
        opt.step()
    lin.requires_grad_(False)

    class Standardised(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return lin((x - mu) / sd)

    return Standardised()


def probe(
    x: dict[str, torch.Tensor], y: dict[str, np.ndarray], n_classes: int, steps: int
) -> dict[str, float]:
    lin = fit_probe(x["train"], y["train"], n_classes, steps)
    with torch.no_grad():
        return {
            s: round(float((lin(x[s]).argmax(1).numpy() == y[s]).mean()), 4) for s in ("val", "test_single")
        }


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="earshot_train.probe_v2", description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    cdir = corpus_dir(CorpusConfig.load(REPO_ROOT / "train" / "configs" / "corpus-v2.toml"))
    emb, y, names = features(cdir)
    head = mn04_tag_head()
    with torch.no_grad():
        as_emb = {s: torch.from_numpy(v) for s, v in emb.items()}
        as_tags = {s: torch.sigmoid(head(v)) for s, v in as_emb.items()}
    res = {
        "classes": len(names),
        "windows": {s: int(len(v)) for s, v in y.items()},
        "embedding": probe(as_emb, y, len(names), a.steps),
        "tag_probabilities": probe(as_tags, y, len(names), a.steps),
    }
    text = json.dumps(res, indent=1)
    if a.json:
        a.json.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
