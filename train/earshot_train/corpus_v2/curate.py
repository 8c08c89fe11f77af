"""Curation of corpus v2: every shared file → a taxonomy class (or a recorded reason to drop it).

Decision per file, in order:

0. **Digital silence** (peak below :data:`SILENCE_PEAK_DBFS`) is dropped unless its label says
   silence: nothing can be heard, whatever the collection's label (``speech-en``'s ``3.ogg``…``10.ogg``
   are N seconds of silence in a speech collection).
1. **Trusted labels** (ESC-10 folder names, the one ``speech-en`` voice) are kept as labelled; mn04
   agreement is still recorded.
2. **Speech collections** (label ``speech; ...``): the gender comes from the label when it says so,
   otherwise from mn04 (male vs female vs child speech tags, one clearly ahead); a file where mn04
   hears no speech at all is dropped.
3. **Label rules**: the class whose ``match`` regex covers the longest stretch of the label (ties: file
   order). mn04 *agrees* when one of the class's AudioSet tags reaches :data:`AGREE_P` or is among the
   file's top :data:`AGREE_TOP` tags. Agree → keep. Disagree → relabel when mn04's top tag is confident
   (≥ :data:`RELABEL_P`) and belongs to a class of the same group; otherwise drop.
4. **No label rule**: relabel from mn04 alone when its top tag is confident (≥ :data:`MN04_ONLY_P`) and
   specific (not a generic tag such as "Sound effect" nor a broad one such as "Music"), outside the
   desktop notification themes; otherwise drop.
5. **Synthetic UI beeps and tones** (interface words in the label, or mn04's top tag a beep, sine,
   chirp tone or generic "Sound effect") are dropped unless the class is one whose words fit them.

Recording ids group the takes of one recording (ESC-10 freesound id, speaker or voice for speech, the
label without take numbers otherwise); splits hold out whole recordings per class (ESC-10: folds 1–3
train, fold 4 val/test). ``python -m earshot_train.corpus_v2.curate`` writes ``train/data/corpus-v2.tsv``
(committed: our labelling, never audio) and ``train/CORPUS.md``.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import re
import sys
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from earshot_train.corpus_v2.sources import Source, collections, licence_summary, list_sources
from earshot_train.corpus_v2.taxonomy import SourceClass, load_taxonomy
from earshot_train.shared import REPO_ROOT, shared_dir

__all__ = [
    "Decision",
    "decide",
    "recording_id",
    "assign_splits",
    "curate",
    "write_manifest",
    "read_manifest",
    "manifest_path",
]

AGREE_P = 0.10
AGREE_TOP = 5
RELABEL_P = 0.50
MN04_ONLY_P = 0.60
SPEECH_P = 0.20
VAL_FRACTION = 0.10
TEST_FRACTION = 0.10
SILENCE_PEAK_DBFS = -60.0
N_NOTHING = 60  # generated "nothing recognisable" recipes (see render.nothing_recipes)

TRUSTED = {"esc10", "speech-en"}
ESC10 = {
    "dog bark": "dog_bark",
    "rain": "rain",
    "sea waves": "sea_waves",
    "baby cry": "baby_cry",
    "clock tick": "clock_tick",
    "person sneeze": "sneeze",
    "helicopter": "helicopter",
    "chainsaw": "chainsaw",
    "rooster": "rooster",
    "fire crackling": "fire_crackling",
}
GENERIC_TAGS = {
    "Sound effect",
    "Inside, small room",
    "Inside, large room or hall",
    "Inside, public space",
    "Outside, urban or manmade",
    "Outside, rural or natural",
    "Reverberation",
    "Echo",
    "Noise",
    "Environmental noise",
    "Distortion",
    "Effects unit",
    "Chorus effect",
    "Sidetone",
    "Cacophony",
    "Vehicle",
    "Animal",
    "Field recording",
    "Silence",
}
#: tags too broad to name a class from mn04 alone (no label rule): they would teach "music plays"
#: for designed game and desktop jingles
BROAD_TAGS = {"Music", "Speech", "Musical instrument", "Electronic music", "Video game music"}
#: collections of designed notification sounds: a file there needs a label rule
SYNTHETIC_UI = {"desktop-sound-themes"}
TONE_TAGS = {
    "Beep, bleep",
    "Sine wave",
    "Chirp tone",
    "Electronic tuner",
    "Sound effect",
    "Pulse",
    "Sonar",
    "Harmonic",
}
#: classes a beep/tone/synthetic sound may rightly belong to
TONE_OK = {
    "nothing",
    "alarm",
    "bell",
    "telephone",
    "doorbell",
    "synthesizer",
    "music",
    "xylophone",
    "electric_hum",
}
UI_WORDS = re.compile(
    r"\b(click|clk|beep|bleep|blip|menu|select|button|butn|pickup|pkup|pick up|item|bonus|power ?up|"
    r"notif\w*|dialog|"
    r"message|msg|chat|log(in|out|off)|device|battery|error|complete|download|online|offline|network|connect\w*|"
    r"hub|volume|teleport|respawn|spawn|laser|lasfly|phaser|plasma|magic|spell|portal|forcefield|invisib\w*|"
    r"quaddamage|regen\w*|health|ammo|weapswitch|lifeup|upgrade|win|youwin|youlose|tuxok|youcannot|query|"
    r"zone|alert|attention|question|information|warp|invinc\w*|finlevel|gp end|captured|checkpoint|score|"
    r"energy|level|confirm\w*|decline|cancel|success|fail\w*|ping|blop|bop|pop|tada)\b"
)


@dataclass(frozen=True)
class Decision:
    path: str
    collection: str
    label: str
    cls: str  #: "" when dropped
    action: str  #: keep | relabel | drop
    reason: str
    rule_class: str  #: class from the label alone ("" if none)
    agree: bool | None  #: mn04 agrees with the label class (None: no label class or no tags)
    duration_s: float
    recording: str = ""
    split: str = ""
    top: str = ""  #: mn04 top-3 tags "Tag:0.93;..."


def _main_label(s: Source) -> str:
    return s.label.split(" (")[0].strip()


def rule_class(s: Source, classes: Sequence[SourceClass]) -> str:
    """The class a label rule gives (longest match wins, ties by file order), ``""`` if none."""
    if s.collection == "esc10":
        return ESC10.get(s.label, "")
    if s.collection == "speech-en":
        return "speech_woman"
    text = _main_label(s)
    best, best_len = "", 0
    for c in classes:
        for m in c.match:
            hit = m.search(text)
            if hit and len(hit.group(0)) > best_len:
                best, best_len = c.id, len(hit.group(0))
    return best


def _top(p: np.ndarray, labels: list[str], k: int) -> list[tuple[str, float]]:
    idx = np.argsort(-p.astype(np.float32))[:k]
    return [(labels[i], float(p[i])) for i in idx]


def _agrees(c: SourceClass, p: np.ndarray, index: dict[str, int]) -> bool:
    ids = [index[t] for t in c.audioset]
    if float(np.max(p[ids].astype(np.float32))) >= AGREE_P:
        return True
    top = set(np.argsort(-p.astype(np.float32))[:AGREE_TOP].tolist())
    return any(i in top for i in ids)


def _tag_class(tag: str, classes: Sequence[SourceClass], group: str | None = None) -> str:
    """The class that lists ``tag`` earliest in its AudioSet list (optionally within ``group``)."""
    best, pos = "", 10**9
    for c in classes:
        if group is not None and c.group != group:
            continue
        if tag in c.audioset and c.audioset.index(tag) < pos:
            best, pos = c.id, c.audioset.index(tag)
    return best


def _speech_gender(s: Source, p: np.ndarray, index: dict[str, int]) -> tuple[str, str]:
    text = _main_label(s)
    if re.search(r"\bwoman\b|\bfemale\b", text):
        return "speech_woman", "speech, woman from label"
    if re.search(r"\bman\b|\bmale\b", text):
        return "speech_man", "speech, man from label"
    g = {
        "speech_man": float(p[index["Male speech, man speaking"]]),
        "speech_woman": float(p[index["Female speech, woman speaking"]]),
        "speech_child": float(p[index["Child speech, kid speaking"]]),
    }
    order = sorted(g, key=g.get, reverse=True)
    if g[order[0]] >= 0.3 and g[order[0]] >= 2.0 * g[order[1]]:
        return order[0], f"speech, {order[0][7:]} from mn04 ({g[order[0]]:.2f})"
    return "speech_person", "speech, speaker not determined"


def decide(
    s: Source,
    probs: np.ndarray | None,
    classes: Sequence[SourceClass],
    labels: list[str],
    duration_s: float,
    peak_dbfs: float | None = None,
) -> Decision:
    """The curation decision for one file (see the module doc); ``probs`` = mn04 max-over-windows,
    ``peak_dbfs`` the file's sample peak (None: not measured)."""
    by_id = {c.id: c for c in classes}
    index = {t: i for i, t in enumerate(labels)}
    rc = rule_class(s, classes)
    base = Decision(s.path, s.collection, s.label, "", "drop", "", rc, None, duration_s)
    if duration_s < 0.1:
        return replace(base, reason="shorter than 0.1 s")
    if peak_dbfs is not None and peak_dbfs < SILENCE_PEAK_DBFS and rc != "nothing":
        return replace(base, reason=f"digital silence (peak {peak_dbfs:.0f} dBFS)")
    if probs is None:
        if s.collection in TRUSTED and rc:
            return replace(base, cls=rc, action="keep", reason="trusted label (no mn04 tags)")
        return replace(base, reason="no mn04 tags (file not tagged)")
    top = _top(probs, labels, 3)
    base = replace(base, top=";".join(f"{t}:{v:.2f}" for t, v in top))
    agree = _agrees(by_id[rc], probs, index) if rc else None
    base = replace(base, agree=agree)
    if s.collection in TRUSTED:
        return replace(
            base, cls=rc, action="keep", reason="trusted label" + ("" if agree else ", mn04 disagrees")
        )
    top_tag, top_p = top[0]
    if s.label.startswith("speech") and rc.startswith("speech"):
        speech = max(float(probs[index[t]]) for t in by_id["speech_person"].audioset)
        if speech < SPEECH_P:
            return replace(base, reason=f"speech label but mn04 hears no speech (top {top_tag} {top_p:.2f})")
        cls, why = _speech_gender(s, probs, index)
        return replace(
            base, cls=cls, action="keep" if cls == rc or rc == "speech_person" else "relabel", reason=why
        )
    text = _main_label(s)
    tone = top_tag in TONE_TAGS
    if rc:
        c = by_id[rc]
        if agree and not (tone and rc not in TONE_OK and top_p >= 0.3):
            return replace(base, cls=rc, action="keep", reason="label rule, mn04 agrees")
        if tone and rc not in TONE_OK:
            return replace(
                base, reason=f"synthetic tone/beep (mn04 top {top_tag} {top_p:.2f}) for label class {rc}"
            )
        alt = _tag_class(top_tag, classes, c.group) if top_tag not in GENERIC_TAGS else ""
        if alt and top_p >= RELABEL_P and alt != rc:
            return replace(
                base,
                cls=alt,
                action="relabel",
                reason=f"relabel {rc} -> {alt}: mn04 top {top_tag} {top_p:.2f}",
            )
        return replace(base, reason=f"mn04 disagrees with label class {rc} (top {top_tag} {top_p:.2f})")
    if UI_WORDS.search(text):
        return replace(base, reason="synthetic UI sound (interface word in label)")
    if tone:
        return replace(base, reason=f"synthetic tone/beep (mn04 top {top_tag} {top_p:.2f})")
    alt = _tag_class(top_tag, classes) if top_tag not in GENERIC_TAGS | BROAD_TAGS else ""
    if alt and alt != "nothing" and top_p >= MN04_ONLY_P and s.collection not in SYNTHETIC_UI:
        return replace(
            base, cls=alt, action="relabel", reason=f"no label rule; mn04 top {top_tag} {top_p:.2f}"
        )
    return replace(base, reason=f"no label rule, mn04 not confident (top {top_tag} {top_p:.2f})")


