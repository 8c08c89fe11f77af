"""Measures the shipped bundle's decoding as users get it: the release ``earshot caption --format jsonl``
on the ORIGINAL ESC-10 fold-4 OGG files (5 s, 44.1 kHz) with the bundle's manifest before and after a
change of its search/confidence sections, plus the confidence on 20 s of generated digital silence,
white noise and a 440 Hz tone.

    python -m earshot_train.measure_decoding --earshot target/release/earshot --bundle models/default \\
        --before /tmp/manifest-before.json --out /tmp/measure-decoding.json
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

from earshot_train.audio_io import write_wav
from earshot_train.bundle_decode import repeats
from earshot_train.calibrate import once_words
from earshot_train.captions import names_source
from earshot_train.shared import REPO_ROOT

ESC10_SOURCE = {
    "Dog bark": "dog",
    "Rain": "rain",
    "Sea waves": "waves",
    "Baby cry": "baby",
    "Clock tick": "clock",
    "Person sneeze": "sneeze",
    "Helicopter": "helicopter",
    "Chainsaw": "chainsaw",
    "Rooster": "rooster",
    "Fire crackling": "fire",
}


def fold_files(esc10: Path, fold: int = 4) -> list[tuple[Path, str]]:
    out = []
    for d in sorted(p for p in esc10.iterdir() if p.is_dir()):
        src = ESC10_SOURCE[d.name.split(" - ", 1)[1]]
        out += [(f, src) for f in sorted(d.glob(f"{fold}-*.ogg"))]
    return out


def caption(earshot: Path, bundle: Path, files: Sequence[Path]) -> list[dict[str, Any]]:
    from earshot_train.measure_v2 import run_caption

    return run_caption(earshot, bundle, files)


def signals(out: Path, sr: int = 16000, seconds: float = 20.0) -> list[Path]:
    n = int(sr * seconds)
    t = np.arange(n) / sr
    rng = np.random.default_rng(0)
    sigs = {
        "silence": np.zeros(n, np.float32),
        "white-noise": (0.1 * rng.standard_normal(n)).astype(np.float32),
        "tone-440": (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32),
    }
    paths = []
    for name, x in sigs.items():
        p = out / f"{name}.wav"
        write_wav(p, x, sr)
        paths.append(p)
    return paths


def summarise(rows: list[dict[str, Any]], truth: dict[str, str], nouns: set[str]) -> dict[str, Any]:
    right = [names_source(r["caption"], truth[r["file"]]) for r in rows]
    why = [repeats(r["caption"], nouns) for r in rows]
    conf = [r.get("confidence") for r in rows]
    return {
        "windows": len(rows),
        "source_accuracy": sum(right) / len(rows),
        "degenerate": sum(bool(w) for w in why) / len(rows),
        "degenerate_by_kind": {k: sum(k in w for w in why) for k in ("trigram", "noun", "clause")},
        "confidence_mean_right": _mean(
            [c for c, ok in zip(conf, right, strict=True) if ok and c is not None]
        ),
        "confidence_mean_wrong": _mean(
            [c for c, ok in zip(conf, right, strict=True) if not ok and c is not None]
        ),
        "examples": [r["caption"] for r, w in zip(rows, why, strict=True) if w][:6],
    }


def _mean(v: list[float]) -> float | None:
    return float(np.mean(v)) if v else None


def measure(earshot: Path, bundle: Path, before: Path, esc10: Path) -> dict[str, Any]:
    files = fold_files(esc10)
    truth = {str(f): s for f, s in files}
    vocab = (bundle / "vocab.txt").read_text().split()
    nouns = set(once_words(vocab))
    res: dict[str, Any] = {"files": len(files)}
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "before"
        shutil.copytree(bundle, old)
        shutil.copy(before, old / "manifest.json")
        for name, b in (("before", old), ("after", bundle)):
            res[name] = summarise(caption(earshot, b, [f for f, _ in files]), truth, nouns)
        sig = signals(Path(tmp))
        res["signals"] = {
            p.stem: [
                {k: r[k] for k in ("start", "caption", "confidence")} for r in caption(earshot, bundle, [p])
            ]
            for p in sig
        }
    return res


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="earshot_train.measure_decoding", description=__doc__.split("\n")[0])
    ap.add_argument("--earshot", type=Path, default=REPO_ROOT / "target" / "release" / "earshot")
    ap.add_argument("--bundle", type=Path, default=REPO_ROOT / "models" / "default")
    ap.add_argument("--before", type=Path, required=True, help="the manifest.json before the change")
    ap.add_argument("--esc10", type=Path, default=REPO_ROOT.parent / "shared" / "data" / "esc10")
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args(argv)
    res = measure(a.earshot, a.bundle, a.before, a.esc10)
    text = json.dumps(res, indent=1)
    if a.out:
        a.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
