"""A prepared data dir read back: a split's utterances and features, and the vocabulary a model trains towards."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from asrkit.config import Recipe, resolve_targets
from asrkit.data.featcache import load_features
from asrkit.data.featstore import FeatureStore
from asrkit.data.manifest import Utterance, read_manifest
from asrkit.errors import InputError
from asrkit.phonemes import PHONEMES
from asrkit.text import CharTokenizer, FrameTokenizer, LabelSet, PhonemeTokenizer


def build_tokenizer(targets: str, train: list[Utterance], alphabet: str | None = None):
    """The vocabulary a model learns: the fixed `alphabet` (+ space), or what the training utterances hold."""
    if targets == "phonemes":
        found = PhonemeTokenizer.build_phones(train)
        # the 40-phoneme ARPAbet set + blank, as HW3P2 fixes it, whenever the data use no other symbol
        return PhonemeTokenizer(PHONEMES) if set(found.symbols[1:]) <= set(PHONEMES) else found
    if targets == "labels":
        return LabelSet.build(train)
    if targets == "frames":
        return FrameTokenizer.build(train)
    if alphabet:
        if len(set(alphabet)) != len(alphabet):
            raise InputError(f"data.alphabet {alphabet!r} repeats a character")
        tok = CharTokenizer(sorted(set(alphabet) | {" "}))
        for u in train:
            tok.encode(u.text or "", u.id)  # a training text outside the alphabet: an error that names it
        return tok
    return CharTokenizer.build(u.text for u in train if u.text)


def load_tokenizer(recipe: Recipe, train: list[Utterance]):
    """The tokenizer a recipe's model trains towards: the prepared vocab.txt, or the training labels."""
    targets = resolve_targets(recipe)
    if targets in ("labels", "frames"):
        return build_tokenizer(targets, train)
    cls = PhonemeTokenizer if targets == "phonemes" else CharTokenizer
    return cls.load(recipe.data_dir / "vocab.txt")


def load_split(data_dir: Path, name: str) -> tuple[list[Utterance], Mapping[str, torch.Tensor]]:
    """A prepared split: its utterances and its features (a FeatureStore; a data dir prepared before the store
    existed still loads, from its feats/<name>.pt, into memory)."""
    m = data_dir / f"{name}.jsonl"
    store, old = data_dir / "feats" / name, data_dir / "feats" / f"{name}.pt"
    if not m.is_file() or not (store.is_dir() or old.is_file()):
        raise InputError(f"{m} or its features are missing; run `asrkit prepare` first")
    return read_manifest(m), FeatureStore(store) if store.is_dir() else load_features(old)
