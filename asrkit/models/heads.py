"""Output heads: per-frame log-probs (ctc, frame) or one label per utterance (classifier, pooled)."""

from __future__ import annotations

import torch
from torch import nn

from asrkit.errors import InputError
from asrkit.models.frontend import _mask

HEADS = ("ctc", "classifier", "frame")
POOLS = ("last", "mean", "attention")


class FrameHead(nn.Linear):
    """Per-frame log_softmax over `n_outputs`: tokens incl. blank (ctc) or frame classes (frame, no blank).

    A plain Linear underneath, so its state-dict keys are `head.weight` / `head.bias` as in older checkpoints.
    """

    def __init__(self, in_dim: int, n_outputs: int, task: str = "ctc"):
        super().__init__(in_dim, n_outputs)
        self.task = task

    def forward(self, y: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T', D) → (B, T', V) log-probs, lengths unchanged."""
        # log_softmax in fp32 even under autocast: CPU autocast would keep it in bf16 (8-bit mantissa log-probs)
        return super().forward(y).float().log_softmax(-1), lengths


class LastPool(nn.Module):
    """Last valid state; bidirectional (`split` = forward width): forward half at the last valid frame ‖ backward half at t=0.

    `ends=True` (encoders whose outputs mix both directions, e.g. projected bidirectional GRU/RNN):
    the whole output at the last valid frame ‖ the whole output at t=0.
    """

    def __init__(self, split: int | None = None, ends: bool = False):
        super().__init__()
        self.split = split
        self.ends = ends

    def forward(self, y: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, T, D) → (B, D), or (B, 2D) with `ends`."""
        last = y[torch.arange(y.shape[0], device=y.device), (lengths - 1).to(y.device)]
        if self.ends:
            return torch.cat([last, y[:, 0]], dim=-1)
        if self.split is None:
            return last
        return torch.cat([last[:, : self.split], y[:, 0, self.split :]], dim=-1)


class MeanPool(nn.Module):
    """Mean over each utterance's valid frames."""

    def forward(self, y: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, T, D) → (B, D)."""
        mask = _mask(lengths.to(y.device), y.shape[1]).to(y.dtype)[:, :, None]
        return (y * mask).sum(1) / mask.sum(1).clamp(min=1)


class AttentionPool(nn.Module):
    """Learned per-frame scores, softmax over the valid frames only, weighted sum."""

    def __init__(self, in_dim: int):
        super().__init__()
        self.score = nn.Linear(in_dim, 1, bias=False)  # a bias would cancel in the softmax

    def weights(self, y: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, T) attention weights; exactly zero on padding."""
        valid = _mask(lengths.to(y.device), y.shape[1]).bool()
        return self.score(y).squeeze(-1).masked_fill(~valid, float("-inf")).softmax(-1)

    def forward(self, y: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, T, D) → (B, D)."""
        # zero padded rows too: 0 × a non-finite padded value would still be NaN
        y = y * _mask(lengths.to(y.device), y.shape[1]).to(y.dtype)[:, :, None]
        return torch.einsum("bt,btd->bd", self.weights(y, lengths), y)


class ClassifierHead(nn.Module):
    """Pool the frames of each utterance, then log_softmax over the classes: (B, T', D) → (B, V)."""

    task = "classifier"

    def __init__(self, in_dim: int, n_classes: int, pool: str = "mean", split: int | None = None, ends: bool = False):
        super().__init__()
        if pool not in POOLS:
            raise InputError(f"unknown pool {pool!r}; choose one of: {', '.join(POOLS)}")
        self.pool_kind = pool
        if pool == "last":
            self.pool: nn.Module = LastPool(split, ends)
            width = 2 * in_dim if ends else in_dim
        elif pool == "mean":
            self.pool, width = MeanPool(), in_dim
        else:
            self.pool, width = AttentionPool(in_dim), in_dim
        self.out = nn.Linear(width, n_classes)

    def forward(self, y: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T', D) → (B, V) log-probs; the lengths (frames pooled) pass through."""
        return self.out(self.pool(y, lengths)).float().log_softmax(-1), lengths


def build_head(
    kind: str, in_dim: int, n_outputs: int, pool: str = "mean", split: int | None = None, ends: bool = False
) -> nn.Module:
    """The head `kind` (ctc | classifier | frame) over `in_dim` encoder features; split/ends shape `last` pooling."""
    if kind not in HEADS:
        raise InputError(f"unknown head {kind!r}; choose one of: {', '.join(HEADS)}")
    if kind == "classifier":
        return ClassifierHead(in_dim, n_outputs, pool, split, ends)
    return FrameHead(in_dim, n_outputs, kind)
