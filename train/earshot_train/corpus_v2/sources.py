"""Every candidate file of corpus v2, read from the shared data folder (never copied into the repo).

A :class:`Source` is one audio file with its free-form label, category and origin as the collection
describes it. Collections: the 37 folders of ``data/sounds`` (from each ``labels.tsv``), ESC-10
folds 1–4 (class = folder name), 0 A.D. (label = path and file name) and ``speech-en`` (one voice).
Paths are relative to the shared folder so the manifest does not depend on where it is mounted.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

from earshot_train.shared import require_shared

__all__ = ["Source", "list_sources", "collections", "licence_summary"]


@dataclass(frozen=True)
class Source:
    path: str  #: relative to the shared folder, e.g. "data/sounds/gcompris-sfx/audio/00000_slide.opus"
    collection: str  #: "gcompris-sfx", "esc10", "0ad", "speech-en"
    label: str  #: free-form label as given (lower-cased)
    category: str
    origin: str
    duration_s: float | None  #: from labels.tsv where given (None: read the file header)


def _sounds(root: Path) -> list[Source]:
    out: list[Source] = []
    for tsv in sorted((root / "data" / "sounds").glob("*/labels.tsv")):
        coll = tsv.parent.name
        with open(tsv, newline="", encoding="utf-8") as f:
            for r in csv.DictReader(f, delimiter="\t"):
                dur = r.get("duration_s") or ""
                out.append(
                    Source(
                        path=f"data/sounds/{coll}/{r['file']}",
                        collection=coll,
                        label=(r.get("label") or "").strip().lower(),
                        category=(r.get("category") or "").strip().lower(),
                        origin=(r.get("origin") or "").strip(),
                        duration_s=float(dur) if dur else None,
                    )
                )
    return out


def _esc10(root: Path) -> list[Source]:
    out = []
    for p in sorted((root / "data" / "esc10").glob("*/*.ogg")):
        label = re.sub(r"^\d+ - ", "", p.parent.name).lower()
        out.append(Source(str(p.relative_to(root)), "esc10", label, "esc10", p.name, 5.0))
    return out


def _0ad(root: Path) -> list[Source]:
    out = []
    base = root / "data" / "0ad"
    for p in sorted(base.rglob("*.ogg")):
        rel = p.relative_to(base)
        label = " ".join(rel.parts[:-1]).lower() + " " + p.stem.lower().replace("_", " ")
        out.append(Source(str(p.relative_to(root)), "0ad", label.strip(), rel.parts[0], str(rel), None))
    return out


def _speech_en(root: Path) -> list[Source]:
    base = root / "data" / "speech-en"
    return [
        Source(str(p.relative_to(root)), "speech-en", "speech; english woman", "speech", p.name, None)
        for p in sorted(base.rglob("*"))
        if p.suffix in (".ogg", ".wav", ".opus")
    ]


def list_sources(root: Path | None = None) -> list[Source]:
    """All candidate files, in a fixed order (collections sorted, files as listed)."""
    root = root or require_shared("data")
    if root.name == "data":
        root = root.parent
    return _sounds(root) + _esc10(root) + _0ad(root) + _speech_en(root)


def collections(root: Path | None = None) -> list[str]:
    root = root or require_shared("data").parent
    names = sorted(p.parent.name for p in (root / "data" / "sounds").glob("*/labels.tsv"))
    return names + ["esc10", "0ad", "speech-en"]


_LICENCE = re.compile(r"^Licen[cs]e summary:\s*(.*)$", re.M)


def licence_summary(collection: str, root: Path | None = None) -> str:
    """The licence line of a collection (``LICENSE.txt`` of data/sounds, fixed text for the older three)."""
    root = root or require_shared("data").parent
    fixed = {
        "esc10": "per clip CC0 or CC-BY 3.0 (data/esc10/README.md lists each clip's author)",
        "0ad": "CC-BY-SA 3.0, Wildfire Games (COPYRIGHT.debian)",
        "speech-en": "CC-BY-SA 3.0, Allison Smith / Digium (COPYRIGHT.debian)",
    }
    if collection in fixed:
        return fixed[collection]
    text = (root / "data" / "sounds" / collection / "LICENSE.txt").read_text(
        encoding="utf-8", errors="replace"
    )
    m = _LICENCE.search(text)
    return m.group(1).strip() if m else text.strip().splitlines()[0]
