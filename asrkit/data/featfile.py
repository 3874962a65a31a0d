"""One utterance's precomputed features: a (frames, dim) numeric .npy file, checked as it is read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from asrkit.errors import InputError


def read_npy_features(path: str | Path, dim: int | None = None) -> torch.Tensor:
    """A (frames, dim) float matrix from a .npy file, with errors that name the file."""
    try:
        a = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise InputError(f"features {path}: not a readable .npy array ({e})") from None
    if a.ndim != 2 or not np.issubdtype(a.dtype, np.number):
        raise InputError(f"features {path}: expected a numeric (frames, dim) array, got shape {a.shape} {a.dtype}")
    if dim is not None and a.shape[1] != dim:
        raise InputError(f"features {path}: {a.shape[1]} dims per frame, the recipe says features.n_mels={dim}")
    if not np.isfinite(a).all():
        raise InputError(f"features {path}: holds NaN or infinite values")
    return torch.from_numpy(a.astype(np.float32))
