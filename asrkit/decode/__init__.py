"""Decoding: CTC greedy and exact prefix beam search (optionally inside a lexicon), LM building."""

from asrkit.decode.beam import prefix_beam_search, prefix_beam_search_batch
from asrkit.decode.ctc import (
    Hypothesis,
    Lexicon,
    ctc_sequence_logprob,
    greedy_decode,
    lexicon_from_words,
)

__all__ = [
    "Hypothesis",
    "Lexicon",
    "ctc_sequence_logprob",
    "greedy_decode",
    "lexicon_from_words",
    "prefix_beam_search",
    "prefix_beam_search_batch",
]