_TAKE = re.compile(r"[\s_\-]*(\d+|[a-d]|take\s*\d+|alt|loop|hi|lo|low|high|med|short|long)$")


def recording_id(s: Source) -> str:
    """Group id for the takes of one recording (or one voice, for speech)."""
    if s.collection == "esc10":
        return "esc10:" + Path(s.path).stem.split("-")[1]
    if s.collection == "speech-en":
        return "speech-en:allison"
    text = _main_label(s)
    if s.collection == "scikit-maad-soundscapes":
        m = re.search(r"at (\d\d):", text)
        return f"{s.collection}:hour{m.group(1) if m else text}"
    if text.startswith("speech") or text.startswith(("laughter;", "scream")):
        for pat in (r"by speaker (\w+)", r"pack (\w+)", r"language (\w+)", r"speech; (\w+ ?\w*)"):
            m = re.search(pat, s.label)
            if m:
                return f"{s.collection}:voice:{m.group(1)}"
    if s.collection == "0ad":
        stem = re.sub(r"[_\-]?\d+$", "", Path(s.path).stem)
        return f"0ad:{Path(s.path).parent.name}/{stem}"
    key = text
    for _ in range(3):
        key = _TAKE.sub("", key).strip()
    return f"{s.collection}:{key or text}"


def _h(x: str) -> str:
    return hashlib.md5(x.encode()).hexdigest()


