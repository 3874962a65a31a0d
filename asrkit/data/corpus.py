"""The corpus contract: the functions every corpus module in `asrkit.data.corpora` defines, with these signatures.

The pair at its heart follows lhotse's `download_X(target_dir, ...)` / `prepare_X(corpus_dir, output_dir, ...)`:
`download` fetches a corpus into a folder, `prepare` turns the corpus on disk into manifests. Around it, `locate`
finds the corpus a recipe names (and downloads it when allowed), `count_work` sizes the progress bar, and
`load_features` reads one utterance's precomputed features. A corpus that cannot be downloaded (a Kaldi data dir)
raises InputError from `download`; one without a feature format of its own reads the utterance's .npy file
(`npy_features`). `asrkit prepare` calls these five functions and nothing else of a corpus module, and
tests/test_corpora.py checks every registered corpus against this class.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import torch

from asrkit.config import Recipe
from asrkit.data.featfile import read_npy_features
from asrkit.data.manifest import Utterance
from asrkit.errors import InputError

Manifests = dict[str, list[Utterance]]  # manifest name (train, dev, test, ...) → its utterances


class Corpus(Protocol):
    """What `asrkit prepare` needs of a corpus; each corpus module defines these functions at module level."""

    def download(self, target_dir: str | Path, recipe: Recipe | None = None, quiet: bool = False) -> Path:
        """Fetch what `recipe` needs of the corpus (its default parts without one) into `target_dir`; returns the
        corpus dir `prepare` reads. Parts already there are not fetched again."""
        ...

    def locate(self, recipe: Recipe, allow_download: bool = False, quiet: bool = False) -> Path:
        """The corpus dir the recipe names (data.root, $ASRKIT_DATA/<corpus>, ...), downloaded when allowed."""
        ...

    def count_work(self, corpus_dir: Path, recipe: Recipe) -> int:
        """The progress steps `prepare` will report for this corpus dir and recipe."""
        ...

    def prepare(
        self, corpus_dir: Path, output_dir: Path, recipe: Recipe, progress: Callable[[int], None] | None = None
    ) -> Manifests:
        """The manifests of the corpus in `corpus_dir`; audio or features it makes go under `output_dir`."""
        ...

    def load_features(self, utt: Utterance, recipe: Recipe) -> torch.Tensor:
        """One utterance's (frames, dim) features when `features.type` is precomputed."""
        ...


def npy_features(utt: Utterance, recipe: Recipe) -> torch.Tensor:
    """`load_features` for corpora whose manifests point at a .npy file per utterance."""
    if utt.features is None:
        raise InputError(f"utterance {utt.id} has no features file (features.type is precomputed)")
    return read_npy_features(utt.features, recipe.features.n_mels)
