"""Cache the mn04 teacher's encoder outputs for every clip of a corpus (encoder-KD targets).

For each manifest entry ``<out>/clips/<id>.npz`` holds ``frames`` (float16 ``[T', 384]``, the
frequency-pooled last feature map), ``emb`` (float32 ``[384]``), ``top_idx`` (int32 ``[k]``) and
``top_prob`` (float32 ``[k]``, sigmoid AudioSet tag probabilities). ``<out>/tags.jsonl`` lists the top-k
tag names per clip and ``<out>/teacher_info.json`` the model, front end and shapes. Resumable: clips
whose ``.npz`` exists are skipped (files are written atomically).

``python -m earshot_train.teacher_cache --corpus <corpus dir> [--teacher mn04|yamnet] [--out DIR]
[--splits train val ...]`` (YAMNet is optional and needs ``ai-edge-litert``: see ``teacher/yamnet.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from earshot_train.audio_io import load_audio
from earshot_train.corpus import read_manifest
from earshot_train.frontend import logmel
from earshot_train.teacher.mn04 import MN04, MN04_FRONTEND, default_mn04_dir, load_mn04, mn04_labels

TEACHER_NAME = "efficientat-mn04_as"


def default_out_dir(corpus_dir: str | Path) -> Path:
    return Path(corpus_dir) / "teacher" / "mn04"


def clip_path(out_dir: str | Path, clip_id: str) -> Path:
    return Path(out_dir) / "clips" / f"{clip_id}.npz"


def maps_dir(out_dir: str | Path, stop: int) -> Path:
    """Where :func:`cache_teacher_features` with ``maps_at = stop`` keeps mn04's intermediate maps."""
    return Path(out_dir) / f"maps{stop}"


def maps_path(out_dir: str | Path, stop: int, clip_id: str) -> Path:
    return maps_dir(out_dir, stop) / f"{clip_id}.npy"


def load_teacher_features(out_dir: str | Path, clip_id: str) -> dict[str, np.ndarray]:
    """``{"frames": f16 [T', D], "emb": f32 [D], "top_idx", "top_prob"}`` for one clip."""
    p = clip_path(out_dir, clip_id)
    if not p.is_file():
        raise FileNotFoundError(f"no cached teacher features for {clip_id!r} at {p} (run the teacher cache)")
    with np.load(p) as z:
        return {k: z[k] for k in z.files}


def _save_atomic(path: Path, **arrays: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def _write_summary(out: Path, rows: list[dict[str, Any]], labels: list[str], info: dict[str, Any]) -> None:
    """``tags.jsonl`` and ``teacher_info.json`` (cheap to rewrite from the per-clip files)."""
    first = load_teacher_features(out, rows[0]["id"]) if rows else None
    with open(out / "tags.jsonl.tmp", "w") as f:
        for r in rows:
            z = load_teacher_features(out, r["id"])
            tags = [
                [labels[int(i)], round(float(p), 4)] for i, p in zip(z["top_idx"], z["top_prob"], strict=True)
            ]
            f.write(json.dumps({"id": r["id"], "top": tags}) + "\n")
    os.replace(out / "tags.jsonl.tmp", out / "tags.jsonl")
    info = {
        **info,
        "n_clips": len(rows),
        "splits": sorted({r["split"] for r in rows}),
        "frames_shape": list(first["frames"].shape) if first is not None else None,
        "emb_dim": int(first["emb"].shape[0]) if first is not None else None,
    }
    (out / "teacher_info.json").write_text(json.dumps(info, indent=1) + "\n")


@torch.no_grad()
def cache_teacher_features(
    corpus_dir: str | Path,
    out_dir: str | Path | None = None,
    splits: Sequence[str] | None = None,
    model: MN04 | None = None,
    labels: list[str] | None = None,
    device: str | torch.device = "cpu",
    batch_size: int = 8,
    top_k: int = 5,
    progress: bool = True,
    maps_at: int | None = None,
    weights: str = "shared",
) -> Path:
    """Run the teacher over every clip (of ``splits``, default all), cache its outputs, return ``out_dir``.

    ``model``/``labels`` default to the shared pretrained mn04 (tests pass a randomly initialised one).
    ``maps_at = K`` also keeps, in the same pass, the feature map at the input of ``features[K]``
    (float16 ``[C, F, T]`` in ``maps_dir(out, K)/<id>.npy``): the input of a student that fine-tunes
    ``features[K:]`` (``models.captioner.MN04Tuned``). ``weights`` (``shared`` or ``random``) is
    recorded in ``teacher_info.json`` so that a run never mixes caches of two mn04s.
    """
    corpus_dir = Path(corpus_dir)
    out = Path(out_dir) if out_dir is not None else default_out_dir(corpus_dir)
    rows = read_manifest(corpus_dir, splits)
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    if model is None:
        model = load_mn04(default_mn04_dir(), device=device)
        if labels is None:
            labels = mn04_labels()
    model = model.to(device).eval()
    if labels is None:
        labels = [f"class_{i}" for i in range(model.n_classes)]
    if len(labels) != model.n_classes:
        raise ValueError(f"{len(labels)} labels for a model with {model.n_classes} classes")
    sr = MN04_FRONTEND.sample_rate
    todo = [
        r
        for r in rows
        if not clip_path(out, r["id"]).is_file()
        or (maps_at is not None and not maps_path(out, maps_at, r["id"]).is_file())
    ]
    out.mkdir(parents=True, exist_ok=True)
    if maps_at is not None:
        maps_dir(out, maps_at).mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=len(rows), initial=len(rows) - len(todo), desc="teacher cache", disable=not progress)
    for start in range(0, len(todo), batch_size):
        batch = todo[start : start + batch_size]
        wavs = [load_audio(corpus_dir / r["audio"], sr) for r in batch]
        n = max(len(w) for w in wavs)
        x = np.zeros((len(wavs), n), np.float32)  # corpus clips share one length; pad defensively
        for i, w in enumerate(wavs):
            x[i, : len(w)] = w
        mel = logmel(x, MN04_FRONTEND).to(device)
        maps = model.maps(mel, maps_at or 0)
        o = model.forward_from(maps, maps_at or 0)
        probs = torch.sigmoid(o["logits"])
        top = torch.topk(probs, min(top_k, probs.shape[1]), dim=1)
        for i, r in enumerate(batch):
            _save_atomic(
                clip_path(out, r["id"]),
                frames=o["frames"][i].cpu().numpy().astype(np.float16),
                emb=o["emb"][i].cpu().numpy().astype(np.float32),
                top_idx=top.indices[i].cpu().numpy().astype(np.int32),
                top_prob=top.values[i].cpu().numpy().astype(np.float32),
            )
            if maps_at is not None:
                p = maps_path(out, maps_at, r["id"])
                tmp = p.with_name(p.name + f".tmp{os.getpid()}.npy")
                np.save(tmp, maps[i].cpu().numpy().astype(np.float16))
                os.replace(tmp, p)
        bar.update(len(batch))
    bar.close()

    _write_summary(
        out,
        rows,
        labels,
        {
            "teacher": TEACHER_NAME,
            "frontend": MN04_FRONTEND.to_dict(),
            "top_k": top_k,
            "time_stride_mel_frames": 32,
            "weights": weights,
        },
    )
    return out


