"""Viterbi (forced) CTC alignment through torchaudio: the label of every frame, and the state path."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
import torchaudio.functional as taf
from torch import Tensor

from asrkit.align.core import _as_index_tensor, extend_with_blanks
from asrkit.align.inputs import as_log_probs, frames_needed
from asrkit.errors import InputError


def forced_align(
    log_probs: Tensor | np.ndarray, targets: Sequence[int] | Tensor, blank: int = 0
) -> tuple[Tensor, Tensor]:
    """Viterbi CTC alignment of one utterance, via `torchaudio.functional.forced_align`.

    `log_probs` (T, V), `targets` (L,) label ids without the blank.  Returns the label id of every frame
    (T,) int64 (the blank or the aligned target) and that label's log-prob per frame (T,), in the input's
    dtype (float16/bfloat16 are computed in float32).  InputError when T frames cannot hold the targets.
    """
    log_probs = as_log_probs(log_probs, (2,))
    tg = targets if isinstance(targets, Tensor) and targets.dtype == torch.int32 else _as_index_tensor(targets)
    tg = tg.to(log_probs.device)
    if tg.dim() != 1:
        raise InputError(f"targets must be 1-D, got shape {tuple(tg.shape)}")
    n_frames, vocab = log_probs.shape
    if not 0 <= blank < vocab:
        raise InputError(f"blank index {blank} outside the vocabulary of size {vocab}")
    n_tokens = tg.numel()
    if n_tokens and bool(((tg < 0) | (tg >= vocab) | (tg == blank)).any()):
        raise InputError(f"targets must be ids in [0, {vocab}) other than the blank {blank}")
    # torchaudio's kernel reads raw memory: a transposed, sliced or Fortran-ordered view must be laid out first
    lp = (log_probs if log_probs.dtype in (torch.float32, torch.float64) else log_probs.float()).contiguous()
    if n_tokens == 0:
        return torch.full((n_frames,), blank, dtype=torch.int64, device=lp.device), lp[:, blank].clone()
    need = int(frames_needed(tg))
    if n_frames < need:
        raise InputError(
            f"{n_frames} frames cannot align {n_tokens} tokens with {need - n_tokens} repeats (needs {need})"
        )
    labels, scores = taf.forced_align(lp.unsqueeze(0), tg.to(torch.int32).contiguous().unsqueeze(0), blank=blank)
    return labels[0].to(torch.int64), scores[0]


def best_state_path(log_probs: Tensor | np.ndarray, targets: Sequence[int] | Tensor, blank: int = 0) -> Tensor:
    """Return the Viterbi extended-state index (T,) per frame for one utterance, via `forced_align`."""
    log_probs = as_log_probs(log_probs, (2,))
    tg = _as_index_tensor(targets, log_probs.device)
    lab, _ = forced_align(log_probs, tg, blank)
    n_tokens = tg.numel()
    if n_tokens == 0:
        return torch.zeros(lab.numel(), dtype=torch.int64, device=lab.device)
    # A non-blank frame starts a new token unless it continues the previous frame's token.
    nonblank = lab != blank
    prev = F.pad(lab[:-1], (1, 0), value=blank)
    n_emitted = torch.cumsum((nonblank & (lab != prev)).to(torch.int64), dim=0)
    states = torch.where(nonblank, 2 * n_emitted - 1, 2 * n_emitted)
    ext, _ = extend_with_blanks(tg, blank)
    if int(n_emitted[-1]) != n_tokens or not bool((ext[states] == lab).all()):
        raise RuntimeError("forced_align returned a path that does not spell the targets")
    return states
