"""Recurrent zoo entries: front-end → packed RNN / LSTM / GRU (uni- or bidirectional) → head."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from asrkit.errors import InputError
from asrkit.models.frontend import build_frontend
from asrkit.models.heads import build_head
from asrkit.models.network import AcousticNet

CELLS = ("rnn", "lstm", "gru")


def _recurrent_layer(cell: str, in_dim: int, hidden: int, layers: int, bidirectional: bool, dropout: float, nonlinearity: str) -> nn.RNNBase:
    """nn.RNN / nn.GRU with `layers` layers (batch-first)."""
    kw = {"num_layers": layers, "batch_first": True, "bidirectional": bidirectional, "dropout": dropout if layers > 1 else 0.0}
    if cell == "rnn":
        return nn.RNN(in_dim, hidden, nonlinearity=nonlinearity, **kw)
    return nn.GRU(in_dim, hidden, **kw)


class ProjectedRecurrent(nn.Module):
    """Single-layer RNN/GRU modules, each followed by Linear(hidden·dirs → projection); nn.RNN-like API on packed input.

    Dropout goes between layers (after each projection but the last), as in the native stacked modules.
    """

    def __init__(
        self, cell: str, in_dim: int, hidden: int, layers: int, projection: int, bidirectional: bool, dropout: float, nonlinearity: str
    ):
        super().__init__()
        dirs = 2 if bidirectional else 1
        self.hidden_size, self.num_layers, self.bidirectional = hidden, layers, bidirectional
        self.layers = nn.ModuleList(
            _recurrent_layer(cell, in_dim if i == 0 else projection, hidden, 1, bidirectional, 0.0, nonlinearity) for i in range(layers)
        )
        self.proj = nn.ModuleList(nn.Linear(hidden * dirs, projection) for _ in range(layers))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: PackedSequence, hx: torch.Tensor | None = None) -> tuple[PackedSequence, torch.Tensor]:
        """Packed (·, in_dim) → packed (·, projection) and h_n (layers·dirs, B, hidden), like nn.GRU; `hx` alike."""
        dirs = 2 if self.bidirectional else 1
        states = []
        for i, (rnn, proj) in enumerate(zip(self.layers, self.proj)):
            y, h = rnn(x, None if hx is None else hx[i * dirs : (i + 1) * dirs])
            data = proj(y.data)  # the packed data holds valid frames only: padding never reaches the projection
            if i < self.num_layers - 1:
                data = self.dropout(data)
            x = PackedSequence(data, y.batch_sizes, y.sorted_indices, y.unsorted_indices)
            states.append(h)
        return x, torch.cat(states, 0)


class RecurrentModel(AcousticNet):
    """Front-end → (Bi)RNN/LSTM/GRU over packed sequences → dropout → head.

    State-dict keys: `frontend.*`, `rnn.*` (the torch module itself), `head.*`, as in older checkpoints.
    """

    def __init__(
        self,
        n_feats: int,
        n_outputs: int,
        cell: str = "lstm",
        bidirectional: bool = True,
        head: str = "ctc",
        pool: str = "mean",
        frontend: str = "conv",
        conv_channels: int = 32,
        cnn_blocks: int = 2,
        subsample: int = 2,
        hidden: int = 192,
        layers: int = 2,
        dropout: float = 0.1,
        projection: int = 0,
        nonlinearity: str = "tanh",
    ):
        super().__init__(head)
        if cell not in CELLS:
            raise InputError(f"unknown recurrent cell {cell!r}; choose one of: {', '.join(CELLS)}")
        if nonlinearity not in ("tanh", "relu"):
            raise InputError(f"nonlinearity must be tanh or relu, got {nonlinearity!r}")
        if projection < 0:
            raise InputError(f"projection must be >= 0, got {projection}")
        self.bidirectional = bidirectional
        self.cell = cell
        dirs = 2 if bidirectional else 1
        self.frontend = build_frontend(frontend, n_feats, hidden, subsample, conv_channels, cnn_blocks, dropout)
        in_dim = self.frontend.out_dim
        split, ends = None, False
        if cell == "lstm":
            if projection >= hidden:
                raise InputError(f"an LSTM projection must be smaller than hidden ({hidden}), got {projection}")
            drop = dropout if layers > 1 else 0.0
            self.rnn: nn.Module = nn.LSTM(
                in_dim, hidden, num_layers=layers, batch_first=True, bidirectional=bidirectional, dropout=drop, proj_size=projection
            )
            out_dim = (projection or hidden) * dirs
            split = out_dim // 2 if bidirectional else None
        elif projection:
            self.rnn = ProjectedRecurrent(cell, in_dim, hidden, layers, projection, bidirectional, dropout, nonlinearity)
            out_dim, ends = projection, bidirectional  # the projection mixes both directions
        else:
            self.rnn = _recurrent_layer(cell, in_dim, hidden, layers, bidirectional, dropout, nonlinearity)
            out_dim = hidden * dirs
            split = hidden if bidirectional else None
        self.out_dim = out_dim
        self.dropout = nn.Dropout(dropout)
        self.head = build_head(head, out_dim, n_outputs, pool, split, ends)

    def run_rnn(self, x: torch.Tensor, lengths: torch.Tensor, state: object | None = None) -> tuple[torch.Tensor, object]:
        """(B, T', D_in) front-end frames → ((B, T', D) outputs, final state); `state` seeds the recurrence (streaming, issue 9)."""
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        y, final = self.rnn(packed, state)
        y, _ = pad_packed_sequence(y, batch_first=True, total_length=x.shape[1])
        return y, final

    def encode(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, T', D_in) → (B, T', D) recurrent outputs (zero on padding), dropout applied."""
        return self.dropout(self.run_rnn(x, lengths)[0])
