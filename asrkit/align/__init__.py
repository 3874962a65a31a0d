"""Alignment: CTC forward-backward posteriors, Viterbi forced alignment, files and pictures."""

from asrkit.align.core import (
    best_state_path,
    ctc_alpha_beta,
    ctc_posteriors,
    extend_with_blanks,
    plot_alignment,
    save_alignment,
)

__all__ = ["best_state_path", "ctc_alpha_beta", "ctc_posteriors", "extend_with_blanks", "plot_alignment", "save_alignment"]
