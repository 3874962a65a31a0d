"""The shape every zoo entry shares: front-end → encoder → head."""

from __future__ import annotations

import torch
from torch import nn


class AcousticNet(nn.Module):
    """(B, T, F) features + (B,) lengths → (log-probs, output lengths); subclasses supply `encode`.

    Subclasses set `frontend` (with `output_lengths`), their encoder, and `head` (with `task`).
    Output: (B, T', V) per-frame log-probs for the ctc and frame heads, (B, V) for the classifier;
    the returned lengths are the T' frames the encoder produced (for a classifier: the frames it pooled).
    """

    bidirectional: bool = False

    def __init__(self, task: str):
        super().__init__()
        self.task = task

    @property
    def streamable(self) -> bool:
        """True when no output depends on more than a fixed look-ahead (no backward recurrence)."""
        return not self.bidirectional

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Encoder frames for `lengths` input frames: ceil(T / subsample)."""
        return self.frontend.output_lengths(lengths)

    def encode(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, T', D_in) front-end frames → (B, T', D) encoder states."""
        raise NotImplementedError

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, F) features, (B,) lengths → (log-probs, output lengths)."""
        x, out_len = self.frontend(feats, lengths)
        return self.head(self.encode(x, out_len), out_len)
