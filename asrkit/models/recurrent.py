"""Recurrent CTC acoustic models: conv front-end + (Bi)LSTM + linear over tokens."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from asrkit.models.frontend import ConvSubsample, StackSubsample


class RecurrentCTC(nn.Module):
    """(B, T, F) features → (B, T', V) log-probabilities and T' lengths."""

    def __init__(
        self,
        n_feats: int,
        n_tokens: int,
        conv_channels: int = 32,
        subsample: int = 2,
        hidden: int = 192,
        layers: int = 2,
        dropout: float = 0.1,
        bidirectional: bool = True,
        frontend: str = "conv",
    ):
        super().__init__()
        if frontend == "stack":
            self.frontend = StackSubsample(n_feats, hidden, subsample)
        else:
            self.frontend = ConvSubsample(n_feats, conv_channels, hidden, subsample)
        self.rnn = nn.LSTM(
            hidden, hidden, num_layers=layers, batch_first=True, bidirectional=bidirectional, dropout=dropout if layers > 1 else 0.0
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden * (2 if bidirectional else 1), n_tokens)

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return self.frontend.output_lengths(lengths)

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, out_len = self.frontend(feats, lengths)
        packed = pack_padded_sequence(x, out_len.cpu(), batch_first=True, enforce_sorted=False)
        y, _ = self.rnn(packed)
        y, _ = pad_packed_sequence(y, batch_first=True, total_length=x.shape[1])
        return self.head(self.dropout(y)).log_softmax(-1), out_len
