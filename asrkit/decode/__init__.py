"""Decoding: CTC greedy and prefix beam search."""

from asrkit.decode.ctc import (
    Hypothesis,
    batch_decode,
    ctc_decode,
    ctc_sequence_logprob,
    greedy_decode,
    prefix_beam_search,
)

__all__ = [
    "Hypothesis",
    "batch_decode",
    "ctc_decode",
    "ctc_sequence_logprob",
    "greedy_decode",
    "prefix_beam_search",
]
