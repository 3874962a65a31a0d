"""The ARPAbet phoneme set, CMUdict pronunciations, transcripts → phoneme targets, and Kaggle submissions.

The set is the 39 phonemes of CMUdict (stress removed) plus SIL, 40 symbols; with the CTC blank that is the
41-way output of the 11-785 HW3P2 task. Each phoneme also has one printable character of its own
(`PHONEME_CHARS`), so that a phoneme string is a character string and the Kaggle metric (character edit
distance) is the phoneme edit distance.

>>> words_to_phonemes("hello world", {"hello": [["HH", "AH", "L", "OW"]], "world": [["W", "ER", "L", "D"]]})
(['HH', 'AH', 'L', 'OW', 'W', 'ER', 'L', 'D'], [])
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from asrkit.errors import InputError
from asrkit.fsutil import atomic_write_text

SIL = "SIL"

# phoneme → its one character in submission.csv. Mnemonic, ASCII, no comma/quote/space (CSV-safe):
# consonants whose ARPAbet name is one letter keep it in lower case; digraph consonants take the upper
# case of their first letter (CH C, DH D, NG N, SH S, TH T, ZH Z; HH h, JH j); vowels take a lower-case
# letter for the lax/short one and the upper case for its tense/long partner where they pair up.
PHONEME_CHARS: dict[str, str] = {
    # vowels (15)
    "AA": "a",  # f-a-ther
    "AE": "q",  # c-a-t (no free 'a'-like letter left: q is otherwise unused)
    "AH": "x",  # b-u-t, schwa
    "AO": "o",  # c-au-ght
    "AW": "W",  # c-ow
    "AY": "Y",  # b-i-te
    "EH": "e",  # b-e-d
    "ER": "R",  # b-ir-d
    "EY": "E",  # b-ai-t
    "IH": "i",  # b-i-t
    "IY": "I",  # b-ea-t
    "OW": "O",  # b-oa-t
    "OY": "Q",  # b-oy
    "UH": "u",  # b-oo-k
    "UW": "U",  # b-oo-t
    # consonants (24)
    "B": "b",
    "CH": "C",
    "D": "d",
    "DH": "D",
    "F": "f",
    "G": "g",
    "HH": "h",
    "JH": "j",
    "K": "k",
    "L": "l",
    "M": "m",
    "N": "n",
    "NG": "N",
    "P": "p",
    "R": "r",
    "S": "s",
    "SH": "S",
    "T": "t",
    "TH": "T",
    "V": "v",
    "W": "w",
    "Y": "y",
    "Z": "z",
    "ZH": "Z",
    # silence (1)
    SIL: ".",
}
PHONEMES: tuple[str, ...] = tuple(sorted(PHONEME_CHARS))
CMUDICT_PHONEMES: tuple[str, ...] = tuple(p for p in PHONEMES if p != SIL)

# spellings of silence and of sequence markers in other corpora and course releases
SILENCE_ALIASES = {"SIL", "[SIL]", "<SIL>", "SIL0", "H#", "PAU", "SP", "+SIL+"}
MARKERS = {"<SOS>", "<EOS>", "[SOS]", "[EOS]", "<S>", "</S>"}

_STRESS = re.compile(r"^([A-Z]+)[012]$")


def strip_stress(phone: str) -> str:
    """`AH0` → `AH`: CMUdict marks vowel stress with a trailing 0, 1 or 2."""
    m = _STRESS.match(phone)
    return m.group(1) if m else phone


def normalize_phone(symbol: str) -> str | None:
    """One corpus symbol → a phoneme of `PHONEMES`, None for a sequence marker (<sos>/<eos>), else InputError."""
    s = strip_stress(symbol.strip().upper())
    if s in MARKERS:
        return None
    if s in SILENCE_ALIASES:
        return SIL
    if s not in PHONEME_CHARS:
        raise InputError(
            f"phoneme {symbol!r} is not one of the {len(PHONEMES)} ARPAbet phonemes ({' '.join(PHONEMES)})"
        )
    return s


def _lenient(symbol: str) -> str:
    """`normalize_phone`, keeping an unknown symbol (upper case, stress removed) instead of failing."""
    try:
        return normalize_phone(symbol) or symbol
    except InputError:
        return strip_stress(symbol.strip().upper())


def normalize_phones(symbols: Iterable[str]) -> list[str]:
    """A symbol sequence → phonemes, with <sos>/<eos> markers dropped and silence spellings made SIL."""
    return [p for p in (normalize_phone(s) for s in symbols) if p is not None]


def to_chars(phones: Sequence[str]) -> str:
    """Phonemes → the one-character-per-phoneme string of the Kaggle submission."""
    try:
        return "".join(PHONEME_CHARS[p] for p in phones)
    except KeyError as e:
        raise InputError(
            f"phoneme {e.args[0]!r} has no submission character; the set is {' '.join(PHONEMES)}"
        ) from None


def write_submission(hyps: Iterable[str | Sequence[str]], path: str | Path) -> Path:
    """Write `index,label` rows (index 0, 1, ... in the given order; label = one character per phoneme)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["index", "label"])
    for i, h in enumerate(hyps):
        w.writerow([i, to_chars(h.split() if isinstance(h, str) else h)])
    atomic_write_text(path, buf.getvalue())
    return Path(path)


