"""One utterance's alignment (posteriors, Viterbi path, token spans) and how a checkpoint produces it."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from asrkit.align.core import ctc_posteriors, extend_with_blanks
from asrkit.align.timing import frames_from_path
from asrkit.align.viterbi import best_state_path
from asrkit.errors import InputError
from asrkit.text import normalize_text


@dataclass
class UttAlignment:
    """Soft and Viterbi alignment of one utterance over its blank-extended states (2L+1)."""

    id: str
    tokens: list[int]  # label ids of the transcript (no blanks)
    state_labels: list[str]  # printable label per extended state ("∅" for blank)
    posteriors: np.ndarray  # (T, 2L+1) state posteriors gamma
    path: np.ndarray | None  # (T,) Viterbi extended-state index per frame; None when infeasible
    frame_shift: float  # seconds per output frame
    loglik: float = float("-inf")
    text: str = ""
    log_probs: torch.Tensor | None = field(default=None, repr=False)  # (T, V) model outputs, when known

    @property
    def n_frames(self) -> int:
        return int(self.posteriors.shape[0])

    @property
    def feasible(self) -> bool:
        return self.path is not None and np.isfinite(self.loglik)

    def token_frames(self) -> list[tuple[int, int]]:
        """Frame span [first, last + 1) of each token on the Viterbi path."""
        if self.path is None:
            return []
        return frames_from_path(self.path.tolist(), len(self.tokens))

    def token_starts(self) -> np.ndarray:
        """Start time (seconds) of each token on the Viterbi path."""
        return np.array([a * self.frame_shift for a, _ in self.token_frames()], dtype=np.float64)


def encode_transcript(tok, text: str, utt_id: str) -> tuple[str, list[int]]:
    """Normalised transcript and its token ids; a token the model does not know is a one-line InputError naming it."""
    if getattr(tok, "kind", "char") == "phoneme":
        units = text.split()
        norm = " ".join(units)
    else:
        norm = normalize_text(text)
        units = list(norm)
    unknown = [u for u in dict.fromkeys(units) if u not in tok.index]
    if unknown:
        names = ", ".join(repr(u) for u in unknown)
        plural = "s" if len(unknown) > 1 else ""
        raise InputError(f"utterance {utt_id!r}: token{plural} {names} not in the model's vocabulary")
    return norm, [tok.index[u] for u in units]


def align_utterance(am, utt_id: str, tokens: list[int], feats: torch.Tensor, text: str = "") -> UttAlignment:
    """Run the model on `feats` and align `tokens`: CTC posteriors and the Viterbi state path."""
    tok = am.tokenizer
    (lp,) = am.log_probs([feats])
    loglik, post = ctc_posteriors(lp, tokens, blank=tok.blank)
    states, _ = extend_with_blanks(tokens, tok.blank)
    labels = [tok.label(int(s)) for s in states]
    ll = float(loglik)
    path = None
    if np.isfinite(ll):
        path = best_state_path(lp, tokens, blank=tok.blank).cpu().numpy().astype(np.int64)
    return UttAlignment(
        utt_id, list(tokens), labels, post.cpu().numpy().astype(np.float32), path, am.frame_shift, ll, text, lp
    )
