"""Word-level tokenizer with fixed special ids: <pad>=0 <start>=1 <end>=2 <unk>=3.

The vocabulary is saved as ``vocab.txt`` (line i = token id i), which is also the bundle's id->word table.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

PAD, START, END, UNK = 0, 1, 2, 3
SPECIALS = ["<pad>", "<start>", "<end>", "<unk>"]

_WORD_RE = re.compile(r"[a-z0-9']+")


def normalize(text: str) -> list[str]:
    """Lower-case and split a caption into words (punctuation dropped)."""
    return _WORD_RE.findall(text.lower())


class Tokenizer:
    def __init__(self, words: list[str]):
        if words[: len(SPECIALS)] != SPECIALS:
            raise ValueError(f"vocabulary must start with {SPECIALS}, got {words[:4]}")
        if len(set(words)) != len(words):
            raise ValueError("vocabulary has duplicate words")
        self.words = list(words)
        self.index = {w: i for i, w in enumerate(self.words)}

    def __len__(self) -> int:
        return len(self.words)

    @classmethod
    def build(cls, captions: Iterable[str], min_count: int = 1) -> Tokenizer:
        """Vocabulary of every word seen at least ``min_count`` times, ordered by count then alphabet."""
        if min_count < 1:
            raise ValueError("min_count must be >= 1")
        counts = Counter(w for c in captions for w in normalize(c))
        kept = sorted((w for w, n in counts.items() if n >= min_count), key=lambda w: (-counts[w], w))
        return cls(SPECIALS + kept)

    def encode(self, caption: str, max_len: int | None = None, add_special: bool = True) -> list[int]:
        """``<start> w1 .. wn <end>``; with ``max_len`` the words are cut to max_len - 1 so that the
        generated part (words + <end>) never exceeds max_len tokens."""
        ids = [self.index.get(w, UNK) for w in normalize(caption)]
        if max_len is not None:
            ids = ids[: max(0, max_len - 1)]
        return [START, *ids, END] if add_special else ids

    def decode(self, ids: Iterable[int]) -> str:
        """Words of ``ids`` without <start>/<end>/<pad>, stopping at the first <end>."""
        out = []
        for i in ids:
            i = int(i)
            if i == END:
                break
            if i in (PAD, START):
                continue
            if not 0 <= i < len(self.words):
                raise ValueError(f"token id {i} outside vocabulary of {len(self.words)}")
            out.append(self.words[i])
        return " ".join(out)

    def save(self, path: str | Path) -> None:
        Path(path).write_text("".join(w + "\n" for w in self.words), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> Tokenizer:
        text = Path(path).read_text(encoding="utf-8")
        return cls(text.splitlines())