def assign_splits(rows: list[Decision]) -> list[Decision]:
    """Fill ``split``: whole recordings per class held out for val and test (ESC-10 by fold)."""
    out: list[Decision] = []
    groups: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        if r.cls and r.collection != "esc10":
            groups[r.cls].add(r.recording)
    where: dict[tuple[str, str], str] = {}
    for cls, recs in groups.items():
        order = sorted(recs, key=lambda g: _h(cls + g))
        n = len(order)
        n_test = int(round(TEST_FRACTION * n)) if n >= 3 else (1 if n == 2 else 0)
        n_val = int(round(VAL_FRACTION * n)) if n >= 3 else 0
        n_test, n_val = max(n_test, 1 if n >= 3 else n_test), max(n_val, 1 if n >= 3 else 0)
        for i, g in enumerate(order):
            where[(cls, g)] = "test" if i < n_test else ("val" if i < n_test + n_val else "train")
    for r in rows:
        if not r.cls:
            out.append(r)
        elif r.collection == "esc10":
            fold = Path(r.path).stem.split("-")[0]
            split = (
                "train"
                if fold in ("1", "2", "3")
                else ("val" if int(_h(r.recording), 16) % 2 == 0 else "test")
            )
            out.append(replace(r, split=split))
        else:
            out.append(replace(r, split=where[(r.cls, r.recording)]))
    return out


