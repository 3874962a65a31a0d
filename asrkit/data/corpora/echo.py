"""The echo memory task: a string of letters in, the same string `delay` steps later out (one label per frame).

Inputs are one-hot frames over 27 symbols (the empty symbol, then a-z); with `variable: true` every frame also
carries a one-hot of the sequence's delay (0 … max_delay). Targets are written as one character per frame in the
utterance's `text`, `_` for the empty output, so the frame tokenizer, `decode` and `score` read them like any text.
Nothing is downloaded: the data are generated from `data.seed`, and each split draws from its own stream, so the
test strings are fresh (never seen in training).
"""

from __future__ import annotations

import string
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from asrkit.config import Recipe
from asrkit.data.corpus import Manifests, npy_features
from asrkit.data.manifest import Utterance
from asrkit.errors import InputError

EMPTY = "_"
LETTERS = string.ascii_lowercase
SYMBOLS = EMPTY + LETTERS  # index 0 = empty, 1..26 = a..z
_SPLIT_STREAM = {"train": 1, "dev": 2, "test": 3}


def echo_target(letters: str, delay: int) -> str:
    """The frames an echo of `letters` outputs: `delay` empties, then the string, cut to the input's length."""
    return (EMPTY * delay + letters)[: len(letters)]


def input_frames(letters: str, delay: int | None = None, max_delay: int = 0) -> np.ndarray:
    """(T, 27) one-hot letters, plus a (T, max_delay + 1) one-hot of the delay when `delay` is given."""
    bad = sorted({c for c in letters if c not in LETTERS})
    if bad:
        raise InputError(f"echo inputs are lower-case letters a-z; got {''.join(bad)!r}")
    x = np.zeros((len(letters), len(SYMBOLS)), dtype=np.uint8)
    x[np.arange(len(letters)), [SYMBOLS.index(c) for c in letters]] = 1
    if delay is None:
        return x
    if not 0 <= delay <= max_delay:
        raise InputError(f"echo delay {delay} is outside 0..{max_delay}")
    d = np.zeros((len(letters), max_delay + 1), dtype=np.uint8)
    d[:, delay] = 1
    return np.concatenate([x, d], axis=1)


def feature_dim(recipe: Recipe) -> int:
    e = recipe.data.echo
    return len(SYMBOLS) + (e.max_delay + 1 if e.variable else 0)


def check(recipe: Recipe) -> None:
    e = recipe.data.echo
    if recipe.features.type != "precomputed":
        raise InputError("the echo corpus has no audio: set features.type: precomputed")
    if recipe.features.n_mels != feature_dim(recipe):
        raise InputError(
            f"echo inputs have {feature_dim(recipe)} dims per frame: set features.n_mels: {feature_dim(recipe)}"
        )
    if e.length < 1 or e.delay < 0 or e.max_delay < 0:
        raise InputError("data.echo: length must be >= 1, delay and max_delay >= 0")
    if not e.variable and e.delay >= e.length:
        raise InputError(f"data.echo.delay {e.delay} leaves nothing to echo in sequences of length {e.length}")
    if set(e.per_split) - set(_SPLIT_STREAM) or "train" not in e.per_split or "dev" not in e.per_split:
        raise InputError("data.echo.per_split needs train and dev counts (and optionally test), nothing else")


def download(target_dir: str | Path, recipe: Recipe | None = None, quiet: bool = False) -> Path:
    """Nothing to download: the echo data are generated."""
    return Path(target_dir)


def locate(recipe: Recipe, allow_download: bool = False, quiet: bool = False) -> Path:
    check(recipe)
    return recipe.data_dir


def count_work(corpus_dir: Path, recipe: Recipe) -> int:
    return sum(recipe.data.echo.per_split.values())


def prepare(
    corpus_dir: Path, output_dir: Path, recipe: Recipe, progress: Callable[[int], None] | None = None
) -> Manifests:
    """Random letter strings per split, their one-hot inputs as .npy files and their delayed targets as text."""
    check(recipe)
    e = recipe.data.echo
    result: dict[str, list[Utterance]] = {}
    for split, n in e.per_split.items():
        rng = np.random.default_rng([recipe.data.seed, _SPLIT_STREAM[split]])
        folder = output_dir / "inputs" / split
        folder.mkdir(parents=True, exist_ok=True)
        utts = []
        for k in range(n):
            letters = "".join(LETTERS[i] for i in rng.integers(0, len(LETTERS), e.length))
            delay = int(rng.integers(0, e.max_delay + 1)) if e.variable else e.delay
            uid = f"{split}{k:06d}_d{delay}"
            path = folder / f"{uid}.npy"
            np.save(path, input_frames(letters, delay if e.variable else None, e.max_delay))
            utts.append(
                Utterance(
                    uid,
                    None,
                    len(letters) * recipe.features.hop_ms / 1000,
                    0,
                    echo_target(letters, delay),
                    features=str(path.resolve()),
                    extra={"input": letters, "delay": delay},
                )
            )
            if progress:
                progress(1)
        result[split] = utts
    return result


def load_features(utt: Utterance, recipe: Recipe) -> torch.Tensor:
    """Precomputed features: the utterance's .npy file."""
    return npy_features(utt, recipe)
