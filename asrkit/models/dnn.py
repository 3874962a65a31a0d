"""The frame-wise DNN zoo entry: front-end → splice ±context frames → MLP → head."""

from __future__ import annotations

import torch
from torch import nn

from asrkit.errors import InputError
from asrkit.models.frontend import _mask, build_frontend
from asrkit.models.heads import build_head
from asrkit.models.network import AcousticNet, Dropout


def splice(x: torch.Tensor, lengths: torch.Tensor, context: int) -> torch.Tensor:
    """(B, T, D) → (B, T, (2·context+1)·D): frames t-context … t+context, zeros beyond each utterance's edges."""
    if context == 0:
        return x
    x = x * _mask(lengths.to(x.device), x.shape[1]).to(x.dtype)[:, :, None]  # padding must read as the edge zeros
    t = x.shape[1]
    padded = nn.functional.pad(x, (0, 0, context, context))
    return torch.cat([padded[:, i : i + t] for i in range(2 * context + 1)], dim=-1)


class DNNModel(AcousticNet):
    """Front-end → spliced frames → `layers` × [Linear(hidden) → ReLU → dropout] → head; each frame on its own."""

    def __init__(
        self,
        n_feats: int,
        n_outputs: int,
        head: str = "ctc",
        pool: str = "mean",
        frontend: str = "conv",
        conv_channels: int = 32,
        cnn_blocks: int = 2,
        subsample: int = 2,
        hidden: int = 192,
        layers: int = 2,
        dropout: float = 0.1,
        context: int = 0,
    ):
        super().__init__(head)
        if context < 0:
            raise InputError(f"context must be >= 0, got {context}")
        self.context = context
        self.frontend = build_frontend(frontend, n_feats, hidden, subsample, conv_channels, cnn_blocks, dropout)
        blocks: list[nn.Module] = []
        in_dim = self.frontend.out_dim * (2 * context + 1)
        for _ in range(layers):
            blocks += [nn.Linear(in_dim, hidden), nn.ReLU(), Dropout(dropout)]
            in_dim = hidden
        self.mlp = nn.Sequential(*blocks)
        self.out_dim = in_dim
        self.head = build_head(head, in_dim, n_outputs, pool)

    def encode(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, T', D_in) → (B, T', hidden), each frame from its ±context window only."""
        return self.mlp(splice(x, lengths, self.context))
