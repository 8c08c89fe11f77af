"""Caption grammar for corpus v2: one or two events, phrased the ways real captions phrase them.

Shapes (AudioCaps/Clotho-like, lower-case, no final period):

- one event: ``"a dog barks"``, ``"a dog barks in the distance"``, ``"the sound of a dog barking"``,
  ``"a dog barking can be heard"``; repeated: ``"a dog barks repeatedly"`` (the class's own clause);
- two at once: ``"X while Y"``, ``"X as Y"``, ``"X and Y"``; over a continuous bed: ``"X over rain
  falling"``, ``"X with rain falling in the background"``;
- two in sequence: ``"X followed by Y-ing"``, ``"X, then Y"``, ``"X and then Y"``.

Invariant: a caption never names the same source twice unless it says the event repeats. Two events
must be different classes that share no source word, and every caption is checked against all source
words of the taxonomy (:func:`repeated_source_words`); a draw that breaks this is redrawn.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from earshot_train.corpus_v2.taxonomy import SourceClass, noun_pattern, repeated_nouns

__all__ = ["Grammar", "Caption", "SIMULTANEOUS", "SEQUENTIAL", "REPEAT_WORDS"]

SIMULTANEOUS = ("while", "as", "and", "over", "background")
SEQUENTIAL = ("followed_by", "then", "and_then")
#: words with which a caption says its event repeats (only then may a source word occur twice)
REPEAT_WORDS = ("repeatedly", "again", "several times", "one after another")
_PLACE = ("nearby", "in the distance", "close by", "in a quiet room", "outdoors")


@dataclass(frozen=True)
class Caption:
    text: str
    classes: tuple[str, ...]
    relation: str  #: single | repeated | one of SIMULTANEOUS / SEQUENTIAL


class Grammar:
    def __init__(self, classes: Sequence[SourceClass]):
        self.classes = {c.id: c for c in classes}
        self.all_nouns = noun_pattern(sorted({n for c in classes for n in c.nouns}))
        self._pats = {c.id: noun_pattern(c.nouns) for c in classes}

    def repeated_source_words(self, text: str) -> list[str]:
        """Source words that occur twice in ``text``."""
        return repeated_nouns(text, self.all_nouns)

    def can_pair(self, a: str, b: str) -> bool:
        """Two classes may share a caption: different, not "nothing", no source word in common."""
        if a == b or "nothing" in (a, b):
            return False
        ca, cb = self.classes[a], self.classes[b]
        return (
            not (set(ca.nouns) & set(cb.nouns))
            and not any(self._pats[a].search(w) for w in cb.nouns)
            and not any(self._pats[b].search(w) for w in ca.nouns)
        )

    def one(
        self, cid: str, rng: random.Random, repeated: bool = False, nominal_forms: bool = True
    ) -> Caption:
        """One event. ``nominal_forms=False`` keeps to clause forms ("a dog barks [nearby]"), so a
        one-event caption starts the way a two-event caption does (see ``corpus_v2.build``)."""
        c = self.classes[cid]
        if repeated:
            if not c.repeated:
                raise ValueError(f"grammar: class {cid} has no 'repeated' clause (a continuous sound)")
            return Caption(c.repeated, (cid,), "repeated")
        form = rng.randrange(4 if nominal_forms else 2)
        nominal = rng.choice(c.nominals)
        if form == 0 or cid == "nothing":
            text = rng.choice(c.clauses)
        elif form == 1:
            text = f"{rng.choice(c.clauses)} {rng.choice(_PLACE)}"
        elif form == 2 and not nominal.startswith("the "):
            text = f"the sound of {nominal}"
        else:
            text = f"{nominal} can be heard"
        return Caption(text, (cid,), "single")

    def two(self, a: str, b: str, rng: random.Random, relation: str | None = None) -> Caption:
        if not self.can_pair(a, b):
            raise ValueError(f"grammar: classes {a} and {b} cannot share a caption (same source words)")
        ca, cb = self.classes[a], self.classes[b]
        rels = [r for r in SIMULTANEOUS + SEQUENTIAL if r not in ("over", "background") or cb.bed]
        rel = relation or rng.choice(rels)
        x, y, y_nom = rng.choice(ca.clauses), rng.choice(cb.clauses), rng.choice(cb.nominals)
        forms = {
            "while": f"{x} while {y}",
            "as": f"{x} as {y}",
            "and": f"{x} and {y}",
            "over": f"{x} over {y_nom}",
            "background": f"{x} with {y_nom} in the background",
            "followed_by": f"{x} followed by {y_nom}",
            "then": f"{x}, then {y}",
            "and_then": f"{x} and then {y}",
        }
        if rel not in forms:
            raise ValueError(f"grammar: unknown relation {rel!r}")
        return Caption(forms[rel], (a, b), rel)

    def sample(
        self,
        rng: random.Random,
        pool: Sequence[str] | None = None,
        p_two: float = 0.5,
        p_repeat: float = 0.15,
        tries: int = 50,
    ) -> Caption:
        """A random caption over ``pool`` (default all classes), never naming a source twice."""
        ids = list(pool or self.classes)
        for _ in range(tries):
            a = rng.choice(ids)
            if rng.random() < p_two and a != "nothing":
                partners = [b for b in ids if self.can_pair(a, b)]
                if not partners:
                    continue
                cap = self.two(a, rng.choice(partners), rng)
            else:
                rep = rng.random() < p_repeat and self.classes[a].repeated is not None
                cap = self.one(a, rng, repeated=rep)
            if cap.relation == "repeated" or not self.repeated_source_words(cap.text):
                return cap
        raise RuntimeError("grammar: could not draw a caption without a repeated source word")
