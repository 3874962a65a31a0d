"""Alignment: CTC forward-backward posteriors, Viterbi forced alignment, segments, files and pictures."""

from asrkit.align.core import (
    Segment,
    best_state_path,
    ctc_alpha_beta,
    ctc_posteriors,
    extend_with_blanks,
    forced_align,
    plot_alignment,
    save_alignment,
    segments,
)

__all__ = [
    "Segment",
    "best_state_path",
    "ctc_alpha_beta",
    "ctc_posteriors",
    "extend_with_blanks",
    "forced_align",
    "plot_alignment",
    "save_alignment",
    "segments",
]
