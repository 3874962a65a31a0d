"""Multi-layer Elman RNN classifier in plain NumPy: a stack of RNNCells unrolled over time, then a linear layer
on the top layer's last hidden state (the course's RNN phoneme classifier).

Shapes: x (B, T, D), h_0 (L, B, H), logits (B, C). Gradient conventions follow RNNCell: every parameter
gradient, and dh_0 (the initial hidden states count as parameters), is the gradient of the batch-summed loss
divided by B; i.e. for a loss sum_b l_b the result is the gradient of mean_b l_b.

Variable lengths: with `lengths` (B,), sequence b uses only its first lengths[b] steps. Past its end a
sequence's hidden states are carried forward unchanged, so the final state is its own last step's, and the
padded positions get no gradient and add nothing to any gradient; what is in the padding is never read.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from asrkit.reference.linear import Linear
from asrkit.reference.rnn_cell import RNNCell


class RNNClassifier:
    """num_layers stacked RNNCells (tanh) and an output Linear(hidden_size, output_size)."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        output_size: int,
        num_layers: int = 2,
        rng: np.random.Generator | None = None,
    ):
        if num_layers < 1:
            raise ValueError(f"num_layers must be at least 1, got {num_layers}")
        rng = rng if rng is not None else np.random.default_rng()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.output_size = output_size
        self.num_layers = num_layers
        self.rnn = [RNNCell(input_size if i == 0 else hidden_size, hidden_size, rng=rng) for i in range(num_layers)]
        self.output_layer = Linear(hidden_size, output_size, rng=rng)
        self.hiddens: list[np.ndarray] = []

    # the output layer's parameters under the names the spec uses
    @property
    def W(self) -> np.ndarray:
        return self.output_layer.W

    @property
    def b(self) -> np.ndarray:
        return self.output_layer.b

    @property
    def dW(self) -> np.ndarray:
        return self.output_layer.dW

    @property
    def db(self) -> np.ndarray:
        return self.output_layer.db

    def init_weights(self, rnn_weights: Sequence[Sequence[np.ndarray]], linear_weights: Sequence[np.ndarray]) -> None:
        """rnn_weights: per layer [W_ih, W_hh, b_ih, b_hh] (torch's shapes); linear_weights: [W (C, H), b (C,)]."""
        if len(rnn_weights) != self.num_layers:
            raise ValueError(f"expected weights for {self.num_layers} layers, got {len(rnn_weights)}")
        for cell, weights in zip(self.rnn, rnn_weights):
            cell.init_weights(*weights)
        self.output_layer.init_weights(*linear_weights)

    def zero_grad(self) -> None:
        for cell in self.rnn:
            cell.zero_grad()
        self.output_layer.zero_grad()

    def forward(
        self, x: np.ndarray, h_0: np.ndarray | None = None, lengths: Sequence[int] | np.ndarray | None = None
    ) -> np.ndarray:
        """Logits (B, output_size) from each sequence's last step of the top layer; stores the hidden states."""
        x = np.asarray(x, dtype=np.float64)
        batch, seq_len, _ = x.shape
        if lengths is None:
            lengths = np.full(batch, seq_len)
        lengths = np.asarray(lengths, dtype=np.int64)
        if lengths.shape != (batch,) or lengths.min() < 1 or lengths.max() > seq_len:
            raise ValueError(f"lengths must be {batch} values in [1, {seq_len}], got {lengths}")
        # mask[b, t]: step t is inside sequence b. Padding is replaced by zeros so it can never leak (not even NaN).
        self.mask = np.arange(seq_len)[None, :] < lengths[:, None]
        self.x = np.where(self.mask[:, :, None], x, 0.0)
        if h_0 is None:
            h_0 = np.zeros((self.num_layers, batch, self.hidden_size))
        h = np.array(h_0, dtype=np.float64)
        # hiddens[t] (L, B, H) is the state after t steps; hiddens[0] = h_0
        self.hiddens = [h.copy()]
        for t in range(seq_len):
            active = self.mask[:, t, None]
            below = self.x[:, t]
            for layer, cell in enumerate(self.rnn):
                h[layer] = np.where(active, cell.forward(below, h[layer]), h[layer])
                below = h[layer]
            self.hiddens.append(h.copy())
        return self.output_layer.forward(h[-1])

    def backward(self, delta: np.ndarray) -> np.ndarray:
        """Backpropagate delta = dL/dlogits (B, C) through time and layers; return dh_0 (L, B, H) averaged over B."""
        batch, seq_len = self.mask.shape
        # dh[layer] = dL/d(state of that layer at the current step)
        dh = np.zeros((self.num_layers, batch, self.hidden_size))
        dh[-1] = self.output_layer.backward(delta)
        for t in range(seq_len - 1, -1, -1):
            active = self.mask[:, t, None]
            for layer in range(self.num_layers - 1, -1, -1):
                h_t = self.hiddens[t + 1][layer]
                h_prev_t = self.hiddens[t][layer]
                h_prev_l = self.x[:, t] if layer == 0 else self.hiddens[t + 1][layer - 1]
                # a finished sequence only carried its state through this step: no parameter gradient, and the
                # gradient passes to step t-1 unchanged
                dx, dh_prev_t = self.rnn[layer].backward(np.where(active, dh[layer], 0.0), h_t, h_prev_l, h_prev_t)
                dh[layer] = np.where(active, dh_prev_t, dh[layer])
                if layer > 0:
                    dh[layer - 1] += dx  # zero where inactive
        # the initial hidden states are treated as parameters, so averaged over the batch like the weights
        return dh / batch
