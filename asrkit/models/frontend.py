"""Front-ends: turn (B, T, F) features into (B, ceil(T / subsample), D) frames before the encoder.

Every front-end zeroes the padded frames before anything that mixes frames (a convolution), so a
padded batch gives each utterance exactly the output it gets alone.
"""

from __future__ import annotations

import torch
from torch import nn

from asrkit.errors import InputError
from asrkit.models.network import Dropout

FRONTENDS = ("none", "stack", "conv", "resnet")


def _mask(lengths: torch.Tensor, t: int) -> torch.Tensor:
    """(B, t) float mask: 1 on each utterance's valid frames, 0 on its padding."""
    return (torch.arange(t, device=lengths.device)[None, :] < lengths[:, None]).to(torch.float32)


def subsampled_lengths(lengths: torch.Tensor, subsample: int) -> torch.Tensor:
    """ceil(lengths / subsample): the frame count every front-end produces."""
    return torch.div(lengths + subsample - 1, subsample, rounding_mode="floor")


def _halve(f: int) -> int:
    """Size of an axis after a 3-wide conv with stride 2 and padding 1."""
    return (f - 1) // 2 + 1


class Identity(nn.Module):
    """Front-end `none`: the features themselves (padding zeroed), no subsampling."""

    def __init__(self, n_feats: int):
        super().__init__()
        self.subsample = 1
        self.out_dim = n_feats

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Frames out for `lengths` frames in: unchanged."""
        return lengths

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, F) → (B, T, F) with padded frames set to zero."""
        return x * _mask(lengths, x.shape[1])[:, :, None].to(x.dtype), lengths


class StackSubsample(nn.Module):
    """Stack `subsample` consecutive frames and project them: the cheapest front-end, no learned filters."""

    def __init__(self, n_feats: int, out_dim: int, subsample: int = 2):
        super().__init__()
        self.subsample = subsample
        self.out_dim = out_dim
        self.proj = nn.Linear(n_feats * subsample, out_dim)
        self.norm = nn.LayerNorm(out_dim)

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Frames out for `lengths` frames in: ceil(T / subsample)."""
        return subsampled_lengths(lengths, self.subsample)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, F) → (B, ceil(T / s), out_dim)."""
        s = self.subsample
        x = x * _mask(lengths, x.shape[1])[:, :, None].to(x.dtype)
        pad = (-x.shape[1]) % s
        if pad:
            x = nn.functional.pad(x, (0, 0, 0, pad))
        b, t, f = x.shape
        return self.norm(self.proj(x.reshape(b, t // s, s * f))), self.output_lengths(lengths)


class ConvSubsample(nn.Module):
    """Two 3×3 conv layers over (time, mel); time stride = `subsample`, frequency stride 2 each."""

    def __init__(self, n_feats: int, channels: int, out_dim: int, subsample: int = 2):
        super().__init__()
        self.subsample = subsample
        self.out_dim = out_dim
        self.conv1 = nn.Conv2d(1, channels, 3, stride=(subsample, 2), padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=(1, 2), padding=1)
        self.proj = nn.Linear(channels * _halve(_halve(n_feats)), out_dim)
        self.norm = nn.LayerNorm(out_dim)

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Frames out for `lengths` frames in: ceil(T / subsample)."""
        return subsampled_lengths(lengths, self.subsample)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, F) → (B, ceil(T / s), out_dim)."""
        out_len = self.output_lengths(lengths)
        # zero the padding before each conv so a padded batch convolves exactly as each utterance alone
        x = x.unsqueeze(1) * _mask(lengths, x.shape[1])[:, None, :, None].to(x.dtype)
        y = nn.functional.gelu(self.conv1(x))
        y = y * _mask(out_len, y.shape[2])[:, None, :, None].to(y.dtype)
        y = nn.functional.gelu(self.conv2(y))  # (B, C, T', F')
        b, c, t, f = y.shape
        y = self.norm(self.proj(y.permute(0, 2, 1, 3).reshape(b, t, c * f)))
        return y, out_len


class ResidualBlock(nn.Module):
    """[LayerNorm(freq) → GELU → dropout → 3×3 conv] × 2 plus the skip connection (DeepSpeech2-style)."""

    def __init__(self, channels: int, n_freq: int, dropout: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(n_freq)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.norm2 = nn.LayerNorm(n_freq)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.dropout = Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, C, T, F) → same shape; `mask` (B, 1, T, 1) zeroes the padding before each conv."""
        y = self.conv1(self.dropout(nn.functional.gelu(self.norm1(x))) * mask)
        y = self.conv2(self.dropout(nn.functional.gelu(self.norm2(y))) * mask)
        return x + y


class ResNetSubsample(nn.Module):
    """Strided 3×3 conv (time stride `subsample`, freq stride 2), `blocks` residual blocks, Linear + LayerNorm."""

    def __init__(
        self, n_feats: int, channels: int, out_dim: int, subsample: int = 2, blocks: int = 2, dropout: float = 0.1
    ):
        super().__init__()
        self.subsample = subsample
        self.out_dim = out_dim
        n_freq = _halve(n_feats)
        self.conv = nn.Conv2d(1, channels, 3, stride=(subsample, 2), padding=1)
        self.blocks = nn.ModuleList(ResidualBlock(channels, n_freq, dropout) for _ in range(blocks))
        self.proj = nn.Linear(channels * n_freq, out_dim)
        self.norm = nn.LayerNorm(out_dim)

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Frames out for `lengths` frames in: ceil(T / subsample)."""
        return subsampled_lengths(lengths, self.subsample)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, F) → (B, ceil(T / s), out_dim)."""
        out_len = self.output_lengths(lengths)
        y = self.conv(x.unsqueeze(1) * _mask(lengths, x.shape[1])[:, None, :, None].to(x.dtype))
        mask = _mask(out_len, y.shape[2])[:, None, :, None].to(y.dtype)
        for block in self.blocks:
            y = block(y, mask)
        b, c, t, f = y.shape
        return self.norm(self.proj(y.permute(0, 2, 1, 3).reshape(b, t, c * f))), out_len


def build_frontend(
    kind: str, n_feats: int, out_dim: int, subsample: int = 2, channels: int = 32, blocks: int = 2, dropout: float = 0.1
) -> nn.Module:
    """The front-end `kind` (none | stack | conv | resnet); its `out_dim` is n_feats for none, else `out_dim`."""
    if kind not in FRONTENDS:
        raise InputError(f"unknown front-end {kind!r}; choose one of: {', '.join(FRONTENDS)}")
    if subsample not in (1, 2, 3, 4):
        raise InputError(f"subsample must be 1, 2, 3 or 4, got {subsample!r}")
    if kind == "none":
        if subsample != 1:
            raise InputError("front-end none cannot subsample: set model.subsample to 1")
        return Identity(n_feats)
    if kind == "stack":
        return StackSubsample(n_feats, out_dim, subsample)
    if kind == "conv":
        return ConvSubsample(n_feats, channels, out_dim, subsample)
    return ResNetSubsample(n_feats, channels, out_dim, subsample, blocks, dropout)
