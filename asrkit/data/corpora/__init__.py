"""One module per corpus, each with `download()` and `prepare()`."""

from __future__ import annotations

import importlib
from types import ModuleType

from asrkit.errors import InputError

CORPORA = ("digits", "echo", "kaldi", "librispeech", "phonemes", "speech_commands")


def get_corpus(name: str) -> ModuleType:
    """The corpus module for a recipe's `data.corpus` name."""
    if name not in CORPORA:
        raise InputError(f"unknown corpus {name!r}; known corpora: {', '.join(CORPORA)}")
    return importlib.import_module(f"asrkit.data.corpora.{name}")
