"""The input convention of decoding and alignment: log-probs as a torch tensor, (T, V) or (B, T, V), with lengths.

Every public function of `asrkit.decode` and `asrkit.align` reads its log-probs through `as_log_probs`, so a
NumPy array works wherever a tensor does, any strides (transposed, sliced, reversed) are fine, and a bad
shape is one InputError with a one-line message.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from asrkit.errors import InputError

_SHAPES = {2: "(T, V)", 3: "(B, T, V)"}


def as_log_probs(log_probs: Any, ndim: tuple[int, ...] = (2, 3)) -> Tensor:
    """Log-probs as a floating torch tensor (no copy where none is needed) from a tensor or a NumPy array.

    `ndim` says which of (T, V) (2) and (B, T, V) (3) the caller takes. Integer input becomes float32; the
    tensor keeps its device, dtype and strides (callers that need a layout make it themselves).
    """
    if isinstance(log_probs, Tensor):
        t = log_probs.detach()
    else:
        arr = np.asarray(log_probs)
        if arr.dtype == object or arr.dtype.kind not in "fiub":
            raise InputError(f"log-probabilities must be numbers, got an array of {arr.dtype}")
        if not arr.flags.writeable or any(s < 0 for s in arr.strides):
            arr = arr.copy()  # torch shares only writable memory with positive strides
        t = torch.from_numpy(arr)
    if t.dim() not in ndim:
        want = " or ".join(_SHAPES.get(d, f"{d}-D") for d in ndim)
        raise InputError(f"expected log-probabilities of shape {want}, got shape {tuple(t.shape)}")
    if not t.is_floating_point():
        t = t.to(torch.float32)
    return t


def as_lengths(lengths: Any, n: int, t_max: int, name: str = "lengths") -> Tensor:
    """Per-utterance frame counts as an int64 CPU tensor of n entries in [0, t_max]; all t_max when None."""
    if lengths is None:
        return torch.full((n,), t_max, dtype=torch.int64)
    t = lengths.detach().cpu() if isinstance(lengths, Tensor) else torch.as_tensor(np.asarray(lengths))
    if t.is_floating_point() or t.is_complex():
        raise InputError(f"{name} must be integers, got {t.dtype}")
    t = t.reshape(-1).to(torch.int64)
    if t.numel() != n:
        raise InputError(f"got {t.numel()} {name} for a batch of {n} utterances")
    if n and (int(t.min()) < 0 or int(t.max()) > t_max):
        raise InputError(f"{name} must lie in [0, {t_max}], got {t.tolist()}")
    return t


def frames_needed(targets: Tensor, target_lengths: Tensor | None = None) -> Tensor:
    """The fewest frames that can hold a CTC alignment of `targets`: one per token, plus a blank between two
    equal tokens. (L,) targets give a 0-D tensor; (N, L) padded ones an (N,) tensor (`target_lengths`: real
    tokens per row, all by default)."""
    tg = targets if targets.dim() == 2 else targets.unsqueeze(0)
    n, width = tg.shape
    tg_len = torch.full((n,), width, dtype=torch.int64, device=tg.device) if target_lengths is None else target_lengths
    if width < 2:
        repeats = torch.zeros_like(tg_len)
    else:
        both_real = torch.arange(1, width, device=tg.device).unsqueeze(0) < tg_len.unsqueeze(1)
        repeats = ((tg[:, 1:] == tg[:, :-1]) & both_real).sum(1)
    need = tg_len + repeats
    return need if targets.dim() == 2 else need[0]