def _nothing_rows() -> list[Decision]:
    from earshot_train.corpus_v2.render import nothing_recipes

    rows = []
    for i, name in enumerate(nothing_recipes(N_NOTHING)):
        split = "test" if i % 10 == 0 else ("val" if i % 10 == 1 else "train")
        rows.append(
            Decision(
                f"gen:{name}",
                "generated",
                name.split("/")[0],
                "nothing",
                "keep",
                "generated by code",
                "nothing",
                None,
                10.0,
                f"gen:{name}",
                split,
            )
        )
    return rows


def _duration(s: Source, root: Path) -> float:
    if s.duration_s is not None:
        return float(s.duration_s)
    import soundfile as sf

    try:
        return float(sf.info(str(root / s.path)).duration)
    except (RuntimeError, sf.LibsndfileError):
        return 0.0


def _peak_dbfs(s: Source, root: Path) -> float | None:
    from earshot_train.audio_io import load_audio

    try:
        x = load_audio(root / s.path, 16000)
    except (OSError, RuntimeError, ValueError):
        return None
    return float(20 * np.log10(max(float(np.abs(x).max()) if len(x) else 0.0, 1e-12)))


def curate(tags: dict[str, dict[str, np.ndarray]] | None = None) -> list[Decision]:
    from earshot_train.corpus_v2.tags import load_tags
    from earshot_train.teacher.mn04 import mn04_labels

    labels = mn04_labels()
    classes = load_taxonomy(audioset_labels=labels)
    tags = load_tags() if tags is None else tags
    root = shared_dir()
    rows = []
    for s in list_sources():
        t = tags.get(s.path)
        d = decide(
            s, None if t is None else t["max"], classes, labels, _duration(s, root), _peak_dbfs(s, root)
        )
        rows.append(replace(d, recording=recording_id(s)))
    return assign_splits(rows + _nothing_rows())


FIELDS = [
    "file",
    "collection",
    "class",
    "recording",
    "split",
    "action",
    "reason",
    "label",
    "rule_class",
    "mn04_agrees",
    "duration_s",
    "mn04_top3",
]


def manifest_path() -> Path:
    return REPO_ROOT / "train" / "data" / "corpus-v2.tsv"


def write_manifest(rows: list[Decision], path: Path | None = None) -> Path:
    p = path or manifest_path()
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(FIELDS)
        for r in rows:
            agree = "" if r.agree is None else ("yes" if r.agree else "no")
            w.writerow(
                [
                    r.path,
                    r.collection,
                    r.cls,
                    r.recording,
                    r.split,
                    r.action,
                    r.reason,
                    r.label.replace("\t", " "),
                    r.rule_class,
                    agree,
                    f"{r.duration_s:.2f}",
                    r.top,
                ]
            )
    return p


