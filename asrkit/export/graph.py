"""Export-only stand-ins for modules the ONNX exporter lacks: a projected LSTM as an ONNX Loop."""

from __future__ import annotations

import copy
import warnings
from functools import lru_cache

import torch
from torch import Tensor, nn


def _projected_lstm(x: Tensor, w_ih: Tensor, w_hh: Tensor, b: Tensor, w_hr: Tensor) -> Tensor:
    """One batch-first LSTM layer with proj_size, zero initial state: (B, T, D) → (B, T, P), as nn.LSTM computes it."""
    xw = torch.matmul(x, w_ih.t()) + b
    batch = x.size(0)
    h = torch.zeros(batch, w_hr.size(0), dtype=x.dtype)
    c = torch.zeros(batch, w_hh.size(0) // 4, dtype=x.dtype)
    outs: list[Tensor] = []
    for t in range(x.size(1)):
        gates = xw[:, t] + torch.matmul(h, w_hh.t())
        i, f, g, o = gates.chunk(4, 1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.matmul(torch.sigmoid(o) * torch.tanh(c), w_hr.t())
        outs.append(h)
    return torch.stack(outs, 1)


@lru_cache(maxsize=1)
def _scripted():
    """`_projected_lstm` scripted, so that tracing keeps its time loop (an ONNX Loop over the dynamic T)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated in favour of torch.export
        return torch.jit.script(_projected_lstm)


class ProjectedLSTM(nn.Module):
    """Stands in for a single-layer, unidirectional, batch-first nn.LSTM with proj_size > 0 (same weights)."""

    def __init__(self, lstm: nn.LSTM):
        super().__init__()
        if lstm.num_layers != 1 or lstm.bidirectional or not lstm.batch_first or not lstm.bias:
            raise ValueError("ProjectedLSTM replaces single-layer, unidirectional, batch-first LSTMs with biases")
        self.lstm = lstm

    def forward(self, x: Tensor, h0: object = None) -> tuple[Tensor, None]:
        """(B, T, D) → ((B, T, P), no final state): the exported graphs use the outputs only."""
        if h0 is not None:
            raise ValueError("ProjectedLSTM starts from the zero state only")
        m = self.lstm
        return _scripted()(x, m.weight_ih_l0, m.weight_hh_l0, m.bias_ih_l0 + m.bias_hh_l0, m.weight_hr_l0), None


def onnx_ready(model: nn.Module) -> nn.Module:
    """`model`, or a copy with every projected nn.LSTM replaced by `ProjectedLSTM` (torch's ONNX LSTM has no proj_size)."""
    if not any(isinstance(m, nn.LSTM) and m.proj_size > 0 for m in model.modules()):
        return model
    model = copy.deepcopy(model)
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.LSTM) and child.proj_size > 0:
                setattr(parent, name, ProjectedLSTM(child))
    return model
