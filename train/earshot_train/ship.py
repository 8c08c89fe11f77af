"""Choose the shipped student among the candidate runs — on the validation split, never on the test sets.

Rule: the highest validation source accuracy (share of clips whose caption names every source), ties broken
by validation CIDEr-D. Each candidate needs ``<run>/eval_val.json`` (``earshot-train eval --split val``).

    python -m earshot_train.ship train/configs/ship/*.toml     # prints the chosen config's path
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from earshot_train.config import load_config, run_dir


def val_scores(cfg_path: Path, split: str = "val", sets: Sequence[str] = ()) -> dict[str, Any]:
    cfg = load_config(cfg_path, list(sets))
    f = run_dir(cfg) / f"eval_{split}.json"
    if not f.is_file():
        raise FileNotFoundError(
            f"{f} missing: run `python -m earshot_train eval --config {cfg_path} --split {split}` first"
        )
    m = json.loads(f.read_text())["metrics"]
    return {
        "config": str(cfg_path),
        "name": cfg["experiment"]["name"],
        "source_accuracy": m["source_accuracy"],
        "CIDEr-D": m["CIDEr-D"],
    }


def choose(
    cfg_paths: Sequence[Path], split: str = "val", sets: Sequence[str] = ()
) -> tuple[dict, list[dict]]:
    """(the chosen candidate, every candidate's scores) by the rule in the module docstring."""
    if not cfg_paths:
        raise ValueError("no candidate configs given")
    scores = [val_scores(Path(p), split, sets) for p in cfg_paths]
    best = max(scores, key=lambda s: (s["source_accuracy"], s["CIDEr-D"]))
    return best, scores


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="earshot-train ship", description=__doc__.split("\n")[0])
    p.add_argument("configs", nargs="+", type=Path)
    p.add_argument("--split", default="val")
    p.add_argument("--set", action="append", default=[], help="config override for every candidate")
    a = p.parse_args(argv)
    try:
        best, scores = choose(a.configs, a.split, a.set)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for s in scores:
        mark = "*" if s is best else " "
        print(
            f"{mark} {s['name']}: {a.split} source accuracy {100 * s['source_accuracy']:.1f} %, "
            f"CIDEr-D {s['CIDEr-D']:.3f}",
            file=sys.stderr,
        )
    print(best["config"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
