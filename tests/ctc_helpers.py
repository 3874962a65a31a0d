"""Helpers shared by the CTC decoding tests: log-softmax in NumPy and the CTC collapse of a frame path."""

from __future__ import annotations

import numpy as np


def log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=-1, keepdims=True)
    return (x - np.log(np.exp(x).sum(axis=-1, keepdims=True))).astype(np.float32)


def collapse(path, blank: int = 0) -> tuple[int, ...]:
    """Merge repeated labels, then drop blanks."""
    out, prev = [], None
    for k in path:
        if k != prev and k != blank:
            out.append(k)
        prev = k
    return tuple(out)
