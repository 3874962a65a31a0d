"""Viterbi (forced) CTC alignment through torchaudio, and its token and word segments in seconds."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from asrkit.align.core import _as_index_tensor, _to_numpy, extend_with_blanks
from asrkit.align.inputs import as_log_probs, frames_needed
from asrkit.errors import InputError


def forced_align(log_probs: Tensor | np.ndarray, targets: Sequence[int] | Tensor, blank: int = 0) -> tuple[Tensor, Tensor]:
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
        raise InputError(f"{n_frames} frames cannot align {n_tokens} tokens with {need - n_tokens} repeats (needs {need})")
    import torchaudio.functional as taf

    labels, scores = taf.forced_align(lp.unsqueeze(0), tg.to(torch.int32).contiguous().unsqueeze(0), blank=blank)
    return labels[0].to(torch.int64), scores[0]


@dataclass
class Segment:
    """A token or word of a forced alignment: label, start and duration in seconds, and a confidence in [0, 1]
    (the mean probability of the label over its frames), with its frames [first_frame, first_frame + n_frames)."""

    label: str
    start: float
    duration: float
    confidence: float
    first_frame: int
    n_frames: int

    @property
    def end(self) -> float:
        return self.start + self.duration

    def as_dict(self) -> dict:
        return {
            "label": self.label, "start": round(self.start, 4), "duration": round(self.duration, 4),
            "confidence": round(self.confidence, 4),
        }


def segments(
    path: Tensor | Sequence[int],
    scores: Tensor | Sequence[float],
    targets: Sequence[int] | Tensor,
    symbols: Sequence[str],
    frame_shift: float,
    space: int | None = None,
    blank: int = 0,
) -> tuple[list[Segment], list[Segment]]:
    """Token and word segments of a `forced_align` path.

    A token occupies the run of frames that emit it (a new run starts at a non-blank label that differs
    from the previous frame's); its confidence is the mean of exp(score) over those frames.  Words are the
    runs of tokens between `space` tokens (the id of the word separator; by default that of " " in
    `symbols`, and no words when there is none); a word spans its first token's start to its last token's
    end, its label joins its tokens' symbols, its confidence is the mean over all its tokens' frames.
    """
    lab = _to_numpy(path).astype(np.int64).reshape(-1)
    sc = _to_numpy(scores).astype(np.float64).reshape(-1)
    tg = _to_numpy(targets).astype(np.int64).reshape(-1)
    if lab.size != sc.size:
        raise InputError(f"path has {lab.size} frames, scores have {sc.size}")
    prev = np.concatenate(([blank], lab[:-1]))
    starts = np.flatnonzero((lab != blank) & (lab != prev))
    # A run ends at the next frame whose label differs.
    change = np.append(np.flatnonzero(lab[1:] != lab[:-1]) + 1, lab.size)
    ends = change[np.searchsorted(change, starts, side="right")]
    if starts.size != tg.size or not np.array_equal(lab[starts], tg):
        raise InputError("the path does not spell the targets")
    prob = np.exp(sc)
    tokens = [
        Segment(symbols[int(k)], float(a * frame_shift), float((b - a) * frame_shift), float(prob[a:b].mean()), int(a), int(b - a))
        for k, a, b in zip(tg, starts, ends)
    ]
    if space is None:
        space = next((i for i, s in enumerate(symbols) if s == " " and i != blank), None)
    words: list[Segment] = []
    if space is not None:
        group: list[tuple[Segment, int, int]] = []
        for k, a, b, tok in zip(tg, starts, ends, tokens):
            if k == space:
                _close_word(group, words, prob, frame_shift)
                group = []
            else:
                group.append((tok, int(a), int(b)))
        _close_word(group, words, prob, frame_shift)
    return tokens, words


def _close_word(group: list[tuple[Segment, int, int]], words: list[Segment], prob: np.ndarray, frame_shift: float) -> None:
    """Append the word made of `group`'s tokens (nothing for an empty group)."""
    if not group:
        return
    first, last = group[0][1], group[-1][2]
    frames = np.concatenate([prob[a:b] for _, a, b in group])
    words.append(
        Segment("".join(t.label for t, _, _ in group), first * frame_shift, (last - first) * frame_shift,
                float(frames.mean()), first, last - first)
    )


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
