"""Tokenizers: characters now; phonemes, words and class labels join later."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path

from asrkit.errors import InputError

BLANK = "<blank>"


def normalize_text(text: str) -> str:
    """NFKC, lower case, keep letters/digits/apostrophes, collapse whitespace."""
    text = unicodedata.normalize("NFKC", text).lower().replace("\u2019", "'")  # typographic apostrophe → '
    text = re.sub(r"[^\w' ]+|_+", " ", text)  # \w includes '_', which is punctuation here
    return " ".join(text.split())


class CharTokenizer:
    """Characters with the CTC blank at index 0; the space is a token (word boundary)."""

    kind = "char"

    def __init__(self, symbols: Sequence[str]):
        symbols = list(symbols)
        if BLANK in symbols:
            symbols.remove(BLANK)
        if len(set(symbols)) != len(symbols):
            raise InputError("vocabulary has duplicate symbols")
        self.symbols: list[str] = [BLANK, *symbols]
        self.index = {s: i for i, s in enumerate(self.symbols)}
        self.blank = 0

    def __len__(self) -> int:
        return len(self.symbols)

    @classmethod
    def build(cls, texts: Iterable[str]) -> CharTokenizer:
        """Vocabulary from the characters of the given (normalised) texts, sorted."""
        chars: set[str] = set()
        for t in texts:
            chars.update(t)
        return cls(sorted(chars))

    def encode(self, text: str, utt_id: str | None = None) -> list[int]:
        try:
            return [self.index[c] for c in text]
        except KeyError as e:
            where = f" in utterance {utt_id!r}" if utt_id else ""
            raise InputError(f"character {e.args[0]!r}{where} is not in the vocabulary") from None

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.symbols[i] for i in ids if i != self.blank)

    def label(self, i: int) -> str:
        """Printable label of one token (space shown as '␣', blank as '∅')."""
        s = self.symbols[i]
        return "∅" if i == self.blank else ("␣" if s == " " else s)

    def save(self, path: str | Path) -> None:
        # one symbol per line; the space is written as <space> so the file survives editors
        lines = ["<space>" if s == " " else s for s in self.symbols]
        Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> CharTokenizer:
        p = Path(path)
        if not p.is_file():
            raise InputError(f"vocabulary file {p} not found")
        syms = [" " if s == "<space>" else s for s in p.read_text(encoding="utf-8").splitlines() if s]
        return cls(syms)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "symbols": self.symbols}

    @classmethod
    def from_dict(cls, d: dict) -> CharTokenizer:
        return cls(d["symbols"])