# ------------------------------------------------------------------ CMUdict


# word → its pronunciations (lists of phonemes), the main one first: what a CMUdict file holds
PronouncingDictionary = dict[str, list[list[str]]]


def read_cmudict(path: str | Path, strict: bool = True) -> PronouncingDictionary:
    """A CMUdict-format file (`word PH0 PH1 ...`, alternates as `word(2)`, `#` comments) → word → pronunciations.

    Words are lower-cased; stress is removed; pronunciations keep the file's order (the first is the main one).
    `strict=False` keeps symbols outside the phoneme set (upper-cased) for the caller to report.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise InputError(f"pronunciation dictionary {p}: cannot read it ({e.strerror or e})") from None
    lex: PronouncingDictionary = {}
    for n, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith(";;;"):
            continue
        parts = line.split()
        if len(parts) < 2:
            raise InputError(f"{p}:{n}: expected a word followed by its phonemes, got {line!r}")
        word = re.sub(r"\(\d+\)$", "", parts[0]).lower()
        try:
            pron = normalize_phones(parts[1:]) if strict else [_lenient(s) for s in parts[1:]]
        except InputError as e:
            raise InputError(f"{p}:{n}: {e}") from None
        lex.setdefault(word, []).append(pron)
    if not lex:
        raise InputError(f"pronunciation dictionary {p} holds no entries")
    return lex


def lexicon_path(configured: str | None = None) -> Path:
    """The CMUdict file: `data.phonemes.lexicon`, else $ASRKIT_DATA/cmudict/cmudict.dict; InputError saying where to put it."""
    if configured:
        p = Path(os.path.expandvars(os.path.expanduser(configured)))
        if not p.is_file():
            raise InputError(f"data.phonemes.lexicon: {p} not found")
        return p
    env = os.environ.get("ASRKIT_DATA")
    if env and (Path(env) / "cmudict" / "cmudict.dict").is_file():
        return Path(env) / "cmudict" / "cmudict.dict"
    where = (
        f"$ASRKIT_DATA/cmudict/cmudict.dict ({env}/cmudict/cmudict.dict)"
        if env
        else "$ASRKIT_DATA/cmudict/cmudict.dict"
    )
    raise InputError(
        f"phoneme targets need the CMU Pronouncing Dictionary: set data.phonemes.lexicon to a cmudict.dict, or put it at "
        f"{where} (python -c 'from asrkit.data.download import download_cmudict; download_cmudict(\"DIR\")' fetches it)"
    )


def words_to_phonemes(text: str, lexicon: PronouncingDictionary) -> tuple[list[str], list[str]]:
    """A transcript → (phonemes of each word's first pronunciation, the words missing from the lexicon)."""
    phones: list[str] = []
    oov: list[str] = []
    for word in text.lower().split():
        prons = lexicon.get(word) or lexicon.get(word.strip('.,;:!?"()[]'))
        if not prons:
            oov.append(word)
        else:
            phones += prons[0]
    return phones, oov


def oov_report(oov: Counter, limit: int = 20) -> str:
    """One line: how many distinct out-of-vocabulary words, how often, the most frequent first."""
    if not oov:
        return "no out-of-vocabulary words"
    top = ", ".join(f"{w} ({n})" for w, n in oov.most_common(limit))
    more = f", ... {len(oov) - limit} more" if len(oov) > limit else ""
    return f"{len(oov)} out-of-vocabulary word(s), {sum(oov.values())} occurrence(s): {top}{more}"


def derive_phonemes(utts: list, lexicon: PronouncingDictionary) -> tuple[list, Counter]:
    """Give each utterance with text and no `phonemes` its dictionary phonemes; utterances with OOV words are dropped.

    Returns (the utterances kept, the OOV word counts of the dropped ones).
    """
    kept, oov = [], Counter()
    for u in utts:
        if u.phonemes or not u.text:
            kept.append(u)
            continue
        phones, missing = words_to_phonemes(u.text, lexicon)
        if missing:
            oov.update(missing)
        else:
            u.phonemes = phones
            kept.append(u)
    return kept, oov
