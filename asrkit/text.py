"""Tokenizers: characters and phonemes (CTC, blank at 0), class labels (one per utterance), frame labels (one per frame)."""

from __future__ import annotations

import sys
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from asrkit.errors import InputError

BLANK = "<blank>"


# typographic and look-alike apostrophes (’ ‘ ʼ ʹ ` ´ ′ ＇) become ', before NFKC can split ´ into a space and a mark;
# invisible format characters (soft hyphen, zero-width (non-)joiner, word joiner, BOM) are removed; İ lower-cases to i
_PRE = {
    **dict.fromkeys(map(ord, "\u2019\u2018\u02bc\u02b9`\u00b4\u2032\uff07"), "'"),
    **dict.fromkeys(map(ord, "\u00ad\u200c\u200d\u2060\ufeff")),
    ord("\u0130"): "i",
}


def normalize_text(text: str) -> str:
    """NFKC, lower case, keep letters, digits, combining marks and apostrophes (’ ‘ ʼ ` → '), the rest → space, collapse whitespace.

    Composed and decomposed accents give the same text (é), full-width forms their ASCII ones (１→1, Ａ→a), and
    the vowel signs and viramas of scripts such as Devanagari stay inside their word.
    """
    text = unicodedata.normalize("NFC", unicodedata.normalize("NFKC", text.translate(_PRE)).lower())
    out: list[str] = []
    for c in text:
        cat = unicodedata.category(c)[0]
        # a combining mark is kept only on a letter or digit (a stray one left by punctuation is dropped)
        keep = c == "'" or cat in "LN" or (cat == "M" and bool(out) and out[-1] != " ")
        out.append(c if keep else " ")
    return " ".join("".join(out).split())


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

    @property
    def space(self) -> int | None:
        """The id of the word separator " ", None when the vocabulary has none."""
        return self.index.get(" ")

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
    space = None  # phonemes are not split into words

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
    space = None

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
    space = None

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
            raise InputError(
                f"utterance {utt.id!r} has label {lab!r}, which is not one of the {len(self)} training classes"
            )
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


OOV_POLICIES = ("error", "drop", "map")
TOKENIZED_SPLITS = ("train", "dev")  # the manifests training encodes; test sets are references, scored as they are
_TRANSLIT = {"ß": "ss", "æ": "ae", "œ": "oe", "ø": "o", "đ": "d", "ł": "l", "þ": "th", "ð": "d", "ı": "i"}


def transliterate(c: str, vocab: set[str]) -> str | None:
    """A character outside `vocab` as vocabulary characters: accents stripped (é→e), a few letters spelled out (ß→ss); None if impossible."""
    cand = _TRANSLIT.get(c) or "".join(x for x in unicodedata.normalize("NFKD", c) if not unicodedata.combining(x))
    return cand if cand and cand != c and all(x in vocab for x in cand) else None


def _counts(counter) -> str:
    return ", ".join(f"{k!r} ×{n}" for k, n in counter.most_common(5)) + (", ..." if len(counter) > 5 else "")


def filter_transcripts(
    manifests: dict[str, list], alphabet: str | None, policy: str = "error", log=None
) -> dict[str, list]:
    """Check the normalised transcripts of the train and dev manifests against the character vocabulary.

    The vocabulary is `alphabet` plus space, else every character of the train texts. `policy` says what a
    character outside it does: `error` stops with one naming the utterance and the character; `drop` drops the
    utterance; `map` rewrites it with vocabulary characters (`transliterate`: é→e, ß→ss) and drops the utterance
    only when one cannot be mapped (a transcript that no longer says what the audio says is never kept). Without
    an alphabet, `error` leaves dev to training, which stops at its first such character with the same naming.
    Train and dev utterances whose transcript is empty are dropped. Every drop and mapping is counted on `log`
    (stderr); test manifests are left as they are. Returns the manifests, filtered.
    """
    if policy not in OOV_POLICIES:
        raise InputError(f"data.oov must be one of {', '.join(OOV_POLICIES)}, got {policy!r}")
    log = log or sys.stderr
    source = "data.alphabet" if alphabet else "the characters of the train texts"
    vocab = set(alphabet) | {" "} if alphabet else {c for u in manifests.get("train", []) for c in (u.text or "")}
    out = dict(manifests)
    for name in TOKENIZED_SPLITS:
        if name not in manifests:
            continue
        kept, unknown, mapped, unmappable, empty = [], Counter(), Counter(), Counter(), 0
        for u in manifests[name]:
            bad = [c for c in (u.text or "") if c not in vocab] if alphabet or policy != "error" else []
            if bad and policy == "error":
                raise InputError(
                    f"{name} utterance {u.id!r}: character {bad[0]!r} is not in the vocabulary ({source}); "
                    "fix the transcript, or set data.oov to drop or map"
                )
            if bad:
                unknown.update(bad)
                if policy == "map":
                    subs = {c: transliterate(c, vocab) for c in set(bad)}
                    if all(subs.values()):
                        mapped.update(f"{c}→{subs[c]}" for c in bad)
                        u.text = " ".join("".join(subs.get(c, c) for c in u.text).split())
                        bad = []
                    else:
                        unmappable.update(c for c in bad if subs[c] is None)
                if bad:
                    continue
            if not (u.text or "").strip():
                empty += 1
                continue
            kept.append(u)
        total = len(manifests[name])
        if mapped:
            print(
                f"prepare: {name}: mapped {sum(mapped.values())} characters outside the vocabulary ({_counts(mapped)})",
                file=log,
            )
        dropped = total - len(kept) - empty
        if dropped:
            why = "with characters outside the vocabulary" + (" and no mapping" if policy == "map" else "")
            chars = unmappable if policy == "map" else unknown
            print(
                f"prepare: {name}: dropped {dropped} of {total} utterances {why} ({_counts(chars)}; data.oov: {policy})",
                file=log,
            )
        if empty:
            print(f"prepare: {name}: dropped {empty} of {total} utterances with an empty transcript", file=log)
        out[name] = kept
    return out