def read_manifest(path: Path | None = None, split: str | None = None) -> list[dict[str, str]]:
    """Rows of the committed manifest (kept files only when ``split`` is given)."""
    with open(path or manifest_path(), newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return [r for r in rows if split is None or r["split"] == split]


def agreement(rows: list[Decision]) -> tuple[int, int]:
    """(files whose label class mn04 confirms, files with a label class and mn04 tags)."""
    judged = [r for r in rows if r.agree is not None]
    return sum(r.agree for r in judged), len(judged)


def write_report(rows: list[Decision], path: Path | None = None) -> Path:
    p = path or REPO_ROOT / "train" / "CORPUS.md"
    classes = load_taxonomy()
    kept = [r for r in rows if r.cls]
    dropped = [r for r in rows if not r.cls]
    a, n = agreement(rows)
    lines = [
        "# Corpus v2 (issue 14 item 1)",
        "",
        "Generated by `python -m earshot_train.corpus_v2.curate` from `../shared/data` and the cached mn04",
        "tags; the per-file labelling is `train/data/corpus-v2.tsv` ",
        "(file, class, recording, split, action, reason).",
        "Taxonomy: `train/configs/taxonomy.toml`. Audio is never copied into the repository.",
        "",
        f"- classes: {len(classes)} ({len({r.cls for r in kept})} with files)",
        f"- kept: {len(kept)} files, {sum(r.duration_s for r in kept) / 60:.1f} min "
        f"({sum(r.action == 'relabel' for r in kept)} relabelled); dropped: {len(dropped)} files, "
        f"{sum(r.duration_s for r in dropped) / 60:.1f} min",
        f"- mn04 agrees with the label class on {a} of {n} files ({100 * a / max(n, 1):.1f} %)",
        "",
        "## Why files were dropped",
        "",
        "| reason | files |",
        "|---|---:|",
    ]
    why = Counter(
        re.sub(r" \(.*|: mn04 top.*| for label class.*| with label class.*", "", r.reason) for r in dropped
    )
    lines += [f"| {k} | {v} |" for k, v in why.most_common()]
    lines += [
        "",
        "## Classes",
        "",
        "| class | group | files | minutes | recordings | train / val / test files |",
        "|---|---|---:|---:|---:|---|",
    ]
    for c in classes:
        rs = [r for r in kept if r.cls == c.id]
        sp = Counter(r.split for r in rs)
        lines.append(
            f"| {c.id} | {c.group} | {len(rs)} | {sum(r.duration_s for r in rs) / 60:.1f} | "
            f"{len({r.recording for r in rs})} | {sp['train']} / {sp['val']} / {sp['test']} |"
        )
    lines += [
        "",
        "## Collections and licences",
        "",
        "| collection | files | kept | kept minutes | licence |",
        "|---|---:|---:|---:|---|",
    ]
    for coll in collections() + ["generated"]:
        rs = [r for r in rows if r.collection == coll]
        k = [r for r in rs if r.cls]
        lic = (
            "generated by code (earshot_train.corpus_v2.render)"
            if coll == "generated"
            else licence_summary(coll)
        )
        lines.append(
            f"| {coll} | {len(rs)} | {len(k)} | {sum(r.duration_s for r in k) / 60:.1f} | "
            f"{lic.replace('|', '/')} |"
        )
    lines += [
        "",
        "Share-alike (CC-BY-SA) and GPL notices of these collections must travel with any model trained",
        "on them (model card).",
        "",
    ]
    text = "\n".join(lines)
    if p.is_file():  # the hand-written sections after the generated part (e.g. how clips are rendered)
        old = p.read_text(encoding="utf-8")
        at = old.find(HAND_WRITTEN)
        if at >= 0:
            text += "\n" + old[at:]
    p.write_text(text, encoding="utf-8")
    return p


#: ``write_report`` regenerates CORPUS.md up to the first line with this heading and keeps the rest
HAND_WRITTEN = "## Rendering"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description="curate corpus v2: write train/data/corpus-v2.tsv and train/CORPUS.md"
    )
    ap.add_argument("--out", type=Path, default=None, help="manifest path (default train/data/corpus-v2.tsv)")
    a = ap.parse_args(argv)
    rows = curate()
    m = write_manifest(rows, a.out)
    r = write_report(rows)
    kept = sum(1 for x in rows if x.cls)
    print(f"curate: {kept} kept, {len(rows) - kept} dropped -> {m}, {r}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
