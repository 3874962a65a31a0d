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


class Dropout(nn.Dropout):
    """nn.Dropout with the mask drawn as `rand >= p`: uniform draws cost ~0.6x of bernoulli_ on CPU (8 % of a step)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        keep = torch.rand_like(x) >= self.p
        return x * (keep.to(x.dtype) * (1.0 / (1.0 - self.p)))
