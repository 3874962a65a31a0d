"""Tokenizers: characters and phonemes (CTC, blank at 0), class labels (one per utterance), frame labels (one per frame)."""

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


def _lookup(index: dict[str, int], symbols: Iterable[str], unit: str, inventory: str, utt_id: str | None) -> list[int]:
    """Ids of `symbols`; an unknown one is an error naming it, its utterance and the inventory it is missing from."""
    try:
        return [index[s] for s in symbols]
    except KeyError as e:
        where = f" in utterance {utt_id!r}" if utt_id else ""
        raise InputError(f"{unit} {e.args[0]!r}{where} is not in the {inventory}") from None


def _save_symbols(symbols: Sequence[str], path: str | Path) -> None:
    # one symbol per line; the space is written as <space> so the file survives editors
    lines = ["<space>" if s == " " else s for s in symbols]
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


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

    def target(self, utt) -> list[int]:
        """The token ids an utterance trains towards: its transcript's characters."""
        return self.encode(utt.text or "", utt.id)

    def encode(self, text: str, utt_id: str | None = None) -> list[int]:
        return _lookup(self.index, text, "character", "vocabulary", utt_id)

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.symbols[i] for i in ids if i != self.blank)

    def label(self, i: int) -> str:
        """Printable label of one token (space shown as '␣', blank as '∅')."""
        s = self.symbols[i]
        return "∅" if i == self.blank else ("␣" if s == " " else s)

    def save(self, path: str | Path) -> None:
        _save_symbols(self.symbols, path)

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


class PhonemeTokenizer(CharTokenizer):
    """Phoneme symbols (e.g. ARPAbet) with the CTC blank at 0; an utterance trains towards its `phonemes` list."""

    kind = "phoneme"

    def target(self, utt) -> list[int]:
        if not utt.phonemes:
            raise InputError(f"utterance {utt.id!r} has no phonemes")
        return self.encode(utt.phonemes, utt.id)

    def encode(self, phones, utt_id: str | None = None) -> list[int]:  # type: ignore[override]
        if isinstance(phones, str):
            phones = phones.split()
        return _lookup(self.index, phones, "phoneme", "phoneme set", utt_id)

    def decode(self, ids: Iterable[int]) -> str:
        return " ".join(self.symbols[i] for i in ids if i != self.blank)

    def label(self, i: int) -> str:
        return "∅" if i == self.blank else self.symbols[i]

    @classmethod
    def build_phones(cls, utts: Iterable) -> PhonemeTokenizer:
        """The sorted phoneme set of the given utterances."""
        return cls(sorted({p for u in utts for p in (u.phonemes or [])}))


class FrameTokenizer:
    """One label per frame, written as one character per frame in the utterance's `text` (no blank)."""

    kind = "frames"
    blank = None

    def __init__(self, symbols: Sequence[str]):
        symbols = list(symbols)
        if len(set(symbols)) != len(symbols) or any(len(s) != 1 for s in symbols):
            raise InputError("frame labels must be distinct single characters")
        self.symbols: list[str] = symbols
        self.index = {s: i for i, s in enumerate(symbols)}

    def __len__(self) -> int:
        return len(self.symbols)

    @classmethod
    def build(cls, utts: Iterable) -> FrameTokenizer:
        return cls(sorted({c for u in utts for c in (u.text or "")}))

    def target(self, utt) -> list[int]:
        return _lookup(self.index, utt.text or "", "frame label", "label set", utt.id)

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.symbols[i] for i in ids)

    def save(self, path: str | Path) -> None:
        _save_symbols(self.symbols, path)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "symbols": self.symbols}


class LabelSet:
    """Class labels for one-label-per-utterance tasks (keywords, commands); no blank."""

    kind = "labels"
    blank = None

    def __init__(self, labels: Sequence[str]):
        labels = list(labels)
        if len(set(labels)) != len(labels):
            raise InputError("label set has duplicate labels")
        if len(labels) < 2:
            raise InputError(f"a classifier needs at least two classes, got {labels}")
        self.symbols: list[str] = labels
        self.index = {s: i for i, s in enumerate(labels)}

    def __len__(self) -> int:
        return len(self.symbols)

    @staticmethod
    def label_of(utt) -> str | None:
        """An utterance's class: its `label`, else its whole transcript (e.g. isolated words)."""
        return utt.label if utt.label is not None else utt.text

    @classmethod
    def build(cls, utts: Iterable) -> LabelSet:
        """The sorted labels of the given utterances."""
        return cls(sorted({lab for u in utts if (lab := cls.label_of(u)) is not None}))

    def target(self, utt) -> list[int]:
        lab = self.label_of(utt)
        if lab not in self.index:
            raise InputError(f"utterance {utt.id!r} has label {lab!r}, which is not one of the {len(self)} training classes")
        return [self.index[lab]]

    def decode(self, ids: Iterable[int]) -> str:
        return " ".join(self.symbols[i] for i in ids)

    def save(self, path: str | Path) -> None:
        _save_symbols(self.symbols, path)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "symbols": self.symbols}


def tokenizer_from_dict(d: dict) -> CharTokenizer | PhonemeTokenizer | LabelSet | FrameTokenizer:
    """The tokenizer a checkpoint stored, by its kind."""
    kinds = {c.kind: c for c in (LabelSet, FrameTokenizer, PhonemeTokenizer)}
    return kinds.get(d.get("kind"), CharTokenizer)(d["symbols"])
