"""Measures a corpus-v2 bundle as users get it: the release ``earshot caption`` on the original files.

``python -m earshot_train.measure_v2 --bundle models/default [--earshot target/release/earshot]``
writes ``<out>/measure.json`` (default ``train/results/<bundle name>/``) and prints a Markdown summary.

File sets (the targets of issue 14):

- ``esc10_fold4``: the 80 ESC-10 fold-4 clips, original 44.1 kHz OGG, 5 s as they are (split by the
  curation into ``val`` — used for calibration — and ``test``; both halves are reported);
- ``heldout``: every kept file of the curated ``test`` split outside ESC-10: whole recordings no
  training clip came from. ``.opus`` files are decoded to 16-bit WAV at their own rate first (the
  binary's decoder has no Opus; nothing is resampled or cut);
- ``mix``: the rendered held-out two-event mixtures of corpus v2 (``test_mix``), both sources must be
  named;
- ``nothing``: generated here, not by the training generator: digital silence, white and pink noise,
  pure tones, mains hum with harmonics and sweeps at 16/44.1/48 kHz and several levels;
- ``random_shared``: 300 random files of ``../shared/data`` (seeded), for degenerate captions only.

Scoring, per window the binary prints: a window of a file of class ``c`` is right when its caption names
``c`` (:func:`corpus_v2.build.names_class`); the *broad rule* (``source_accuracy_broad``) also counts a
caption that names one of ``c``'s narrower classes (taxonomy ``includes``: "a woman speaks" for a speech
file whose speaker the label does not give, "a piano plays" for "music"); a file's score is its first
window's (every file of ESC-10 and most held-out clips are one window) and, for long recordings, the
share of right windows is reported too. A "nothing" window passes when its confidence is below
``--threshold`` (default: the bundle's fitted threshold) or its caption names no source class.
Degenerate: a repeated trigram, content noun or clause (:func:`bundle_decode.repeats`).
``python_agreement``: the same ESC-10 files decoded by the Python pipeline (``BundleDecoder`` on scipy-
resampled audio) — the share of identical captions.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import tempfile
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from earshot_train.audio_io import load_audio
from earshot_train.bundle_decode import BundleDecoder, repeats
from earshot_train.corpus import CorpusConfig, corpus_dir, read_manifest
from earshot_train.corpus_v2.build import names_all, names_class
from earshot_train.corpus_v2.curate import read_manifest as read_curated
from earshot_train.corpus_v2.taxonomy import load_taxonomy
from earshot_train.shared import REPO_ROOT, shared_dir

AUDIO_EXT = (".wav", ".ogg", ".flac", ".opus", ".mp3")


def run_caption(earshot: Path, bundle: Path, files: Sequence[Path], batch: int = 150) -> list[dict[str, Any]]:
    """Every window the binary prints for ``files`` (JSON lines); a failing file raises with its error."""
    out: list[dict[str, Any]] = []
    for i in range(0, len(files), batch):
        part = [str(f) for f in files[i : i + batch]]
        cmd = [str(earshot), "caption", "--model", str(bundle), "--format", "jsonl", *part]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(f"earshot caption failed ({res.returncode}): {res.stderr.strip()[-800:]}")
        out += [json.loads(line) for line in res.stdout.splitlines() if line.strip()]
    return out


def _playable(path: Path, work: Path) -> Path:
    """The file itself, or for Opus a 16-bit WAV at the file's own rate (no resampling, no cutting)."""
    if path.suffix != ".opus":
        return path
    x, sr = sf.read(str(path), dtype="float32", always_2d=True)
    dst = work / "opus" / (path.parent.parent.name + "__" + path.stem + ".wav")
    dst.parent.mkdir(parents=True, exist_ok=True)
    if not dst.is_file():
        sf.write(str(dst), x.mean(axis=1), sr, subtype="PCM_16")
    return dst


def _hum(f0: float, t: np.ndarray) -> np.ndarray:
    return sum(0.5**k * np.sin(2 * np.pi * f0 * (k + 1) * t) for k in range(6))


