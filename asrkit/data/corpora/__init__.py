"""One module per corpus, each implementing the corpus contract (asrkit.data.corpus.Corpus)."""

from __future__ import annotations

import importlib
from typing import cast

from asrkit.data.corpus import Corpus
from asrkit.errors import InputError

CORPORA = ("digits", "echo", "kaldi", "librispeech", "phonemes", "speech_commands")


def get_corpus(name: str) -> Corpus:
    """The corpus module for a recipe's `data.corpus` name."""
    if name not in CORPORA:
        raise InputError(f"unknown corpus {name!r}; known corpora: {', '.join(CORPORA)}")
    return cast(Corpus, importlib.import_module(f"asrkit.data.corpora.{name}"))
