"""Token and word timestamps of a decoded hypothesis, in seconds, from its Viterbi alignment."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from asrkit.align.core import _to_numpy
from asrkit.align.inputs import as_log_probs, frames_needed
from asrkit.align.viterbi import best_state_path
from asrkit.errors import InputError


@dataclass
class Span:
    """A token or word of an alignment: its time span [start, end) in seconds and its frames
    [first_frame, end_frame) (-1 where not known: a span made by hand), with a confidence in [0, 1].

    A token's confidence is its mean posterior over its frames. A word's is the least confident of its
    tokens: one badly heard letter makes the whole word doubtful, where a mean over the word's frames would
    let a long, clear rest of the word hide it.
    """

    label: str
    start: float
    end: float
    conf: float
    first_frame: int = -1
    end_frame: int = -1

    @property
    def duration(self) -> float:
        return self.end - self.start

    @property
    def n_frames(self) -> int:
        return self.end_frame - self.first_frame

    def as_dict(self) -> dict:
        return {
            "label": self.label,
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "conf": round(self.conf, 3),
        }


def _viterbi_spans(log_probs: torch.Tensor, tokens: Sequence[int], blank: int) -> list[tuple[int, int]] | None:
    """Frame spans of `tokens` on the Viterbi path of `log_probs`; None when the frames cannot hold them."""
    if log_probs.shape[0] < int(frames_needed(torch.as_tensor(list(tokens), dtype=torch.int64))):
        return None
    states = best_state_path(log_probs.float(), list(tokens), blank).tolist()
    return frames_from_path(states, len(tokens))


def frames_from_path(states: Sequence[int], n_tokens: int) -> list[tuple[int, int]]:
    """Frame span [first, last + 1) of each token on a blank-extended state path (odd state 2k+1 = token k)."""
    spans: list[list[int]] = [[-1, -1] for _ in range(n_tokens)]
    for t, s in enumerate(states):
        if s % 2 == 1:
            k = s // 2
            if spans[k][0] < 0:
                spans[k][0] = t
            spans[k][1] = t + 1
    return [(a, b) for a, b in spans]


def token_frames(
    log_probs: torch.Tensor,
    tokens: Sequence[int],
    blank: int,
    anchors: Sequence[int] | None = None,
    max_frames: int = 3000,
) -> list[tuple[int, int]]:
    """Frame span [first, last + 1) of each token on the Viterbi path that spells `tokens`.

    The Viterbi search needs memory for frames x tokens, which grows with the square of the length.
    With `anchors` (a frame per token, e.g. the beam search's emission frames) a longer input is
    aligned in pieces of at most about `max_frames`, cut between the two tokens furthest apart in each
    stretch, i.e. in a pause. Empty when the frames cannot hold the tokens.
    """
    if not tokens:
        return []
    log_probs = as_log_probs(log_probs, (2,))
    T = log_probs.shape[0]
    if T <= max_frames or anchors is None or len(anchors) != len(tokens):
        return _viterbi_spans(log_probs, tokens, blank) or []
    spans: list[tuple[int, int]] = []
    first_tok, first_frame = 0, 0
    n = len(tokens)
    while first_tok < n:
        if T - first_frame <= max_frames:
            last_tok, end_frame = n, T
        else:
            # among the token pairs that straddle the last half of the stretch, the widest gap
            limit = first_frame + max_frames
            cands = [i for i in range(first_tok, n - 1) if first_frame + max_frames // 2 <= anchors[i + 1] <= limit]
            if not cands:
                cands = [i for i in range(first_tok, n - 1) if anchors[i + 1] <= limit] or [first_tok]
            i = max(cands, key=lambda j: anchors[j + 1] - anchors[j])
            last_tok, end_frame = i + 1, (anchors[i] + anchors[i + 1]) // 2 + 1
        piece = _viterbi_spans(log_probs[first_frame:end_frame], tokens[first_tok:last_tok], blank)
        if piece is None:
            return []
        spans += [(a + first_frame, b + first_frame) for a, b in piece]
        first_tok, first_frame = last_tok, end_frame
    return spans


def timestamps(
    log_probs: torch.Tensor,
    tokens: Sequence[int],
    symbols: Sequence[str],
    blank: int,
    frame_shift: float,
    space: int | None = None,
    anchors: Sequence[int] | None = None,
) -> tuple[list[Span], list[Span]]:
    """(token spans, word spans) in seconds; words are the runs of tokens between `space` tokens.

    `anchors` (a frame per token) lets a long input be aligned in pieces (see `token_frames`).
    A token's confidence is its mean posterior over its frames; a word's is its least confident token.
    """
    frames = token_frames(log_probs, tokens, blank, anchors)
    if len(frames) != len(tokens):
        return [], []
    return spans_from_frames(log_probs, tokens, frames, symbols, frame_shift, space)


def spans_from_frames(
    log_probs: torch.Tensor,
    tokens: Sequence[int],
    frames: Sequence[tuple[int, int]],
    symbols: Sequence[str],
    frame_shift: float,
    space: int | None = None,
) -> tuple[list[Span], list[Span]]:
    """(token spans, word spans) in seconds from each token's frame span (see `timestamps`)."""
    log_probs = as_log_probs(log_probs, (2,))
    confs = [float(log_probs[a:b, k].float().exp().mean()) for k, (a, b) in zip(tokens, frames)]
    return _spans(tokens, frames, confs, symbols, frame_shift, space)


def _spans(
    tokens: Sequence[int],
    frames: Sequence[tuple[int, int]],
    confs: Sequence[float],
    symbols: Sequence[str],
    frame_shift: float,
    space: int | None,
) -> tuple[list[Span], list[Span]]:
    """Token spans from their frames and confidences, and the words between `space` tokens (none without one)."""
    # rounded to the microsecond: 31 frames of 30 ms are 0.93 s, not 0.9299999999999999
    toks = [
        Span(symbols[k], round(a * frame_shift, 6), round(b * frame_shift, 6), c, int(a), int(b))
        for k, (a, b), c in zip(tokens, frames, confs)
    ]
    words: list[Span] = []
    if space is None:
        return toks, words
    cur: list[Span] = []
    for k, sp in zip(list(tokens) + [space], toks + [None]):
        if k == space:
            if cur:
                words.append(
                    Span(
                        "".join(s.label for s in cur),
                        cur[0].start,
                        cur[-1].end,
                        min(s.conf for s in cur),
                        cur[0].first_frame,
                        cur[-1].end_frame,
                    )
                )
            cur = []
        else:
            cur.append(sp)
    return toks, words


def segments(
    path: torch.Tensor | Sequence[int],
    scores: torch.Tensor | Sequence[float],
    targets: Sequence[int] | torch.Tensor,
    symbols: Sequence[str],
    frame_shift: float,
    space: int | None = None,
    blank: int = 0,
) -> tuple[list[Span], list[Span]]:
    """Token and word spans of a `forced_align` path (its label per frame and that label's log-prob).

    A token occupies the run of frames that emit it (a new run starts at a non-blank label that differs
    from the previous frame's); its confidence is the mean of exp(score) over those frames.  Words are the
    runs of tokens between `space` tokens (the id of the word separator; by default that of " " in
    `symbols`, and no words when there is none), as in `spans_from_frames`.
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
    confs = [float(prob[a:b].mean()) for a, b in zip(starts, ends)]
    if space is None:
        space = next((i for i, s in enumerate(symbols) if s == " " and i != blank), None)
    return _spans(tg.tolist(), list(zip(starts.tolist(), ends.tolist())), confs, symbols, frame_shift, space)


def ctm_lines(utt: str, words: Sequence[Span]) -> list[str]:
    """NIST CTM lines `utt 1 start duration word confidence` (times in seconds)."""
    return [f"{utt} 1 {w.start:.3f} {max(w.end - w.start, 0.0):.3f} {w.label} {w.conf:.3f}" for w in words]
