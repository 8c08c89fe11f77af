"""mn04 AudioSet tags for every corpus-v2 candidate file, computed once and cached outside git.

Each file is decoded, resampled to 32 kHz and cut into at most :data:`MAX_WINDOWS` windows of
:data:`WINDOW_S` seconds spread over the file (files shorter than one second are zero-padded to one
second). The cache keeps, per file, the sigmoid tag probabilities as the max and the mean over its
windows (float16, 527 each) and the mean 384-d embedding, in one ``.npz`` under
``~/.cache/earshot/corpus-v2/`` (``$EARSHOT_CACHE`` overrides the folder). It is written in
checkpoints, so an interrupted run resumes where it stopped.

Run: ``nice -n 19 python -m earshot_train.corpus_v2.tags`` (one torch thread: the machine is shared).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["cache_dir", "tags_path", "load_tags", "windows", "run"]

WINDOW_S = 10.0
MAX_WINDOWS = 3
SR = 32000


def cache_dir() -> Path:
    env = os.environ.get("EARSHOT_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "earshot" / "corpus-v2"


def tags_path() -> Path:
    return cache_dir() / "mn04-tags.npz"


def windows(
    n: int, sr: int = SR, window_s: float = WINDOW_S, max_windows: int = MAX_WINDOWS
) -> list[tuple[int, int]]:
    """Start/end sample pairs of the windows tagged for a file of ``n`` samples (evenly spread)."""
    w = int(window_s * sr)
    if n <= w:
        return [(0, n)]
    k = min(max_windows, int(np.ceil(n / w)))
    starts = np.linspace(0, n - w, k).astype(int)
    return [(int(s), int(s) + w) for s in starts]


def load_tags(path: Path | None = None) -> dict[str, dict[str, np.ndarray]]:
    """``{relative path: {"max": [527], "mean": [527], "emb": [384]}}`` from the cache (empty if absent)."""
    p = path or tags_path()
    if not p.is_file():
        return {}
    with np.load(p, allow_pickle=False) as z:  # read each array once (indexing z[...] re-reads it)
        files, pmax, pmean, emb = (z[k] for k in ("files", "pmax", "pmean", "emb"))
    return {str(f): {"max": pmax[i], "mean": pmean[i], "emb": emb[i]} for i, f in enumerate(files)}


def _save(p: Path, done: dict[str, dict[str, np.ndarray]]) -> None:
    files = sorted(done)
    tmp = p.with_suffix(".tmp.npz")
    np.savez(
        tmp,
        files=np.array(files),
        pmax=np.stack([done[f]["max"] for f in files]).astype(np.float16),
        pmean=np.stack([done[f]["mean"] for f in files]).astype(np.float16),
        emb=np.stack([done[f]["emb"] for f in files]).astype(np.float16),
    )
    os.replace(tmp, p)


def run(limit: int | None = None, checkpoint: int = 300) -> Path:
    import torch

    from earshot_train.audio_io import load_audio
    from earshot_train.corpus_v2.sources import list_sources
    from earshot_train.frontend import logmel
    from earshot_train.shared import shared_dir
    from earshot_train.teacher.mn04 import MN04_FRONTEND, load_mn04

    torch.set_num_threads(1)
    model = load_mn04()
    root = shared_dir()
    out = tags_path()
    out.parent.mkdir(parents=True, exist_ok=True)
    done = load_tags(out)
    todo = [s for s in list_sources() if s.path not in done][:limit]
    t0 = time.time()
    for i, s in enumerate(todo):
        try:
            x = load_audio(root / s.path, SR)
        except ValueError as e:
            print(f"tags: skip {s.path}: {e}", file=sys.stderr)
            continue
        if len(x) < SR:
            x = np.pad(x, (0, SR - len(x)))
        segs = np.stack([x[a:b] for a, b in windows(len(x))]) if len(x) > WINDOW_S * SR else x[None]
        with torch.no_grad():
            o = model(logmel(segs, MN04_FRONTEND))
        p = torch.sigmoid(o["logits"]).numpy()
        done[s.path] = {"max": p.max(0), "mean": p.mean(0), "emb": o["emb"].numpy().mean(0)}
        if (i + 1) % checkpoint == 0:
            _save(out, done)
            print(f"tags: {i + 1}/{len(todo)} in {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    _save(out, done)
    print(f"tags: {len(done)} files cached in {out} ({time.time() - t0:.0f} s)", file=sys.stderr)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=None, help="tag at most this many new files")
    a = ap.parse_args(argv)
    run(a.limit)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
