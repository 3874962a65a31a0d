"""Convolutional front-end that subsamples time before the recurrent layers."""

from __future__ import annotations

import torch
from torch import nn


class ConvSubsample(nn.Module):
    """Two 3×3 conv layers over (time, mel); time stride = `subsample`, frequency stride 2 each."""

    def __init__(self, n_feats: int, channels: int, out_dim: int, subsample: int = 2):
        super().__init__()
        self.subsample = subsample
        self.conv1 = nn.Conv2d(1, channels, 3, stride=(subsample, 2), padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=(1, 2), padding=1)
        f = n_feats
        for _ in range(2):
            f = (f - 1) // 2 + 1
        self.proj = nn.Linear(channels * f, out_dim)
        self.norm = nn.LayerNorm(out_dim)

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return torch.div(lengths - 1, self.subsample, rounding_mode="floor") + 1

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out_len = self.output_lengths(lengths)
        # zero the padding before each conv so a padded batch convolves exactly as each utterance alone
        x = x.unsqueeze(1) * _mask(lengths, x.shape[1])[:, None, :, None]
        y = nn.functional.gelu(self.conv1(x))
        y = y * _mask(out_len, y.shape[2])[:, None, :, None]
        y = nn.functional.gelu(self.conv2(y))  # (B, C, T', F')
        b, c, t, f = y.shape
        y = self.norm(self.proj(y.permute(0, 2, 1, 3).reshape(b, t, c * f)))
        return y, out_len


def _mask(lengths: torch.Tensor, t: int) -> torch.Tensor:
    return (torch.arange(t, device=lengths.device)[None, :] < lengths[:, None]).to(torch.float32)


class StackSubsample(nn.Module):
    """Stack `subsample` consecutive frames and project them: the cheapest front-end, no learned filters."""

    def __init__(self, n_feats: int, out_dim: int, subsample: int = 2):
        super().__init__()
        self.subsample = subsample
        self.proj = nn.Linear(n_feats * subsample, out_dim)
        self.norm = nn.LayerNorm(out_dim)

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return torch.div(lengths + self.subsample - 1, self.subsample, rounding_mode="floor")

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.subsample
        x = x * _mask(lengths, x.shape[1])[:, :, None]
        pad = (-x.shape[1]) % s
        if pad:
            x = nn.functional.pad(x, (0, 0, 0, pad))
        b, t, f = x.shape
        return self.norm(self.proj(x.reshape(b, t // s, s * f))), self.output_lengths(lengths)
