"""Renders corpus v2 (``train/data/corpus-v2.tsv``) into a trainable corpus in the v1 manifest format.

``python -m earshot_train.corpus_v2.build`` writes ``<cache>/corpus/v2/`` (``$EARSHOT_CACHE`` or
``train/cache``), the layout :mod:`earshot_train.corpus` defines, so the trainer, the teacher cache,
calibration and evaluation read it unchanged::

    manifest.jsonl   {"id", "split", "audio", "captions", "sources", "kind", "classes", "events"}
    corpus_info.json counts per split and kind, the class list, the render spec, the builder version
    audio/<split>/<id>.flac   32 kHz mono, exactly ``window_s`` long (FLAC: the exact zeros cost nothing)

What is rendered, per split of the curated file list (splits are by recording, so no recording is in
two splits):

- ``single``: every kept file of the split, presented ``renders`` times with the runtime's presentation
  (:func:`render.render_clip`: random offset, exact zeros around it, gain over −40..0 dBFS, no to
  audible noise floor, random resampler round trip); rare classes get more presentations, abundant
  classes (speech) are subsampled, so no class dominates: per class ``min(max(n, floor), cap)``;
- ``overlap`` / ``sequence``: two-event mixtures of files of two classes the grammar may pair;
- ``nothing``: digital silence, white/pink noise, mains hum, tones and sweeps
  (:func:`render.generate_nothing`), captioned as nothing recognisable.

Splits written: ``train``, ``val`` (tuning and calibration only), ``test_single`` (held-out
recordings, one event, plus nothing), ``test_mix`` (held-out two-event mixtures).

Invariants: deterministic in ``seed`` (each clip has its own generators, seeded by split and index);
every caption passes the grammar's no-repeated-source check; ``sources``/``classes`` are taxonomy class
ids, the names the evaluation matches a caption against (:func:`names_class`).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from earshot_train.audio_io import load_audio
from earshot_train.corpus import cache_root
from earshot_train.corpus_v2.curate import read_manifest as read_curated
from earshot_train.corpus_v2.grammar import Grammar
from earshot_train.corpus_v2.render import (
    RenderSpec,
    generate_nothing,
    mix_events,
    nothing_recipes,
    render_clip,
)
from earshot_train.corpus_v2.taxonomy import SourceClass, load_taxonomy, noun_pattern
from earshot_train.shared import shared_dir

#: 3: mixtures fit in the window (``render.mix_events(window=...)``); in version 2 a mixture with a
#: recording longer than the window was cut afterwards and could lose its second event
BUILDER_VERSION = 3
#: one-event captions also as "the sound of X" / "X can be heard". Off: those forms never begin a
#: two-event caption, so beam search (length-normalised) settled on them for mixtures and named one
#: source in 99 % of held-out mixtures (student-v2 at 8 and 18 epochs, train/results/).
NOMINAL_SINGLE_FORMS = False
SAMPLE_RATE = 32000
WINDOW_S = 10.0

#: per split: (renders floor per class, cap per class, mixtures, nothing clips, captions per clip)
PLAN = {
    "train": (60, 220, 3000, 360, 4),
    "val": (6, 30, 300, 60, 3),
    "test": (1, 40, 300, 60, 3),
}


def names_class(caption: str, c: SourceClass) -> bool:
    """Whether ``caption`` names class ``c``: one of its source nouns (or, for nothing, its words)."""
    text = caption.lower()
    if c.id == "nothing":
        return any(w in text for w in ("silence", "quiet", "nothing", "noise", "hum", "tone", "no sound"))
    return bool(noun_pattern(c.nouns).search(text))


def names_all(
    caption: str, class_ids: Sequence[str], classes: dict[str, SourceClass], broad: bool = False
) -> bool:
    """Whether ``caption`` names every class of ``class_ids`` (the source accuracy of corpus v2).
    ``broad``: a class is also named by one of its narrower classes (taxonomy ``includes``: "a woman
    speaks" names "a person speaks", "a piano plays" names "music")."""
    return all(
        names_class(caption, classes[c])
        or (broad and any(names_class(caption, classes[n]) for n in classes[c].includes))
        for c in class_ids
    )


def taxonomy_rule(broad: bool = False) -> Callable[[str, Sequence[str]], bool]:
    """:func:`names_all` over the taxonomy, as ``rule(caption, class_ids)`` (evaluation, calibration)."""
    classes = {c.id: c for c in load_taxonomy()}
    return lambda caption, class_ids: names_all(caption, class_ids, classes, broad)


def collection_of(path: str) -> str:
    """The collection of an event file: ``data/sounds/<c>/...`` or ``data/<c>/...``; ``generated``
    for the "nothing" recipes made by code (``gen:<recipe>``)."""
    parts = path.split("/")
    if path.startswith("data/sounds/"):
        return parts[2]
    if path.startswith("data/"):
        return parts[1]
    return "generated"


def _load(path: str, root: Path, cache: dict[str, np.ndarray]) -> np.ndarray:
    if path not in cache:
        if path.startswith("gen:"):
            x = generate_nothing(path[4:], SAMPLE_RATE, WINDOW_S, seed=7)
        else:
            x = load_audio(root / path, SAMPLE_RATE)
        cache[path] = x.astype(np.float32)
    return cache[path]


def _captions(g: Grammar, classes: Sequence[str], relation: str | None, n: int, rng: random.Random):
    out: list[str] = []
    for _ in range(8 * n):
        if len(classes) == 1:
            cap = g.one(classes[0], rng, nominal_forms=NOMINAL_SINGLE_FORMS)
        else:
            rels = ("while", "as", "and") if relation == "while" else ("followed_by", "then", "and_then")
            cap = g.two(classes[0], classes[1], rng, relation=rng.choice(rels))
        if cap.text not in out and not g.repeated_source_words(cap.text):
            out.append(cap.text)
        if len(out) == n:
            break
    return out


def _plan_split(
    split: str, files: dict[str, list[str]], g: Grammar, seed: int
) -> list[tuple[str, list[str], list[str], str]]:
    """(kind, classes, files, mode) for every clip of ``split``."""
    floor, cap, n_mix, n_nothing, _ = PLAN[split]
    rng = random.Random(f"{seed}/{split}/plan")
    items: list[tuple[str, list[str], list[str], str]] = []
    for cid in sorted(files):
        fs = sorted(files[cid])
        if cid == "nothing":
            continue
        k = min(max(len(fs), floor), cap)
        order = fs[:]
        rng.shuffle(order)
        for i in range(k):
            items.append(("single", [cid], [order[i % len(order)]], ""))
    pairable = [c for c in sorted(files) if c != "nothing"]
    for _ in range(n_mix):
        for _try in range(50):
            a, b = rng.sample(pairable, 2)
            if g.can_pair(a, b):
                break
        mode = "while" if rng.random() < 0.6 else "then"
        items.append(
            (
                "overlap" if mode == "while" else "sequence",
                [a, b],
                [rng.choice(files[a]), rng.choice(files[b])],
                mode,
            )
        )
    gen = sorted(files.get("nothing", []))
    # recipe indices differ per split, so no generated clip is in two splits
    offset = 7 * 1000 * ("train", "val", "test").index(split)
    recipes = [f"gen:{r}" for r in nothing_recipes(offset + n_nothing)[offset:]]
    for i in range(n_nothing):
        src = recipes[i] if (i % 3 or not gen) else gen[i % len(gen)]
        items.append(("nothing", ["nothing"], [src], ""))
    return items


def build(
    out: Path | None = None,
    seed: int = 2024,
    limit: int | None = None,
    progress: bool = True,
    recaption: bool = False,
) -> Path:
    root = shared_dir()
    out = out or cache_root() / "corpus" / "v2"
    classes = load_taxonomy()
    g = Grammar(classes)
    rows = read_curated()
    by_split: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r["action"] != "keep" or not r["class"]:
            continue
        by_split[r["split"]][r["class"]].append(r["file"])
    spec = RenderSpec(sample_rate=SAMPLE_RATE, window_s=WINDOW_S)
    out.mkdir(parents=True, exist_ok=True)
    manifest = out / "manifest.jsonl"
    done: dict[str, dict] = {}
    if manifest.is_file():
        for line in manifest.read_text().splitlines():
            if line.strip():
                d = json.loads(line)
                if (out / d["audio"]).is_file():
                    done[d["id"]] = d
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    audio_cache: dict[str, np.ndarray] = {}
    with open(manifest, "w") as mf:
        for split in ("train", "val", "test"):
            items = _plan_split(split, by_split[split], g, seed)
            if limit is not None:
                items = items[:limit]
            n_caps = PLAN[split][4]
            for i, (kind, cls, srcs, mode) in enumerate(
                tqdm(items, desc=f"render {split}", disable=not progress)
            ):
                msplit = split if split != "test" else ("test_mix" if len(cls) == 2 else "test_single")
                cid = f"v2-{split}-{i:05d}"
                if cid in done:
                    if recaption:
                        prng = random.Random(f"{seed}/{split}/{i}")
                        done[cid]["captions"] = _captions(g, cls, mode or None, n_caps, prng)
                    mf.write(json.dumps(done[cid]) + "\n")
                    counts[msplit][kind] += 1
                    continue
                nrng = np.random.default_rng([seed, ("train", "val", "test").index(split), i])
                prng = random.Random(f"{seed}/{split}/{i}")
                xs = [_load(s, root, audio_cache) for s in srcs]
                x = (
                    xs[0]
                    if len(xs) == 1
                    else mix_events(xs[0], xs[1], mode, nrng, int(SAMPLE_RATE * WINDOW_S))
                )
                if kind == "nothing":
                    # nothing: no extra resampling/noise draw beyond the recipe; level still spread
                    y, info = render_clip(x, RenderSpec(SAMPLE_RATE, WINDOW_S, p_resample=0.0), nrng)
                else:
                    y, info = render_clip(x, spec, nrng)
                caps = _captions(g, cls, mode or None, n_caps, prng)
                rel = f"audio/{msplit}/{cid}.flac"
                (out / rel).parent.mkdir(parents=True, exist_ok=True)
                sf.write(str(out / rel), y, SAMPLE_RATE, subtype="PCM_16")
                row = {
                    "id": cid,
                    "split": msplit,
                    "audio": rel,
                    "captions": caps,
                    "sources": list(cls),
                    "kind": kind,
                    "classes": list(cls),
                    "events": [
                        {"file": s, **({"render": _jsonable(info)} if j == 0 else {})}
                        for j, s in enumerate(srcs)
                    ],
                }
                mf.write(json.dumps(row) + "\n")
                counts[msplit][kind] += 1
            mf.flush()
            audio_cache.clear()
    info = {
        "builder": "corpus_v2.build",
        "builder_version": BUILDER_VERSION,
        "seed": seed,
        "sample_rate": SAMPLE_RATE,
        "clip_seconds": WINDOW_S,
        "render": asdict(spec),
        "plan": PLAN,
        "counts": {k: dict(v) for k, v in counts.items()},
        "classes": [c.id for c in classes],
    }
    (out / "corpus_info.json").write_text(json.dumps(info, indent=1) + "\n")
    return out


def _jsonable(info: dict) -> dict:
    return json.loads(json.dumps(info, default=lambda o: o.item() if hasattr(o, "item") else str(o)))


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--seed", type=int, default=2024)
    p.add_argument("--limit", type=int, default=None, help="at most this many clips per split (smoke runs)")
    p.add_argument("--recaption", action="store_true", help="redraw the captions of clips already rendered")
    a = p.parse_args(argv)
    out = build(a.out, a.seed, a.limit, recaption=a.recaption)
    print(json.dumps(json.loads((out / "corpus_info.json").read_text())["counts"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
