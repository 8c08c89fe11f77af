"""The corpus-v2 sound-source taxonomy (``train/configs/taxonomy.toml``), loaded and validated.

A :class:`SourceClass` carries what captions need (nouns, clauses, nominals, a "repeated" clause,
whether it is a continuous bed) and what curation needs (label regexes, the mn04 AudioSet tag names
that confirm a label). :func:`load_taxonomy` rejects a file with duplicate ids, empty phrase lists,
unknown AudioSet names (when a label list is given) or a phrase that does not name its own source.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from earshot_train.shared import REPO_ROOT

__all__ = ["SourceClass", "load_taxonomy", "default_taxonomy_path", "noun_pattern", "repeated_nouns"]


def default_taxonomy_path() -> Path:
    return REPO_ROOT / "train" / "configs" / "taxonomy.toml"


@dataclass(frozen=True)
class SourceClass:
    id: str
    group: str
    nouns: tuple[str, ...]
    clauses: tuple[str, ...]
    nominals: tuple[str, ...]
    repeated: str | None
    bed: bool
    match: tuple[re.Pattern[str], ...]
    audioset: tuple[str, ...]
    #: narrower classes a caption may name instead (``measure_v2``'s broad source accuracy only)
    includes: tuple[str, ...] = ()


def noun_pattern(nouns: tuple[str, ...] | list[str]) -> re.Pattern[str]:
    """Whole-word pattern for any of ``nouns`` (plural -s/-es included)."""
    alts = sorted({re.escape(n.lower()) for n in nouns}, key=len, reverse=True)
    return re.compile(r"\b(?:" + "|".join(alts) + r")(?:s|es)?\b")


def repeated_nouns(text: str, pattern: re.Pattern[str]) -> list[str]:
    """Source words that occur more than once in ``text`` (singular and plural count as one word)."""
    seen: dict[str, int] = {}
    for m in pattern.finditer(text.lower()):
        w = re.sub(r"(?:es|s)$", "", m.group(0))
        seen[w] = seen.get(w, 0) + 1
    return sorted(w for w, n in seen.items() if n > 1)


def load_taxonomy(
    path: str | Path | None = None, audioset_labels: list[str] | None = None
) -> list[SourceClass]:
    """Classes in file order. Raises ``ValueError`` naming the class and key for any bad entry."""
    p = Path(path) if path is not None else default_taxonomy_path()
    with open(p, "rb") as f:
        doc = tomllib.load(f)
    known = set(audioset_labels) if audioset_labels is not None else None
    out: list[SourceClass] = []
    seen: set[str] = set()
    for i, c in enumerate(doc.get("class", [])):
        cid = c.get("id") or f"#{i}"

        def bad(key: str, why: str, cid: str = cid) -> ValueError:
            return ValueError(f"{p}: class {cid}: {key}: {why}")

        if cid in seen:
            raise bad("id", "duplicate id")
        seen.add(cid)
        for key in ("group", "nouns", "clauses", "nominals", "match", "audioset"):
            if not c.get(key):
                raise bad(key, "missing or empty")
        try:
            match = tuple(re.compile(m) for m in c["match"])
        except re.error as e:
            raise bad("match", f"bad regex: {e}") from e
        if known is not None:
            unknown = [t for t in c["audioset"] if t not in known]
            if unknown:
                raise bad("audioset", f"not AudioSet label names: {unknown}")
        nouns = tuple(n.lower() for n in c["nouns"])
        pat = noun_pattern(nouns)
        rep = c.get("repeated")
        phrases = list(c["clauses"]) + list(c["nominals"]) + ([rep] if rep else [])
        for ph in phrases:
            if ph != ph.lower() or ph.strip() != ph:
                raise bad("phrases", f"{ph!r} must be lower-case without outer spaces")
            if repeated_nouns(ph, pat):
                raise bad("phrases", f"{ph!r} names its source twice")
        out.append(
            SourceClass(
                id=cid,
                group=c["group"],
                nouns=nouns,
                clauses=tuple(c["clauses"]),
                nominals=tuple(c["nominals"]),
                repeated=rep,
                bed=bool(c.get("bed", False)),
                match=match,
                audioset=tuple(c["audioset"]),
                includes=tuple(c.get("includes", ())),
            )
        )
    ids = {c.id for c in out}
    for c in out:
        unknown = [i for i in c.includes if i not in ids or i == c.id]
        if unknown:
            raise ValueError(f"{p}: class {c.id}: includes: not other class ids: {unknown}")
    return out
