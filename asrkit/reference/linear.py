"""Fully connected layer in plain NumPy, matching torch.nn.Linear: y = x W^T + b, W of shape (out, in)."""

from __future__ import annotations

import numpy as np


class Linear:
    """Affine map over the last axis; backward accumulates batch-averaged dW, db like the recurrent cells do."""

    def __init__(self, in_features: int, out_features: int, rng: np.random.Generator | None = None):
        self.in_features = in_features
        self.out_features = out_features
        rng = rng if rng is not None else np.random.default_rng()
        k = 1.0 / np.sqrt(in_features)  # torch's default bound
        self.W = rng.uniform(-k, k, (out_features, in_features))
        self.b = rng.uniform(-k, k, out_features)
        self.zero_grad()

    def init_weights(self, W: np.ndarray, b: np.ndarray) -> None:
        """Replace the weight (out, in) and bias (out,), copied as float64."""
        self.W = np.array(W, dtype=np.float64)
        self.b = np.array(b, dtype=np.float64)

    def zero_grad(self) -> None:
        self.dW = np.zeros_like(self.W)
        self.db = np.zeros_like(self.b)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """y = x W^T + b for x of shape (..., in); remembers x for backward."""
        self.x = np.asarray(x, dtype=np.float64)
        return self.x @ self.W.T + self.b

    def backward(self, delta: np.ndarray) -> np.ndarray:
        """Add dW, db averaged over the batch (first axis) from delta = dL/dy (B, out); return dL/dx (not averaged)."""
        delta = np.atleast_2d(delta)
        x = np.atleast_2d(self.x)
        batch = delta.shape[0]
        self.dW += delta.T @ x / batch
        self.db += delta.sum(axis=0) / batch
        return delta @ self.W
