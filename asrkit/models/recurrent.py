"""Recurrent zoo entries: front-end → RNN / LSTM / GRU (uni- or bidirectional, padding-exact) → head."""

from __future__ import annotations

import re

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from asrkit.errors import InputError
import asrkit.models.gru_kernel as gru_kernel
from asrkit.models.frontend import build_frontend
from asrkit.models.heads import build_head
from asrkit.models.network import AcousticNet, Dropout

CELLS = ("rnn", "lstm", "gru")


def _cell(cell: str, in_dim: int, hidden: int, nonlinearity: str, proj_size: int = 0) -> nn.RNNBase:
    """One unidirectional, single-layer, batch-first nn.RNN / nn.LSTM / nn.GRU."""
    if cell == "rnn":
        return nn.RNN(in_dim, hidden, nonlinearity=nonlinearity, batch_first=True)
    if cell == "lstm":
        return nn.LSTM(in_dim, hidden, batch_first=True, proj_size=proj_size)
    return nn.GRU(in_dim, hidden, batch_first=True)


def reverse_within(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each sequence's first `lengths[b]` frames in place of the batch; padding stays at the end."""
    b, t = x.shape[:2]
    steps = torch.arange(t, device=x.device)[None, :]
    idx = lengths.to(x.device)[:, None] - 1 - steps
    idx = torch.where(idx >= 0, idx, steps) + t * torch.arange(b, device=x.device)[:, None]
    # whole rows of a flat view: index_select (and its index_add backward) beats an element-wise gather
    return x.reshape(b * t, -1).index_select(0, idx.reshape(-1)).reshape(x.shape)


class StackedRecurrent(nn.Module):
    """Stacked uni- or bidirectional RNN/LSTM/GRU, one module per layer and direction.

    Runs on padded batches: the forward direction is causal, so trailing padding never reaches a valid frame,
    and the backward direction runs on each utterance reversed within its own length. That keeps every valid
    output independent of the padding, like packed sequences, at the speed of plain tensors (on CPU, PyTorch's
    packed LSTM is 2-6x slower: bench/results/train.json). `exact_state=True` runs packed instead, so that the
    final states are each utterance's state at its last valid frame (streaming, pooling tests).
    `projection` > 0: LSTM via its native proj_size; RNN/GRU via a Linear over both directions after each layer.
    """

    def __init__(
        self,
        cell: str,
        in_dim: int,
        hidden: int,
        layers: int,
        bidirectional: bool,
        dropout: float,
        nonlinearity: str,
        projection: int = 0,
    ):
        super().__init__()
        self.cell, self.hidden_size, self.num_layers, self.bidirectional = cell, hidden, layers, bidirectional
        self.nonlinearity = nonlinearity
        dirs = 2 if bidirectional else 1
        lstm_proj = projection if cell == "lstm" else 0
        step_out = lstm_proj or hidden
        self.fwd, self.bwd, self.proj = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        d = in_dim
        for _ in range(layers):
            self.fwd.append(_cell(cell, d, hidden, nonlinearity, lstm_proj))
            if bidirectional:
                self.bwd.append(_cell(cell, d, hidden, nonlinearity, lstm_proj))
            d = step_out * dirs
            if projection and cell != "lstm":
                self.proj.append(nn.Linear(d, projection))
                d = projection
        self.out_dim = d
        self.dropout = Dropout(dropout)
        self._register_load_state_dict_pre_hook(_rename_stacked_keys)

    def forward(
        self, x: torch.Tensor, lengths: torch.Tensor, state: list | None = None, exact_state: bool = False
    ) -> tuple[torch.Tensor, list]:
        """(B, T, D_in) → ((B, T, out_dim), final states per layer and direction); `state` seeds the recurrence."""
        finals: list = []
        for i in range(self.num_layers):
            mods = [self.fwd[i]] + ([self.bwd[i]] if self.bidirectional else [])
            outs = []
            for k, mod in enumerate(mods):
                h0 = None if state is None else state[i * len(mods) + k]
                inp = reverse_within(x, lengths) if k == 1 else x
                y, h = _run(mod, inp, lengths, h0, exact_state)
                outs.append(reverse_within(y, lengths) if k == 1 else y)
                finals.append(h)
            x = torch.cat(outs, -1) if len(outs) > 1 else outs[0]
            if self.proj:
                x = self.proj[i](x)
            if i < self.num_layers - 1:
                x = self.dropout(x)
        return x, finals


def _run(
    mod: nn.RNNBase, x: torch.Tensor, lengths: torch.Tensor, h0: object, packed: bool
) -> tuple[torch.Tensor, object]:
    if not packed:
        if gru_kernel.usable(x, mod):
            return gru_kernel.fused_gru(mod, x, h0)
        return mod(x, h0)
    p = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
    y, h = mod(p, h0)
    return pad_packed_sequence(y, batch_first=True, total_length=x.shape[1])[0], h


_OLD_KEY = re.compile(r"^(weight_ih|weight_hh|bias_ih|bias_hh|weight_hr)_l(\d+)(_reverse)?$")


def _rename_stacked_keys(state_dict: dict, prefix: str, *args) -> None:
    """Checkpoints written before StackedRecurrent hold one nn.LSTM's keys (weight_ih_l1_reverse, ...): map them."""
    for key in [k for k in state_dict if k.startswith(prefix)]:
        m = _OLD_KEY.match(key[len(prefix) :])
        if m:
            name, layer, rev = m.groups()
            state_dict[f"{prefix}{'bwd' if rev else 'fwd'}.{layer}.{name}_l0"] = state_dict.pop(key)


class RecurrentModel(AcousticNet):
    """Front-end → (Bi)RNN/LSTM/GRU → dropout → head; valid outputs never depend on the batch's padding.

    State-dict keys: `frontend.*`, `rnn.{fwd,bwd}.<layer>.*` (+ `rnn.proj.*`), `head.*`; older checkpoints'
    single-nn.LSTM keys (`rnn.weight_ih_l0_reverse`, ...) are mapped on load.
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
        self.frontend = build_frontend(frontend, n_feats, hidden, subsample, conv_channels, cnn_blocks, dropout)
        in_dim = self.frontend.out_dim
        if cell == "lstm" and projection >= hidden:
            raise InputError(f"an LSTM projection must be smaller than hidden ({hidden}), got {projection}")
        self.rnn = StackedRecurrent(cell, in_dim, hidden, layers, bidirectional, dropout, nonlinearity, projection)
        out_dim = self.rnn.out_dim
        mixed = bool(projection) and cell != "lstm"  # a projection over both directions mixes them
        split = out_dim // 2 if bidirectional and not mixed else None
        ends = bidirectional and mixed
        self.out_dim = out_dim
        self.dropout = Dropout(dropout)
        self.head = build_head(head, out_dim, n_outputs, pool, split, ends)

    def run_rnn(self, x: torch.Tensor, lengths: torch.Tensor, state: list | None = None) -> tuple[torch.Tensor, list]:
        """(B, T', D_in) front-end frames → ((B, T', D) outputs, final states at each utterance's last valid frame).

        `state` (a previous call's final states) seeds the recurrence: what streaming uses (asrkit.stream).
        """
        return self.rnn(x, lengths, state, exact_state=True)

    def encode(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, T', D_in) → (B, T', D) recurrent outputs (unspecified on padding), dropout applied."""
        return self.dropout(self.rnn(x, lengths)[0])