def cache_yamnet_features(
    corpus_dir: str | Path,
    out_dir: str | Path | None = None,
    splits: Sequence[str] | None = None,
    embedder: Any = None,
    top_k: int = 5,
    progress: bool = True,
) -> Path:
    """Optional second teacher: YAMNet embeddings (``frames`` f16 ``[W, 1024]`` per 0.48 s window, ``emb``
    their mean, top-k of the window-averaged scores), same layout as :func:`cache_teacher_features`;
    default ``out_dir`` is ``<corpus>/teacher/yamnet``. Needs ``ai-edge-litert``."""
    from earshot_train.teacher.yamnet import SAMPLE_RATE, YamnetEmbedder

    corpus_dir = Path(corpus_dir)
    out = Path(out_dir) if out_dir is not None else Path(corpus_dir) / "teacher" / "yamnet"
    rows = read_manifest(corpus_dir, splits)
    emb = embedder if embedder is not None else YamnetEmbedder()
    labels = emb.labels or [f"class_{i}" for i in range(521)]
    todo = [r for r in rows if not clip_path(out, r["id"]).is_file()]
    out.mkdir(parents=True, exist_ok=True)
    for r in tqdm(todo, desc="yamnet cache", disable=not progress):
        o = emb.embed(load_audio(corpus_dir / r["audio"], SAMPLE_RATE))
        scores = o["scores"].mean(axis=0)
        top = np.argsort(-scores, kind="stable")[:top_k]
        _save_atomic(
            clip_path(out, r["id"]),
            frames=o["frames"].astype(np.float16),
            emb=o["emb"].astype(np.float32),
            top_idx=top.astype(np.int32),
            top_prob=scores[top].astype(np.float32),
        )
    _write_summary(
        out, rows, labels, {"teacher": "yamnet (tflite)", "sample_rate": SAMPLE_RATE, "top_k": top_k}
    )
    return out


def main(args: argparse.Namespace | Sequence[str] | None = None) -> int:
    if not isinstance(args, argparse.Namespace):
        p = argparse.ArgumentParser(prog="earshot-train teacher-cache", description=__doc__.split("\n")[0])
        p.add_argument("--corpus", required=True, help="corpus directory (holding manifest.jsonl)")
        p.add_argument("--teacher", choices=("mn04", "yamnet"), default="mn04")
        p.add_argument("--out", default=None, help="default <corpus>/teacher/<teacher>")
        p.add_argument("--splits", nargs="*", default=None)
        p.add_argument("--batch-size", type=int, default=8)
        p.add_argument(
            "--maps-at", type=int, default=None, help="also cache the map at the input of features[K] (mn04)"
        )
        p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
        p.add_argument("--no-progress", action="store_true")
        args = p.parse_args(args)
    try:
        if getattr(args, "teacher", "mn04") == "yamnet":
            out = cache_yamnet_features(
                args.corpus, args.out, splits=args.splits, progress=not args.no_progress
            )
            print(f"teacher features in {out}")
            return 0
        out = cache_teacher_features(
            args.corpus,
            args.out,
            splits=args.splits,
            device=args.device,
            batch_size=args.batch_size,
            progress=not args.no_progress,
            maps_at=args.maps_at,
        )
    except (ValueError, FileNotFoundError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"teacher features in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
