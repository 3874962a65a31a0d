"""Decoding: CTC greedy and prefix beam search (optionally constrained to a lexicon)."""

from asrkit.decode.ctc import (
    Hypothesis,
    Lexicon,
    batch_decode,
    ctc_decode,
    ctc_sequence_logprob,
    greedy_decode,
    lexicon_from_words,
    prefix_beam_search,
)

__all__ = [
    "Hypothesis",
    "Lexicon",
    "batch_decode",
    "ctc_decode",
    "ctc_sequence_logprob",
    "greedy_decode",
    "lexicon_from_words",
    "prefix_beam_search",
]