def nothing_set(work: Path) -> list[Path]:
    out = []
    rng = np.random.default_rng(20261207)
    d = work / "nothing"
    d.mkdir(parents=True, exist_ok=True)
    for sr in (16000, 44100, 48000):
        n = int(sr * 12.0)
        t = np.arange(n) / sr
        pink = np.fft.irfft(np.fft.rfft(rng.standard_normal(n)) / np.sqrt(np.arange(1, n // 2 + 2)), n)
        sig = {
            "silence": np.zeros(n),
            "white": rng.standard_normal(n),
            "pink": pink,
            "tone440": np.sin(2 * np.pi * 440 * t),
            "tone1000": np.sin(2 * np.pi * 1000 * t),
            "tone3150": np.sin(2 * np.pi * 3150 * t),
            "hum50": _hum(50.0, t),
            "hum60": _hum(60.0, t),
            "sweep": np.sin(2 * np.pi * (100 * t + (5000 - 100) * t**2 / (2 * 12.0))),
        }
        for name, x in sig.items():
            for level in (-6.0, -30.0):
                if name == "silence" and level != -6.0:
                    continue
                y = x / (np.max(np.abs(x)) or 1.0) * 10 ** (level / 20)
                p = d / f"{name}_{sr}_{int(-level)}dB.wav"
                sf.write(str(p), y.astype(np.float32), sr, subtype="PCM_16")
                out.append(p)
    return out


def _by_file(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        out[r["file"]].append(r)
    return out


def measure(
    bundle: Path,
    earshot: Path,
    work: Path,
    threshold: float | None,
    n_random: int = 300,
    val_clips: Path | None = None,
) -> tuple[dict, list[dict]]:
    """(the measurement of ``bundle``, every scored window with its set, classes and verdict)."""
    root = shared_dir()
    classes = {c.id: c for c in load_taxonomy()}
    man = json.loads((bundle / "manifest.json").read_text())
    conf = man.get("confidence") or {}
    if threshold is None:
        threshold = float((conf.get("fit") or {}).get("threshold", 0.5))
    vocab = (bundle / man["vocab"]).read_text().split()
    once = set(man["search"].get("once_words") or []) | {n for c in classes.values() for n in c.nouns} & set(
        vocab
    )
    cur = [r for r in read_curated() if r["action"] == "keep" and r["class"]]
    esc = [r for r in cur if r["collection"] == "esc10" and Path(r["file"]).name.startswith("4-")]
    held = [r for r in cur if r["split"] == "test" and r["collection"] not in ("esc10", "generated")]
    res: dict[str, Any] = {"bundle": man["name"], "threshold": threshold}

    def score_files(name: str, items: list[tuple[Path, list[str]]], rows: dict | None = None) -> tuple:
        """Scores ``items`` (path, classes) on ``rows`` (windows by file; default: run the binary)."""
        if not items:
            return {
                "files": 0,
                "source_accuracy": None,
                "source_accuracy_broad": None,
                "window_accuracy": None,
                "windows": 0,
                "degenerate": 0,
                "worst_classes": {},
                "largest_losses": [],
            }, []
        if rows is None:
            rows = _by_file(run_caption(earshot, bundle, [p for p, _ in items]))
        first_right, first_broad, win_right, win_n, all_rows = 0, 0, 0, 0, []
        first_conf: list[tuple[float, bool]] = []
        per_class: dict[str, list[int]] = defaultdict(list)
        missed: dict[str, list[tuple[str, bool]]] = defaultdict(list)  # class -> (caption, broad ok)
        for p, cls in items:
            ws = rows.get(str(p), [])
            if not ws:
                raise RuntimeError(f"{name}: the binary printed no window for {p}")
            ok = [names_all(w["caption"], cls, classes) for w in ws]
            windows_seen.extend(
                {"set": name, "classes": cls, "right": k, **w} for w, k in zip(ws, ok, strict=True)
            )
            first_right += ok[0]
            broad_ok = names_all(ws[0]["caption"], cls, classes, broad=True)
            first_broad += broad_ok
            if not ok[0]:
                missed["+".join(cls)].append((ws[0]["caption"], bool(broad_ok)))
            if ws[0].get("confidence") is not None:
                first_conf.append((float(ws[0]["confidence"]), bool(ok[0])))
            win_right += sum(ok)
            win_n += len(ok)
            per_class["+".join(cls)].append(int(ok[0]))
            all_rows += ws
        worst = sorted(per_class.items(), key=lambda kv: sum(kv[1]) / len(kv[1]))[:12]
        return {
            "files": len(items),
            "source_accuracy": round(first_right / len(items), 4),
            "source_accuracy_broad": round(first_broad / len(items), 4),
            "confidence_auc": confidence_auc(first_conf),
            "window_accuracy": round(win_right / win_n, 4),
            "windows": win_n,
            "degenerate": sum(bool(repeats(r["caption"], once)) for r in all_rows),
            "worst_classes": {k: f"{sum(v)}/{len(v)}" for k, v in worst},
            "largest_losses": largest_losses(missed, per_class),
        }, all_rows

    windows_seen: list[dict] = []  # every scored window, for --windows-out
    esc_items = [(root / r["file"], [r["class"]]) for r in esc]
    res["esc10_fold4"], esc_rows = score_files("esc10_fold4", esc_items)
    for half in ("val", "test"):  # the halves from the same run of the binary
        sub = [(root / r["file"], [r["class"]]) for r in esc if r["split"] == half]
        res[f"esc10_fold4_{half}"], _ = score_files(f"esc10_fold4_{half}", sub, _by_file(esc_rows))
    held_items = [(_playable(root / r["file"], work), [r["class"]]) for r in held]
    res["heldout"], held_rows = score_files("heldout", held_items)
    cdir = corpus_dir(CorpusConfig.load(REPO_ROOT / "train" / "configs" / "corpus-v2.toml"))
    mixes = read_manifest(cdir, ["test_mix"])
    res["mix"], mix_rows = score_files("mix", [(cdir / r["audio"], r["sources"]) for r in mixes])
    # nothing recognisable
    nrows = run_caption(earshot, bundle, nothing_set(work))
    src_ids = [c for c in classes if c != "nothing"]

    def quiet(w: dict) -> bool:
        c = w.get("confidence")
        names_source = any(names_class(w["caption"], classes[k]) for k in src_ids)
        return (c is not None and c < threshold) or not names_source

    nfiles = _by_file(nrows)
    res["nothing"] = {
        "files": len(nfiles),
        "windows": len(nrows),
        "pass_files": sum(all(quiet(w) for w in ws) for ws in nfiles.values()),
        "fail_examples": [
            f"{Path(f).name}: {w['caption']} ({w.get('confidence')})"
            for f, ws in nfiles.items()
            for w in ws
            if not quiet(w)
        ][:10],
    }
    # degenerate captions over 300 random files of ../shared
    pool = sorted(p for p in (root / "data").rglob("*") if p.suffix in AUDIO_EXT)
    pick = random.Random(7).sample(pool, min(n_random, len(pool)))
    rrows = run_caption(earshot, bundle, [_playable(p, work) for p in pick])
    everything = esc_rows + held_rows + mix_rows + nrows + rrows
    bad = [r["caption"] for r in everything if repeats(r["caption"], once)]
    res["degenerate"] = {"windows": len(everything), "degenerate": len(bad), "examples": bad[:10]}
    # Python pipeline on the same ESC-10 files
    dec = BundleDecoder(bundle)
    first = {}
    for r in esc_rows:
        first.setdefault(r["file"], r["caption"])
    same = sum(dec.decode(load_audio(Path(f), dec.spec.sample_rate)).text == c for f, c in first.items())
    res["python_agreement_esc10_fold4"] = round(same / len(first), 4)
    truth = {str(p): cls[0] for p, cls in esc_items + held_items}
    res["thresholds"] = threshold_table(bundle, man, esc_rows, held_rows, classes, truth, val_clips)
    confs = [w.get("confidence") for w in everything if w.get("confidence") is not None]
    res["confident_share"] = round(float(np.mean([c >= threshold for c in confs])), 4) if confs else None
    return res, windows_seen


def largest_losses(
    missed: dict[str, list[tuple[str, bool]]], per_class: dict[str, list[int]], top: int = 8
) -> list[dict[str, Any]]:
    """The classes that lose the most files (first window, strict rule): how many, how many of those
    the broad rule accepts, and the most common wrong captions."""
    out = []
    for cls, ms in sorted(missed.items(), key=lambda kv: (-len(kv[1]), kv[0]))[:top]:
        counts: dict[str, int] = defaultdict(int)
        for cap, _ in ms:
            counts[cap] += 1
        common = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
        out.append(
            {
                "class": cls,
                "missed": len(ms),
                "of": len(per_class[cls]),
                "broad_ok": sum(b for _, b in ms),
                "captions": [f"{c} ({n})" for c, n in common],
            }
        )
    return out


def confidence_auc(pairs: Sequence[tuple[float, bool]]) -> float | None:
    """How well the confidence ranks right captions above wrong ones: the probability that a random
    right caption has a higher confidence than a random wrong one (ties count half; ROC AUC). 0.5 =
    no better than chance; None without both kinds."""
    right = np.array([c for c, ok in pairs if ok])
    wrong = np.array([c for c, ok in pairs if not ok])
    if not len(right) or not len(wrong):
        return None
    above = (right[:, None] > wrong[None, :]).mean() + 0.5 * (right[:, None] == wrong[None, :]).mean()
    return round(float(above), 4)


def threshold_table(
    bundle: Path,
    man: dict,
    esc_rows,
    held_rows,
    classes,
    truth: dict[str, str],
    val_clips: Path | None = None,
) -> list[dict]:
    """Emitted / wrong per ``min_confidence`` on validation (the calibration clips, when
    ``<bundle>.val-clips.json`` is there) and on the binary's first windows of ESC-10 fold 4 and the
    held-out recordings. "Wrong": the caption does not name the file's class (``truth``: the class of
    each file as the binary was given it)."""
    conf = man.get("confidence")
    if not conf:
        return []
    t_fit = float(conf["fit"].get("threshold", 0.5))
    sets: dict[str, list[tuple[float, bool]]] = {}
    vc = val_clips or bundle.parent / (bundle.name + ".val-clips.json")
    if vc.is_file():
        a, b = float(conf["a"]), float(conf["b"])
        sets["val"] = [
            (1 / (1 + np.exp(-(a * c["score"] + b))), bool(c["right"])) for c in json.loads(vc.read_text())
        ]
    for name, rows in (("esc10_fold4", esc_rows), ("heldout", held_rows)):
        seen: dict[str, tuple[float, bool]] = {}
        for w in rows:
            f = w["file"]
            cls = truth.get(f)
            if f in seen or cls is None or w.get("confidence") is None:
                continue
            seen[f] = (float(w["confidence"]), names_class(w["caption"], classes[cls]))
        sets[name] = list(seen.values())
    out = []
    for t in sorted({0.0, 0.3, 0.4, 0.5, 0.6, round(t_fit, 2), 0.8}):
        row: dict[str, Any] = {"min_confidence": t}
        for name, v in sets.items():
            kept = [ok for c, ok in v if c >= t]
            row[name] = {"emitted": len(kept), "of": len(v), "wrong": len(kept) - sum(kept)}
        out.append(row)
    return out


def _broad(r: dict) -> str:
    """The broad-rule accuracy (taxonomy ``includes``), "—" in measurements made before it existed."""
    v = r.get("source_accuracy_broad")
    return "—" if v is None else f"{100 * v:.1f} %"


def markdown(res: dict) -> str:
    lines = [
        f"Bundle `{res['bundle']}`, release `earshot caption` on the original files "
        f"(confidence threshold {res['threshold']:.3f}).",
        "",
        "| set | files | source named (first window) | broad rule | all windows | degenerate |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for k in ("esc10_fold4", "esc10_fold4_val", "esc10_fold4_test", "heldout", "mix"):
        r = res[k]
        if not r["files"]:
            lines.append(f"| {k} | 0 | — | — | — | — |")
            continue
        lines.append(
            f"| {k} | {r['files']} | {100 * r['source_accuracy']:.1f} % | {_broad(r)} | "
            f"{100 * r['window_accuracy']:.1f} % of {r['windows']} | {r['degenerate']} |"
        )
    losses = res["heldout"].get("largest_losses")
    if losses:
        lines += [
            "",
            "Largest losses on held-out recordings (first window; strict rule):",
            "",
            "| class | missed | broad rule accepts | most common captions of the missed files |",
            "|---|---:|---:|---|",
        ]
        for x in losses:
            caps = "; ".join(x["captions"])
            lines.append(f"| {x['class']} | {x['missed']} of {x['of']} | {x['broad_ok']} | {caps} |")
    n = res["nothing"]
    aucs = [
        f"{k} {res[k]['confidence_auc']:.2f}"
        for k in ("esc10_fold4", "heldout", "mix")
        if res[k].get("confidence_auc") is not None
    ]
    lines += [
        "",
        "Confidence ranking of right above wrong captions (ROC AUC, first windows; 0.5 = chance): "
        + (", ".join(aucs) or "—")
        + ".",
        f"Nothing recognisable: {n['pass_files']} of {n['files']} generated files get no confident source.",
        f"Degenerate captions: {res['degenerate']['degenerate']} of {res['degenerate']['windows']} windows.",
        f"Python pipeline agrees with the binary on {100 * res['python_agreement_esc10_fold4']:.1f} % "
        "of ESC-10 fold-4 captions.",
    ]
    if res.get("thresholds"):
        names = [k for k in res["thresholds"][0] if k != "min_confidence"]
        lines += [
            "",
            "| `min_confidence` | " + " | ".join(f"{n}: emitted | wrong" for n in names) + " |",
            "|---|" + "---:|---:|" * len(names),
        ]
        for r in res["thresholds"]:
            cells = []
            for n in names:
                e, w = r[n]["emitted"], r[n]["wrong"]
                cells += [f"{e} / {r[n]['of']}", f"{100 * w / e:.0f} %" if e else "—"]
            lines.append(f"| {r['min_confidence']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def comparison(results: list[tuple[str, dict]]) -> str:
    """One row per measured bundle (``measure.json`` files), as users get it: the release binary."""
    head = [
        "| model | ESC-10 fold 4 | fold 4, test half | held-out recordings | (broad rule) "
        "| held-out mixtures (both) | (broad rule) "
        "| nothing: no confident source | degenerate windows | Python = binary |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def pct(r: dict) -> str:
        return "—" if r["source_accuracy"] is None else f"{100 * r['source_accuracy']:.1f} %"

    for label, r in results:
        n = r["nothing"]
        head.append(
            f"| {label} | {pct(r['esc10_fold4'])} | {pct(r['esc10_fold4_test'])} | {pct(r['heldout'])} "
            f"| {_broad(r['heldout'])} | {pct(r['mix'])} | {_broad(r['mix'])} "
            f"| {n['pass_files']} / {n['files']} "
            f"| {r['degenerate']['degenerate']} / {r['degenerate']['windows']} "
            f"| {100 * r['python_agreement_esc10_fold4']:.1f} % |"
        )
    return "\n".join(head) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="earshot_train.measure_v2", description=__doc__.split("\n")[0])
    ap.add_argument("--bundle", type=Path, default=REPO_ROOT / "models" / "default")
    ap.add_argument("--earshot", type=Path, default=REPO_ROOT / "target" / "release" / "earshot")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--threshold", type=float, default=None)
    ap.add_argument("--random", type=int, default=300)
    ap.add_argument("--val-clips", type=Path, default=None, help="calibrate's --clips-out of this bundle")
    ap.add_argument(
        "--windows-out", type=Path, default=None, help="JSON lines: every scored window, right or not"
    )
    ap.add_argument(
        "--compare",
        nargs="+",
        metavar="LABEL=MEASURE_JSON",
        help="print the comparison table of earlier measurements and exit",
    )
    a = ap.parse_args(argv)
    if a.compare:
        results = []
        for x in a.compare:
            label, sep, f = x.partition("=")
            if not sep or not Path(f).is_file():
                ap.error(f"--compare wants LABEL=MEASURE_JSON with an existing file, got {x!r}")
            results.append((label, json.loads(Path(f).read_text())))
        print(comparison(results), end="")
        return 0
    out = a.out or REPO_ROOT / "train" / "results" / a.bundle.resolve().name
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        res, windows = measure(a.bundle, a.earshot, Path(tmp), a.threshold, a.random, a.val_clips)
    if a.windows_out:
        a.windows_out.write_text("".join(json.dumps(w) + "\n" for w in windows))
    (out / "measure.json").write_text(json.dumps(res, indent=1) + "\n")
    md = markdown(res)
    (out / "measure.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
