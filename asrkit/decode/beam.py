"""CTC prefix beam search (exact merging, compiled with numba): one utterance or a padded batch."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from asrkit.align.inputs import as_lengths
from asrkit.decode.beam_kernel import BeamOptions, beam_batch, beam_one
from asrkit.decode.ctc import Hypothesis, Lexicon, _check_blank, _partial_word, kernel_input
from asrkit.errors import InputError

__all__ = ["prefix_beam_search", "prefix_beam_search_batch"]

_NO_FSA = np.full((1, 1), -1, np.int32)


def _options(
    V: int,
    beam_size: int,
    blank: int,
    token_min_logp: float | None,
    top_k: int | None,
    prune_beam: float | None,
    lexicon: Lexicon | None,
) -> BeamOptions:
    """Validate the search options into the kernels' options record."""
    _check_blank(blank, V)
    if beam_size < 1:
        raise InputError(f"beam_size must be at least 1, got {beam_size}")
    if top_k is not None and top_k < 1:
        raise InputError(f"top_k must be at least 1, got {top_k}")
    if prune_beam is not None and not prune_beam >= 0:
        raise InputError(f"prune_beam must be a non-negative log-probability margin, got {prune_beam}")
    if lexicon is not None and beam_size < 2:
        beam_size = 2  # greedy decoding cannot honour a lexicon
    return BeamOptions(
        beam=int(beam_size),
        blank=int(blank),
        token_min_logp=-math.inf if token_min_logp is None else float(token_min_logp),
        top_k=0 if top_k is None else int(top_k),
        prune_beam=math.inf if prune_beam is None else float(prune_beam),
        trans=lexicon.automaton(V)[0] if lexicon is not None else _NO_FSA,
        use_fsa=lexicon is not None,
    )


def _complete_only(hyps: list[Hypothesis], complete: list[bool], lexicon: Lexicon) -> list[Hypothesis]:
    """Keep the hypotheses that end on a whole word; if none does, drop each one's unfinished word."""
    done = [h for h, ok in zip(hyps, complete) if ok]
    if done or not hyps:
        return done
    # no hypothesis ends on a whole word: drop each one's unfinished last word (and the space
    # before it), so the answer still holds only lexicon words; duplicates keep the best
    space = lexicon.space
    out: dict[tuple[int, ...], Hypothesis] = {}
    for h in hyps:
        p = tuple(h.tokens)
        n = len(p) - len(_partial_word(p, space))
        q = p[: n - 1] if n > 0 and p[n - 1] == space else p[:n]
        if q not in out:
            out[q] = Hypothesis(list(q), "", h.score, h.timesteps[: len(q)])
    return list(out.values())


def prefix_beam_search(
    log_probs: Any,
    beam_size: int = 10,
    blank: int = 0,
    *,
    token_min_logp: float | None = None,
    top_k: int | None = None,
    prune_beam: float | None = None,
    lexicon: Lexicon | None = None,
) -> list[Hypothesis]:
    """CTC prefix beam search over (T, V) log-probabilities; the n-best, best first.

    Exact: a prefix reached along several paths is one hypothesis scored by the sum of their
    probabilities, and after every frame the `beam_size` best merged prefixes are kept. Each
    Hypothesis unpacks as `(token ids, log score)`; `timesteps` holds the frame of each token.
    `beam_size=1` is greedy decoding (arg-max per frame, repeats collapsed, blanks dropped), scored
    by its best path's log-probability (the labels' total over all paths is `ctc_sequence_logprob`).
    Pruning, off by default: `token_min_logp` (tokens below it are not emitted in a frame, except
    the frame's best when it beats the blank), `top_k` (only the k best tokens of a frame),
    `prune_beam` (drop prefixes more than this below the best). `lexicon` keeps only prefixes
    made of its words (beam 1 then searches with beam 2).

    >>> lp = np.log(np.array([[0.6, 0.4], [0.6, 0.4]], dtype=np.float32))
    >>> [(ids, round(float(np.exp(s)), 2)) for ids, s in prefix_beam_search(lp, beam_size=4)]
    [([1], 0.64), ([], 0.36)]
    """
    lp = kernel_input(log_probs, 2)
    V = lp.shape[1]
    n, tokens, frames, lens, scores, states = beam_one(
        lp, _options(V, beam_size, blank, token_min_logp, top_k, prune_beam, lexicon)
    )
    return _finish(n, tokens, frames, lens, scores, states, lexicon, V)


def prefix_beam_search_batch(
    log_probs: Any,
    lengths: Any = None,
    beam_size: int = 10,
    blank: int = 0,
    *,
    token_min_logp: float | None = None,
    top_k: int | None = None,
    prune_beam: float | None = None,
    lexicon: Lexicon | None = None,
) -> list[list[Hypothesis]]:
    """`prefix_beam_search` for a padded (B, T, V) batch cut to `lengths`; utterances run in parallel."""
    lp = kernel_input(log_probs, 3)
    B, T, V = lp.shape
    lens = as_lengths(lengths, B, T).numpy()
    opts = _options(V, beam_size, blank, token_min_logp, top_k, prune_beam, lexicon)
    ns, tokens, frames, lns, scores, states = beam_batch(lp, lens, opts)
    return [_finish(int(ns[b]), tokens[b], frames[b], lns[b], scores[b], states[b], lexicon, V) for b in range(B)]


def _finish(
    n: int,
    tokens: np.ndarray,
    frames: np.ndarray,
    lens: np.ndarray,
    scores: np.ndarray,
    states: np.ndarray,
    lexicon: Lexicon | None,
    V: int,
) -> list[Hypothesis]:
    """Kernel output rows -> Hypothesis list, best first (with a lexicon: complete outputs only)."""
    # token and frame rows stay arrays until read (see Hypothesis): most callers want the best only
    scs = scores[:n].tolist()
    hyps = [Hypothesis(tokens[j, :m], "", scs[j], frames[j, :m]) for j, m in enumerate(lens[:n].tolist())]
    if lexicon is None:
        return hyps
    accept = lexicon.automaton(V)[1]  # cached: the table `_options` took `trans` from
    return _complete_only(hyps, [bool(accept[s]) for s in states[:n]], lexicon)


def compile_kernels() -> None:
    """Compile the beam-search kernels into numba's on-disk cache (once per install; `make setup` runs it)."""
    lp = np.log(np.full((2, 3, 4), 0.25, np.float32))
    prefix_beam_search(lp[0], 2)
    prefix_beam_search(lp[0], 1)
    prefix_beam_search_batch(lp, None, 2)
