"""Elman RNN cell in plain NumPy, matching torch.nn.RNNCell (tanh or relu).

Shapes: x (B, N_i), h (B, N_h), W_ih (N_h, N_i), W_hh (N_h, N_h), b_ih and b_hh (N_h,).
"""

from __future__ import annotations

import numpy as np


class RNNCell:
    """One Elman RNN cell: h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh), act = tanh or relu."""

    def __init__(
        self, input_size: int, hidden_size: int, nonlinearity: str = "tanh", rng: np.random.Generator | None = None
    ):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.nonlinearity = nonlinearity
        # torch's default initialisation: every parameter uniform in [-1/sqrt(N_h), 1/sqrt(N_h)]
        rng = rng if rng is not None else np.random.default_rng()
        k = 1.0 / np.sqrt(hidden_size)
        self.W_ih = rng.uniform(-k, k, (hidden_size, input_size))
        self.W_hh = rng.uniform(-k, k, (hidden_size, hidden_size))
        self.b_ih = rng.uniform(-k, k, hidden_size)
        self.b_hh = rng.uniform(-k, k, hidden_size)
        self.zero_grad()

    def init_weights(self, W_ih: np.ndarray, W_hh: np.ndarray, b_ih: np.ndarray, b_hh: np.ndarray) -> None:
        """Replace the weights and biases (copied as float64)."""
        self.W_ih = np.array(W_ih, dtype=np.float64)
        self.W_hh = np.array(W_hh, dtype=np.float64)
        self.b_ih = np.array(b_ih, dtype=np.float64)
        self.b_hh = np.array(b_hh, dtype=np.float64)

    def zero_grad(self) -> None:
        """Reset the accumulated gradients to zero."""
        self.dW_ih = np.zeros((self.hidden_size, self.input_size))
        self.dW_hh = np.zeros((self.hidden_size, self.hidden_size))
        self.db_ih = np.zeros(self.hidden_size)
        self.db_hh = np.zeros(self.hidden_size)

    def _act(self, a: np.ndarray) -> np.ndarray:
        return np.tanh(a) if self.nonlinearity == "tanh" else np.maximum(a, 0.0)

    def _act_grad(self, h: np.ndarray) -> np.ndarray:
        # written in terms of the output h = act(a): tanh'(a) = 1 - h^2, relu'(a) = [h > 0]
        return 1.0 - h * h if self.nonlinearity == "tanh" else (h > 0).astype(h.dtype)

    def forward(self, x: np.ndarray, h_prev_t: np.ndarray) -> np.ndarray:
        """h_t (B, N_h) from x (B, N_i) and h_prev_t (B, N_h); stores nothing."""
        # rows are batch items, so W x becomes x W^T
        return self._act(x @ self.W_ih.T + self.b_ih + h_prev_t @ self.W_hh.T + self.b_hh)

    def backward(
        self, delta: np.ndarray, h_t: np.ndarray, h_prev_l: np.ndarray, h_prev_t: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Add batch-averaged weight/bias gradients; return (dx, dh_prev_t), which are not averaged."""
        batch = delta.shape[0]
        # dL/da = dL/dh_t * act'(a), a the pre-activation
        dz = delta * self._act_grad(h_t)
        # dL/dW_ih = sum_b dz_b x_b^T, averaged over the batch; likewise for the other parameters
        self.dW_ih += dz.T @ h_prev_l / batch
        self.dW_hh += dz.T @ h_prev_t / batch
        self.db_ih += dz.sum(axis=0) / batch
        self.db_hh += dz.sum(axis=0) / batch
        # dL/dx = dz W_ih, dL/dh_{t-1} = dz W_hh (per batch item)
        dx = dz @ self.W_ih
        dh_prev_t = dz @ self.W_hh
        return dx, dh_prev_t
