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
    """nn.Dropout with a cheaper mask. On CPU, one 64-bit random draw gives four 16-bit uniforms (the generator's
    cost is per draw: a third of `rand_like`'s time, which itself is ~0.6x of bernoulli_); the drop rate is p
    rounded to 1/65536 and the scale uses that rate, so the expectation is exact. Elsewhere `rand >= p`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        if x.device.type != "cpu":
            keep = torch.rand_like(x) >= self.p
            return x * (keep.to(x.dtype) * (1.0 / (1.0 - self.p)))
        cut = round(self.p * 65536)
        if cut >= 65536:
            return x * 0.0
        n = x.numel()
        bits = torch.empty((n + 3) // 4, dtype=torch.int64).random_(-(2**63), None).view(torch.int16)[:n]
        keep = (bits >= cut - 32768).view(x.shape)
        return x * (keep.to(x.dtype) * (65536.0 / (65536 - cut)))
