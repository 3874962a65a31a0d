"""Alignment: CTC forward-backward posteriors, Viterbi forced alignment, token and word spans, files and pictures."""

from asrkit.align.core import ctc_alpha_beta, ctc_posteriors, extend_with_blanks, save_alignment
from asrkit.align.timing import Span, segments
from asrkit.align.viterbi import best_state_path, forced_align

__all__ = [
    "Span",
    "best_state_path",
    "ctc_alpha_beta",
    "ctc_posteriors",
    "extend_with_blanks",
    "forced_align",
    "save_alignment",
    "segments",
]
