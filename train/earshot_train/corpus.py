"""Captioned corpus builder: single events and mixtures with captions generated from labels.

``python -m earshot_train corpus --config train/configs/corpus.toml`` writes::

    <cache>/corpus/<name>/
        manifest.jsonl      one JSON object per clip (see below)
        corpus_info.json    config, counts, class list, splits of the source files, attribution
        audio/<split>/<id>.wav   32 kHz mono 16-bit, exactly clip_seconds long

Manifest line: ``{"id", "split", "audio", "captions", "sources", "kind", "classes", "events"}`` with
``split`` in train | val | test_single | test_mix | audio_only, ``kind`` in single | bed | overlap |
sequence, ``sources`` canonical source names (``captions.SYNONYMS`` keys), ``captions`` empty for
audio_only. ``events`` records what was mixed where (file, onset, gain) for inspection.

Sources (real data, from ``$EARSHOT_SHARED/data``): ESC-10 folds 1-3 train (a few clips per class carved
out for val), fold 4 held out: test_single, and the only events of test_mix. 0 A.D. events and beds and
the English speech prompts are split by file (every ``heldout_every``-th file of a class, sorted by
name, is held out); test_mix beds come only from held-out files. ``synthetic = true`` builds the same
structure from tones and noise generated in code (for tests; no shared data needed).

Deterministic: every clip is drawn from its own RNG seeded by (seed, split, index).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import re
import shutil
import sys
import tomllib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
from scipy.signal import lfilter
from tqdm import tqdm

from earshot_train.audio_io import load_audio, write_wav
from earshot_train.captions import CLASSES, make_captions
from earshot_train.shared import REPO_ROOT, shared_dir

SPLITS = ("train", "val", "test_single", "test_mix", "audio_only")
#: bumped whenever the builder's output for a given config changes (part of the "already built" check)
BUILDER_VERSION = 2
KINDS = ("single", "bed", "overlap", "sequence")


# ------------------------------------------------------------------------------------------ config
@dataclass
class CorpusConfig:
    name: str = "default"
    #: cache root; "" = $EARSHOT_CACHE or <repo>/train/cache
    cache_dir: str = ""
    #: shared data root; "" = $EARSHOT_SHARED or <repo>/../shared
    shared_dir: str = ""
    seed: int = 1234
    synthetic: bool = False
    sample_rate: int = 32000
    clip_seconds: float = 10.0
    n_captions: int = 5
    # clip counts per split and kind
    n_train_single: int = 700
    n_train_bed: int = 900
    n_train_overlap: int = 600
    n_train_sequence: int = 600
    n_val_single: int = 40
    n_val_bed: int = 40
    n_val_overlap: int = 30
    n_val_sequence: int = 30
    #: ESC fold-4 clips used as test_single (0 = all)
    n_test_single: int = 0
    n_test_bed: int = 100
    n_test_overlap: int = 70
    n_test_sequence: int = 70
    n_audio_only: int = 1000
    #: ESC clips per class (from folds 1-3) moved to val
    val_per_class: int = 2
    #: every n-th file of a 0 A.D./speech class (sorted by name) is held out for test mixtures
    heldout_every: int = 4
    #: probability that a training event is an ESC-10 clip (else 0 A.D. / speech)
    esc_event_prob: float = 0.5
    #: event-to-bed level in dB (uniform range)
    snr_bed_db: list[float] = field(default_factory=lambda: [0.0, 15.0])
    #: second event relative to the first in two-event mixtures, dB
    snr_pair_db: list[float] = field(default_factory=lambda: [-5.0, 5.0])
    #: overall clip level (active RMS), dBFS
    level_db: list[float] = field(default_factory=lambda: [-30.0, -18.0])
    #: white-noise floor relative to full scale, dB (null = none)
    noise_floor_db: float | None = -75.0
    #: synthetic corpora only: virtual source files per class
    synthetic_files_per_class: int = 8

    def validate(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", self.name):
            raise ValueError(f"corpus.name: use letters, digits, '_', '-', '.' only (got {self.name!r})")
        if self.sample_rate <= 0 or self.clip_seconds <= 0:
            raise ValueError("corpus.sample_rate and corpus.clip_seconds must be positive")
        for f in fields(self):
            if f.name.startswith("n_") or f.name in ("val_per_class", "synthetic_files_per_class"):
                v = getattr(self, f.name)
                if not isinstance(v, int) or v < 0:
                    raise ValueError(f"corpus.{f.name}: must be a non-negative integer (got {v!r})")
        if self.n_captions < 1:
            raise ValueError("corpus.n_captions: must be >= 1")
        if self.heldout_every < 2:
            raise ValueError("corpus.heldout_every: must be >= 2")
        if not 0.0 <= self.esc_event_prob <= 1.0:
            raise ValueError("corpus.esc_event_prob: must be in [0, 1]")
        for key in ("snr_bed_db", "snr_pair_db", "level_db"):
            v = getattr(self, key)
            if not (isinstance(v, (list, tuple)) and len(v) == 2 and v[0] <= v[1]):
                raise ValueError(f"corpus.{key}: must be [low, high] (got {v!r})")
        if self.synthetic and self.synthetic_files_per_class < 4:
            raise ValueError("corpus.synthetic_files_per_class: must be >= 4")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CorpusConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"corpus config: unknown key(s) {unknown}; known: {sorted(known)}")
        cfg = cls(**d)
        cfg.validate()
        return cfg

    @classmethod
    def load(cls, path: str | Path) -> CorpusConfig:
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise ValueError(f"corpus config not found: {path}") from None
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"corpus config {path}: {e}") from None
        section = data.get("corpus", data)
        return cls.from_dict(section)

    def digest(self) -> str:
        text = json.dumps({"builder": BUILDER_VERSION, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def cache_root(cfg: CorpusConfig | None = None) -> Path:
    if cfg is not None and cfg.cache_dir:
        p = Path(cfg.cache_dir).expanduser()
        return p if p.is_absolute() else REPO_ROOT / p
    env = os.environ.get("EARSHOT_CACHE")
    return Path(env) if env else REPO_ROOT / "train" / "cache"


def corpus_dir(cfg: CorpusConfig) -> Path:
    return cache_root(cfg) / "corpus" / cfg.name


# ------------------------------------------------------------------------------------------ sources
@dataclass(frozen=True)
class Source:
    uid: str  #: stable id, e.g. "esc10/001 - Dog bark/1-100032-A.ogg" or "synthetic/tone_beep/3"
    cls: str  #: key into captions.CLASSES
    split: str  #: train | val | test
    group: str  #: "esc" (primary events), "extra" (other events), "bed"


# 0 A.D. file → class rules: (regex on the path relative to data/0ad, class)
_0AD_RULES: list[tuple[str, str]] = [
    (r"^actor/fauna/animal/cattle_", "cow"),
    (r"^actor/fauna/animal/chicken_", "chicken"),
    (r"^actor/fauna/animal/elephant_", "elephant"),
    (r"^actor/fauna/animal/horse_", "horse"),
    (r"^actor/fauna/death/death_horse_", "horse"),
    (r"^actor/fauna/animal/pig_", "pig"),
    (r"^actor/fauna/animal/sheep_", "sheep"),
    (r"^actor/fauna/animal/lion_", "lion"),
    (r"^actor/fauna/death/goat_", "goat"),
    (r"^actor/mounted/movement/mstep", "horse_steps"),
    (r"^actor/human/movement/", "footsteps"),
    (r"^actor/singlesteps/fs_(grass|gravel|rock|sand|wood)", "footsteps"),
    (r"^actor/human/death/male_death_", "man_scream"),
    (r"^actor/human/death/female_death_", "woman_scream"),
    (r"^resource/construction/con_saw_", "saw"),
    (r"^resource/construction/con_(wood|stone)_", "hammer"),
    (r"^resource/lumbering/lumber_tree_\d", "axe"),
    (r"^resource/mining/", "mining"),
    (r"^resource/farming/hoe_", "digging"),
    (r"^resource/foraging/leaves_", "leaves"),
    (r"^voice/[a-z]+/civ/civ_male_", "man_voice"),
    (r"^voice/[a-z]+/civ/civ_female_", "woman_voice"),
    (r"^ambient/weather/thunder_", "thunder"),
    (r"^ambient/weather/rain_", "rain_bed"),
    (r"^ambient/weather/(wind|windstorm|snowstorm)_\d", "wind_bed"),
    (r"^ambient/water/(river_|waterfall_)", "water_bed"),
    (r"^ambient/water/wave", "waves_bed"),
    (r"^ambient/dayscape/day_", "birds_bed"),
    (r"^ambient/building/amb_(trade|port)_", "crowd_bed"),
    (r"^music/", "music"),
]

ESC_CLASSES = {
    "001 - Dog bark": "dog_bark",
    "002 - Rain": "rain",
    "003 - Sea waves": "sea_waves",
    "004 - Baby cry": "baby_cry",
    "005 - Clock tick": "clock_tick",
    "006 - Person sneeze": "sneeze",
    "007 - Helicopter": "helicopter",
    "008 - Chainsaw": "chainsaw",
    "009 - Rooster": "rooster",
    "010 - Fire crackling": "fire_crackling",
}


def _split_by_file(files: Sequence[str], every: int) -> dict[str, str]:
    """Sorted files of one class: every ``every``-th (offset every//2) is held out ("test"), at least one
    when there are two or more files, never all."""
    files = sorted(files)
    out = {f: "train" for f in files}
    if len(files) < 2:
        return out
    held = [f for i, f in enumerate(files) if i % every == every // 2] or [files[-1]]
    if len(held) == len(files):
        held = held[:-1]
    for f in held:
        out[f] = "test"
    return out


def discover_real_sources(cfg: CorpusConfig, root: Path) -> list[Source]:
    """Every usable file under ``root/data`` as a :class:`Source` with its split."""
    data = root / "data"
    missing = [d for d in ("esc10", "0ad", "speech-en") if not (data / d).is_dir()]
    if missing:
        raise FileNotFoundError(
            f"shared data missing under {data}: {missing} (set EARSHOT_SHARED, or use a synthetic config)"
        )
    out: list[Source] = []
    rng = random.Random(cfg.seed)
    for folder, cls in ESC_CLASSES.items():
        files = sorted(p.name for p in (data / "esc10" / folder).glob("*.ogg"))
        if not files:
            raise FileNotFoundError(f"no ESC-10 clips in {data / 'esc10' / folder}")
        trainval = [f for f in files if f[0] in "123"]
        val = set(rng.sample(trainval, min(cfg.val_per_class, max(0, len(trainval) - 1))))
        for f in files:
            fold = f[0]
            if fold not in "1234":
                continue  # fold 5 is held back for independent evaluation
            split = "test" if fold == "4" else ("val" if f in val else "train")
            out.append(Source(f"esc10/{folder}/{f}", cls, split, "esc"))
    by_class: dict[str, list[str]] = {}
    for p in sorted((data / "0ad").rglob("*.ogg")):
        rel = p.relative_to(data / "0ad").as_posix()
        for pat, cls in _0AD_RULES:
            if re.search(pat, rel):
                by_class.setdefault(cls, []).append("0ad/" + rel)
                break
    by_class["speech"] = sorted("speech-en/" + p.name for p in (data / "speech-en").glob("*.ogg"))
    for cls, files in sorted(by_class.items()):
        group = "bed" if CLASSES[cls].bed else "extra"
        for f, split in _split_by_file(files, cfg.heldout_every).items():
            out.append(Source(f, cls, split, group))
    return out


SYNTH_EVENTS = ("tone_beep", "tone_chirp")
SYNTH_BEDS = ("noise_bed", "hum_bed")


def discover_synthetic_sources(cfg: CorpusConfig) -> list[Source]:
    out = []
    n = cfg.synthetic_files_per_class
    for cls in SYNTH_EVENTS + SYNTH_BEDS:
        group = "bed" if CLASSES[cls].bed else "esc"
        for i in range(n):
            split = "test" if i % 4 == 3 else ("val" if i % 4 == 2 and group == "esc" else "train")
            out.append(Source(f"synthetic/{cls}/{i}", cls, split, group))
    return out


def synth_audio(uid: str, sr: int) -> np.ndarray:
    """Deterministic synthetic 'recording' for a ``synthetic/<class>/<i>`` uid."""
    _, cls, idx = uid.split("/")
    i = int(idx)
    rng = np.random.default_rng(1000 + 17 * i + 7919 * (SYNTH_EVENTS + SYNTH_BEDS).index(cls))
    if cls == "tone_beep":  # 2-4 beeps of 0.15-0.3 s at 700-1500 Hz
        n = int(2.0 * sr)
        x = np.zeros(n)
        f = 700 + 800 * rng.random()
        dur = 0.15 + 0.15 * rng.random()
        for k in range(int(rng.integers(2, 5))):
            s = int((0.1 + 0.45 * k) * sr)
            t = np.arange(int(dur * sr)) / sr
            seg = np.sin(2 * math.pi * f * t) * np.hanning(len(t))
            x[s : s + len(seg)] += seg[: max(0, min(len(seg), n - s))]
        return (0.5 * x).astype(np.float32)
    if cls == "tone_chirp":  # rising whistle 1.0-1.8 s
        dur = 1.0 + 0.8 * rng.random()
        t = np.arange(int(dur * sr)) / sr
        f0, f1 = 1500 + 1000 * rng.random(), 4000 + 2000 * rng.random()
        ph = 2 * math.pi * (f0 * t + 0.5 * (f1 - f0) / dur * t * t)
        return (0.4 * np.sin(ph) * np.hanning(len(t))).astype(np.float32)
    if cls == "noise_bed":  # coloured noise, 12 s
        n = int(12 * sr)
        a = 0.5 + 0.45 * rng.random()
        y = lfilter([1 - a], [1, -a], rng.standard_normal(n))  # one-pole low-pass
        return (0.3 * y / (np.abs(y).max() + 1e-9)).astype(np.float32)
    if cls == "hum_bed":  # mains-like hum with harmonics, 12 s
        n = int(12 * sr)
        t = np.arange(n) / sr
        f = 50 + 70 * rng.random()
        x = sum(np.sin(2 * math.pi * f * h * t + rng.random() * 6) / h for h in (1, 2, 3, 4))
        return (0.2 * x * (1 + 0.1 * np.sin(2 * math.pi * 0.3 * t))).astype(np.float32)
    raise ValueError(f"unknown synthetic class {cls!r}")


# ------------------------------------------------------------------------------------------ mixing
def _active_rms(x: np.ndarray, sr: int) -> float:
    """RMS over the 50 ms frames within 30 dB of the loudest one (robust to leading/trailing silence)."""
    hop = max(1, sr // 20)
    n = max(1, len(x) // hop)
    frames = x[: n * hop].reshape(n, hop) if len(x) >= hop else x[None, :]
    e = (frames.astype(np.float64) ** 2).mean(axis=1)
    if e.max() <= 0:
        return 0.0
    keep = e >= e.max() * 1e-3
    return float(math.sqrt(e[keep].mean()))


def _norm(x: np.ndarray, sr: int) -> np.ndarray:
    r = _active_rms(x, sr)
    return x / r if r > 0 else x


class Mixer:
    """Builds clips from sources; audio of each source is decoded once and kept in memory."""

    def __init__(self, cfg: CorpusConfig, sources: list[Source], root: Path | None):
        self.cfg = cfg
        self.sr = cfg.sample_rate
        self.n = int(round(cfg.clip_seconds * cfg.sample_rate))
        self.root = root
        self._cache: dict[str, np.ndarray] = {}
        self.by: dict[tuple[str, str], dict[str, list[Source]]] = {}
        for s in sources:
            self.by.setdefault((s.group, s.split), {}).setdefault(s.cls, []).append(s)

    def audio(self, s: Source) -> np.ndarray:
        x = self._cache.get(s.uid)
        if x is None:
            if s.uid.startswith("synthetic/"):
                x = synth_audio(s.uid, self.sr)
            else:
                assert self.root is not None
                x = load_audio(self.root / "data" / s.uid, self.sr)
            if len(x) == 0 or not np.isfinite(x).all():
                raise ValueError(f"bad audio in {s.uid}")
            self._cache[s.uid] = x
        return x

    # --- picking
    def pool(self, group: str, split: str) -> dict[str, list[Source]]:
        return self.by.get((group, split), {})

    def pick_event(self, rng: random.Random, split: str, exclude_sources: set[str]) -> Source:
        esc = self.pool("esc", split)
        extra = self.pool("extra", split) if split == "train" else {}
        use_extra = extra and (not esc or rng.random() >= self.cfg.esc_event_prob)
        pool = extra if use_extra else esc
        classes = sorted(c for c in pool if CLASSES[c].source not in exclude_sources)
        if not classes:  # fall back to the other pool
            pool = esc if use_extra else extra
            classes = sorted(c for c in pool if CLASSES[c].source not in exclude_sources)
        if not classes:
            raise ValueError(f"no event sources left for split {split!r}")
        return rng.choice(pool[rng.choice(classes)])

    def pick_bed(self, rng: random.Random, split: str, exclude_sources: set[str]) -> Source:
        pool = self.pool("bed", split)
        classes = sorted(c for c in pool if CLASSES[c].source not in exclude_sources)
        if not classes:
            raise ValueError(f"no bed sources for split {split!r}")
        return rng.choice(pool[rng.choice(classes)])

    # --- building blocks
    def event_track(self, rng: random.Random, s: Source, max_len: int, split: str) -> np.ndarray:
        """The event, normalised; short events are repeated (same class, same split) to 1-10 s."""
        sr = self.sr
        x = _norm(self.audio(s), sr)
        if len(x) > max_len:
            start = rng.randrange(0, len(x) - max_len + 1)
            return x[start : start + max_len]
        if len(x) >= 2 * sr or s.group == "esc":
            return x
        # short event: a few repetitions with gaps (footsteps get many)
        same = [o for o in self.pool(s.group, s.split).get(s.cls, [s])] or [s]
        reps = rng.randint(4, 10) if s.cls == "footsteps" and len(x) < sr else rng.randint(1, 3)
        gap_lo, gap_hi = (0.25, 0.6) if s.cls == "footsteps" else (0.2, 1.2)
        parts: list[np.ndarray] = []
        total = 0
        for k in range(reps):
            y = x if k == 0 else _norm(self.audio(rng.choice(same)), sr)
            if total + len(y) > max_len:
                break
            parts.append(y)
            total += len(y)
            gap = np.zeros(int(rng.uniform(gap_lo, gap_hi) * sr), np.float32)
            if total + len(gap) < max_len:
                parts.append(gap)
                total += len(gap)
        return np.concatenate(parts)

    def bed_track(self, rng: random.Random, s: Source) -> np.ndarray:
        x = self.audio(s)
        if len(x) < self.n:
            x = np.tile(x, int(math.ceil(self.n / len(x))) + 1)
        start = rng.randrange(0, len(x) - self.n + 1)
        return _norm(x[start : start + self.n], self.sr)

    def finish(self, rng: random.Random, np_rng: np.random.Generator, x: np.ndarray) -> np.ndarray:
        r = _active_rms(x, self.sr)
        if r > 0:
            x = x * (10 ** (rng.uniform(*self.cfg.level_db) / 20) / r)
        peak = np.abs(x).max()
        if peak > 0.95:
            x = x * (0.95 / peak)
        if self.cfg.noise_floor_db is not None:
            x = x + (10 ** (self.cfg.noise_floor_db / 20)) * np_rng.standard_normal(len(x))
        return np.clip(x, -1.0, 1.0).astype(np.float32)

    def _place(self, out: np.ndarray, y: np.ndarray, onset: int, gain: float) -> None:
        end = min(len(out), onset + len(y))
        out[onset:end] += gain * y[: end - onset]

    # --- clip kinds
    def make(
        self,
        rng: random.Random,
        np_rng: np.random.Generator,
        kind: str,
        split: str,
        ev_split: str,
        bed_split: str,
    ) -> tuple[np.ndarray, list[str], list[dict[str, Any]]]:
        """Returns (audio, class names in caption order, event records)."""
        sr, n = self.sr, self.n
        out = np.zeros(n, np.float64)
        events: list[dict[str, Any]] = []

        def rec(s: Source, onset: int, length: int, gain_db: float) -> None:
            events.append(
                {
                    "file": s.uid,
                    "class": s.cls,
                    "onset_s": round(onset / sr, 3),
                    "dur_s": round(min(length, n - onset) / sr, 3),
                    "gain_db": round(gain_db, 2),
                }
            )

        if kind == "single":
            s = self.pick_event(rng, ev_split, set())
            y = self.event_track(rng, s, n, ev_split)
            onset = rng.randrange(0, max(1, n - len(y) + 1))
            self._place(out, y, onset, 1.0)
            rec(s, onset, len(y), 0.0)
            classes = [s.cls]
        elif kind == "bed":
            e = self.pick_event(rng, ev_split, set())
            b = self.pick_bed(rng, bed_split, {CLASSES[e.cls].source})
            y = self.event_track(rng, e, int(0.8 * n), ev_split)
            bed = self.bed_track(rng, b)
            snr = rng.uniform(*self.cfg.snr_bed_db)
            self._place(out, bed, 0, 10 ** (-snr / 20))
            onset = rng.randrange(0, max(1, n - len(y) + 1))
            self._place(out, y, onset, 1.0)
            rec(b, 0, n, -snr)
            rec(e, onset, len(y), 0.0)
            classes = [e.cls, b.cls]
        elif kind == "overlap":
            a = self.pick_event(rng, ev_split, set())
            b = self.pick_event(rng, ev_split, {CLASSES[a.cls].source})
            ya = self.event_track(rng, a, int(0.8 * n), ev_split)
            yb = self.event_track(rng, b, int(0.8 * n), ev_split)
            oa = rng.randrange(0, max(1, n - len(ya) + 1))
            # b starts while a is sounding (within its first half), so the two really overlap
            lo, hi = max(0, oa - len(yb) // 2), min(n - min(len(yb), n), oa + len(ya) // 2)
            ob = rng.randrange(lo, hi + 1) if hi >= lo else lo
            rel = rng.uniform(*self.cfg.snr_pair_db)
            self._place(out, ya, oa, 1.0)
            self._place(out, yb, ob, 10 ** (rel / 20))
            rec(a, oa, len(ya), 0.0)
            rec(b, ob, len(yb), rel)
            classes = [a.cls, b.cls]
        elif kind == "sequence":
            a = self.pick_event(rng, ev_split, set())
            b = self.pick_event(rng, ev_split, {CLASSES[a.cls].source})
            half = n // 2
            ya = self.event_track(rng, a, int(0.45 * n), ev_split)
            oa = rng.randrange(0, max(1, half - len(ya) + 1))
            gap = int(rng.uniform(0.2, 1.0) * sr)
            ob = min(oa + len(ya) + gap, n - sr)
            yb = self.event_track(rng, b, n - ob, ev_split)
            rel = rng.uniform(*self.cfg.snr_pair_db)
            self._place(out, ya, oa, 1.0)
            self._place(out, yb, ob, 10 ** (rel / 20))
            rec(a, oa, len(ya), 0.0)
            rec(b, ob, len(yb), rel)
            classes = [a.cls, b.cls]
        else:
            raise ValueError(f"unknown kind {kind!r}")
        return self.finish(rng, np_rng, out), classes, events


# ------------------------------------------------------------------------------------------ build
PlanItem = tuple[str, str, int, str, str, str | None]


def _plan(cfg: CorpusConfig, mixer: Mixer) -> list[PlanItem]:
    """(split, kind, index, event split, bed split, fixed source uid or None) for every clip."""
    plan: list[PlanItem] = []

    def add(split, kind, count, ev, bed):
        for i in range(count):
            plan.append((split, kind, i, ev, bed, None))

    for kind in KINDS:
        add("train", kind, getattr(cfg, f"n_train_{kind}"), "train", "train")
    for kind in KINDS:
        add("val", kind, getattr(cfg, f"n_val_{kind}"), "val", "train")
    test_events = sorted((s for ss in mixer.pool("esc", "test").values() for s in ss), key=lambda s: s.uid)
    if cfg.n_test_single:
        test_events = random.Random(cfg.seed + 4).sample(
            test_events, min(cfg.n_test_single, len(test_events))
        )
    for i, s in enumerate(test_events):
        plan.append(("test_single", "single", i, "test", "test", s.uid))
    for kind in ("bed", "overlap", "sequence"):
        add("test_mix", kind, getattr(cfg, f"n_test_{kind}"), "test", "test")
    kinds = random.Random(cfg.seed + 5)
    for i in range(cfg.n_audio_only):
        plan.append(("audio_only", kinds.choice(KINDS), i, "train", "train", None))
    return plan


def _esc_attribution(root: Path) -> dict[str, str]:
    readme = root / "data" / "esc10" / "README.md"
    out: dict[str, str] = {}
    if not readme.is_file():
        return out
    for line in readme.read_text(errors="replace").splitlines():
        m = re.match(r"^- \*\*\[([^\]]+\.ogg)\]\([^)]*\)\*\*:\s*(.*)$", line.strip())
        if m:
            text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", m.group(2)).replace("*", "")
            out[m.group(1)] = " ".join(text.split())
    return out


def build_corpus(
    cfg: CorpusConfig, out_dir: str | Path | None = None, force: bool = False, progress: bool = True
) -> Path:
    """Build (or, when an identical complete build exists and not ``force``, keep) the corpus.

    Returns the corpus directory holding ``manifest.jsonl``.
    """
    cfg.validate()
    out = Path(out_dir) if out_dir is not None else corpus_dir(cfg)
    info_path = out / "corpus_info.json"
    if info_path.is_file() and not force:
        try:
            info = json.loads(info_path.read_text())
        except json.JSONDecodeError:
            info = {}
        if info.get("config_digest") == cfg.digest() and info.get("complete"):
            return out
    if out.exists():
        if any(out.iterdir()) and not info_path.is_file() and not (out / "manifest.jsonl").is_file():
            raise ValueError(f"refusing to overwrite {out}: it exists and is not a corpus directory")
        shutil.rmtree(out)
    out.mkdir(parents=True)

    root: Path | None
    if cfg.synthetic:
        root = None
        sources = discover_synthetic_sources(cfg)
    else:
        root = Path(cfg.shared_dir).expanduser() if cfg.shared_dir else shared_dir()
        sources = discover_real_sources(cfg, root)
    mixer = Mixer(cfg, sources, root)
    plan = _plan(cfg, mixer)
    uid_map = {s.uid: s for s in sources}
    counts: dict[str, dict[str, int]] = {}
    used_files: set[str] = set()
    tmp_manifest = out / "manifest.jsonl.partial"
    with open(tmp_manifest, "w") as mf:
        for split, kind, i, ev, bed, fixed in tqdm(plan, desc=f"corpus {cfg.name}", disable=not progress):
            seed_txt = f"{cfg.seed}/{split}/{kind}/{i}"
            h = int.from_bytes(hashlib.sha256(seed_txt.encode()).digest()[:8], "little")
            rng = random.Random(h)
            np_rng = np.random.default_rng(h)
            if fixed is not None:  # test_single: one held-out ESC clip, whole, at a random onset
                s = uid_map[fixed]
                y = mixer.event_track(rng, s, mixer.n, ev)
                x = np.zeros(mixer.n, np.float64)
                onset = rng.randrange(0, max(1, mixer.n - len(y) + 1))
                x[onset : onset + len(y)] += y[: mixer.n - onset]
                audio = mixer.finish(rng, np_rng, x)
                classes = [s.cls]
                events = [
                    {
                        "file": s.uid,
                        "class": s.cls,
                        "onset_s": round(onset / mixer.sr, 3),
                        "dur_s": round(len(y) / mixer.sr, 3),
                        "gain_db": 0.0,
                    }
                ]
            else:
                audio, classes, events = mixer.make(rng, np_rng, kind, split, ev, bed)
            assert len(audio) == mixer.n
            clip_id = f"{split}-{kind}-{i:05d}"
            rel = f"audio/{split}/{clip_id}.wav"
            write_wav(out / rel, audio, mixer.sr)
            srcs: list[str] = []
            for c in classes:
                if CLASSES[c].source not in srcs:
                    srcs.append(CLASSES[c].source)
            caps = [] if split == "audio_only" else make_captions(rng, kind, classes, cfg.n_captions)
            entry = {
                "id": clip_id,
                "split": split,
                "audio": rel,
                "captions": caps,
                "sources": srcs,
                "kind": kind,
                "classes": classes,
                "events": events,
            }
            mf.write(json.dumps(entry) + "\n")
            counts.setdefault(split, {}).setdefault(kind, 0)
            counts[split][kind] += 1
            used_files.update(e["file"] for e in events)
    tmp_manifest.replace(out / "manifest.jsonl")

    attribution: dict[str, Any] = {}
    if cfg.synthetic:
        attribution["synthetic"] = "tones and noise generated in code (earshot_train.corpus.synth_audio)"
    else:
        assert root is not None
        esc = _esc_attribution(root)
        used_esc = sorted(f for f in used_files if f.startswith("esc10/"))
        attribution["esc10"] = {
            "licence": "per clip CC0 or CC-BY 3.0 (ESC-10, K. J. Piczak); clips derived from freesound.org",
            "clips": {f: esc.get(f.rsplit("/", 1)[-1], "see data/esc10/README.md") for f in used_esc},
        }
        attribution["0ad"] = "CC-BY-SA 3.0, Wildfire Games (0 A.D., Debian 0ad-data)"
        attribution["speech-en"] = "CC-BY-SA 3.0, Allison Smith (Debian asterisk-core-sounds-en)"
    info = {
        "name": cfg.name,
        "config": asdict(cfg),
        "config_digest": cfg.digest(),
        "builder_version": BUILDER_VERSION,
        "sample_rate": cfg.sample_rate,
        "clip_seconds": cfg.clip_seconds,
        "counts": counts,
        "n_clips": sum(sum(v.values()) for v in counts.values()),
        "classes": {
            c: {"source": CLASSES[c].source, "bed": CLASSES[c].bed} for c in sorted({s.cls for s in sources})
        },
        "source_files": {
            sp: sorted(s.uid for s in sources if s.split == sp) for sp in ("train", "val", "test")
        },
        "attribution": attribution,
        "complete": True,
    }
    info_path.write_text(json.dumps(info, indent=1) + "\n")
    return out


def read_manifest(corpus: str | Path, splits: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Manifest entries (optionally only ``splits``); ``audio`` stays relative to the corpus dir."""
    path = Path(corpus) / "manifest.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"no manifest at {path}; build the corpus first (earshot-train corpus)")
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if splits is not None:
        bad = set(splits) - set(SPLITS)
        if bad:
            raise ValueError(f"unknown split(s) {sorted(bad)}; known: {SPLITS}")
        rows = [r for r in rows if r["split"] in splits]
    return rows


# ------------------------------------------------------------------------------------------ CLI
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="TOML file with a [corpus] table")
    p.add_argument("--out", default=None, help="output dir (default <cache>/corpus/<name>)")
    p.add_argument("--force", action="store_true", help="rebuild even if an identical build exists")
    p.add_argument("--no-progress", action="store_true")


def main(args: argparse.Namespace | Sequence[str] | None = None) -> int:
    """CLI entry: ``earshot-train corpus --config FILE [--out DIR] [--force]``."""
    if not isinstance(args, argparse.Namespace):
        p = argparse.ArgumentParser(prog="earshot-train corpus", description=__doc__.split("\n")[0])
        add_arguments(p)
        args = p.parse_args(args)
    try:
        cfg = CorpusConfig.load(args.config)
        out = build_corpus(
            cfg,
            getattr(args, "out", None),
            force=getattr(args, "force", False),
            progress=not getattr(args, "no_progress", False),
        )
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    info = json.loads((out / "corpus_info.json").read_text())
    print(f"corpus {cfg.name}: {info['n_clips']} clips in {out}")
    for split, kinds in info["counts"].items():
        print(f"  {split:12s} " + ", ".join(f"{k} {v}" for k, v in kinds.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
