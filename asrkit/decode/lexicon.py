"""Lexicons for the constrained beam search: the words of a word list or a manifest, spelt in a model's tokens."""

from __future__ import annotations

from pathlib import Path

from asrkit.data.manifest import iter_manifest
from asrkit.decode.ctc import Lexicon, lexicon_from_words
from asrkit.errors import InputError
from asrkit.text import normalize_text


def read_lexicon_words(path: str | Path) -> list[str]:
    """Words of a lexicon file: a word list (words one per line or whitespace-separated) or a
    JSONL manifest (the words of each utterance's `text`; told apart by a `.jsonl` suffix or a
    first non-blank line starting with `{`)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"lexicon file {p} not found")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(f"lexicon file {p} is not UTF-8 text") from None
    if p.suffix.lower() == ".jsonl" or text.lstrip().startswith("{"):
        return [w for u in iter_manifest(p, resolve=False) for w in (u.text or "").split()]
    return text.split()


def load_lexicon(path: str | Path, tokenizer) -> Lexicon:
    """Read a word list or manifest (see `read_lexicon_words`) into a Lexicon for `tokenizer`."""
    return build_lexicon(read_lexicon_words(path), path, tokenizer)


def build_lexicon(words: list[str], path: str | Path, tokenizer) -> Lexicon:
    """`lexicon_from_words`, with errors that name the file the words came from. For a character model the words are
    read as `prepare` reads transcripts (`normalize_text`: "Hello," is the word hello)."""
    if getattr(tokenizer, "kind", "") == "char":
        words = normalize_text(" ".join(words)).split()
    if not words:
        raise InputError(f"lexicon file {path} holds no words")
    try:
        return lexicon_from_words(words, tokenizer)
    except InputError as e:
        raise InputError(f"lexicon file {path}: {e}") from None
