#!/usr/bin/env python3
"""What `captions.min_confidence` trades (README, "Trusting captions").

`--val CLIPS.json CORPUS`: on the VALIDATION split the bundle's confidence was calibrated on. First
`cd train && python -m earshot_train.calibrate --bundle ../models/default --dry-run
--clips-out /tmp/val-clips.json --work /tmp/earshot-val` (renders the 140 val clips, decodes them with
the bundle's search, leaves the manifest alone); then `--val /tmp/val-clips.json /tmp/earshot-val`
prints, per threshold, the captions emitted and the share of them that name a wrong source (a
source that is not in the clip, or none of the clip's sources) — the rule the default was chosen by
— beside the calibration's own target (the caption names every source).

Without `--val`: captions the ORIGINAL ESC-10 fold-4 OGG files (80 clips of 5 s, one source
each) with the release binary (`earshot caption --format jsonl`, the bundle's own search), then
prints, for each threshold, how many captions would be emitted and how many of those name the
wrong source (right: the caption names the clip's source, `earshot_train.captions.names_source`,
as in `earshot_train.measure_decoding`).

    python3 scripts/measure_threshold.py [--bundle models/default] [--esc10 ../shared/data/esc10]
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "train"))

from earshot_train.captions import SYNONYMS, names_source  # noqa: E402
from earshot_train.measure_decoding import fold_files  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bundle", type=Path, default=ROOT / "models" / "default")
    ap.add_argument("--esc10", type=Path, default=ROOT.parent / "shared" / "data" / "esc10")
    ap.add_argument("--earshot", type=Path, default=ROOT / "target" / "release" / "earshot")
    ap.add_argument("--fold", type=int, default=4)
    ap.add_argument("--val", nargs=2, type=Path, metavar=("CLIPS_JSON", "CORPUS"))
    a = ap.parse_args()
    if a.val:
        return val_table(a.bundle, *a.val)
    files = fold_files(a.esc10, a.fold)
    cmd = [str(a.earshot), "caption", "--model", str(a.bundle), "--format", "jsonl"]
    rows = []
    for path, src in files:
        out = subprocess.run([*cmd, str(path)], capture_output=True, text=True, check=True)
        for line in out.stdout.splitlines():
            r = json.loads(line)
            rows.append((r["confidence"], names_source(r["caption"], src), r["caption"], path.name))
    if any(c is None for c, *_ in rows):
        print("this bundle has no confidence: every caption passes any threshold")
        return 0
    n = len(rows)
    print(f"{n} captions of {len(files)} fold-{a.fold} clips; right source: {sum(ok for _, ok, *_ in rows)}")
    print("threshold  emitted  wrong  wrong-share")
    for t in [0.0, 0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]:
        kept = [ok for c, ok, *_ in rows if c >= t]
        wrong = sum(1 for ok in kept if not ok)
        share = f"{wrong / len(kept):.1%}" if kept else "-"
        print(f"{t:9.2f}  {len(kept):4d}/{n}  {wrong:5d}  {share:>10}")
    top = sorted(rows, key=lambda r: -r[0])[:10]
    print("highest confidences:")
    for c, ok, cap, name in top:
        print(f"  {c:.3f} {'right' if ok else 'WRONG'} {name}: {cap}")
    return 0


def val_table(bundle: Path, clips_json: Path, corpus: Path) -> int:
    conf = json.loads((bundle / "manifest.json").read_text())["confidence"]
    a, b = conf["a"], conf["b"]
    clips = json.loads(clips_json.read_text())
    rows = {}
    for line in (corpus / "manifest.jsonl").read_text().splitlines():
        r = json.loads(line)
        rows[r["id"]] = r
    data = []
    for c in clips:
        p = 1.0 / (1.0 + math.exp(-(a * c["score"] + b)))
        srcs = rows[c["id"]]["sources"]
        named = [s for s in SYNONYMS if names_source(c["caption"], s)]
        wrong = any(s not in srcs for s in named) or not any(s in named for s in srcs)
        data.append((p, bool(c["right"]), wrong))
    n = len(data)
    print(f"{n} validation captions; highest confidence {max(d[0] for d in data):.3f}")
    print("threshold  emitted  wrong-source  not-every-source  mean(1-c)")
    for t in [0.0, 0.3, 0.4, 0.5, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9]:
        k = [d for d in data if d[0] >= t]
        if not k:
            print(f"{t:9.2f}  {0:4d}/{n}")
            continue
        ws = sum(d[2] for d in k) / len(k)
        ne = sum(not d[1] for d in k) / len(k)
        ex = sum(1 - d[0] for d in k) / len(k)
        print(f"{t:9.2f}  {len(k):4d}/{n}  {ws:12.1%}  {ne:16.1%}  {ex:9.1%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
