"""Alignment: CTC forward-backward posteriors, Viterbi forced alignment, segments, files and pictures."""

from asrkit.align.core import ctc_alpha_beta, ctc_posteriors, extend_with_blanks, save_alignment
from asrkit.align.viterbi import Segment, best_state_path, forced_align, segments

__all__ = [
    "Segment",
    "best_state_path",
    "ctc_alpha_beta",
    "ctc_posteriors",
    "extend_with_blanks",
    "forced_align",
    "save_alignment",
    "segments",
]
