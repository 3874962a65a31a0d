"""GRU cell in plain NumPy, matching torch.nn.GRUCell.

    r = sigmoid(Wrx x + brx + Wrh h + brh)
    z = sigmoid(Wzx x + bzx + Wzh h + bzh)
    n = tanh(Wnx x + bnx + r * (Wnh h + bnh))
    h' = (1 - z) * n + z * h

torch stacks the gates as rows [r, z, n] of weight_ih (3H, D) and weight_hh (3H, H). forward takes one
example (x of shape (D,), h of shape (H,)) as the course handout does, or a batch ((B, D), (B, H)); weight and
bias gradients are accumulated and averaged over the batch (a single example is a batch of one), dx and
dh_prev_t are not averaged.
"""

from __future__ import annotations

import numpy as np


def _sigmoid(a: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-a))


class GRUCell:
    """One GRU cell with torch.nn.GRUCell's equations and the course's parameter names."""

    def __init__(self, in_dim: int, hidden_dim: int, rng: np.random.Generator | None = None):
        self.d = in_dim
        self.h = hidden_dim
        rng = rng if rng is not None else np.random.default_rng()
        k = 1.0 / np.sqrt(hidden_dim)

        def u(*shape: int) -> np.ndarray:  # torch's default initialisation
            return rng.uniform(-k, k, shape)

        self.init_weights(
            u(hidden_dim, in_dim),
            u(hidden_dim, in_dim),
            u(hidden_dim, in_dim),
            u(hidden_dim, hidden_dim),
            u(hidden_dim, hidden_dim),
            u(hidden_dim, hidden_dim),
            u(hidden_dim),
            u(hidden_dim),
            u(hidden_dim),
            u(hidden_dim),
            u(hidden_dim),
            u(hidden_dim),
        )
        self.zero_grad()

    def init_weights(
        self,
        Wrx: np.ndarray,
        Wzx: np.ndarray,
        Wnx: np.ndarray,
        Wrh: np.ndarray,
        Wzh: np.ndarray,
        Wnh: np.ndarray,
        brx: np.ndarray,
        bzx: np.ndarray,
        bnx: np.ndarray,
        brh: np.ndarray,
        bzh: np.ndarray,
        bnh: np.ndarray,
    ) -> None:
        """Replace the six weight matrices and six biases (copied as float64)."""

        def f(a: np.ndarray) -> np.ndarray:
            return np.array(a, dtype=np.float64)

        self.Wrx, self.Wzx, self.Wnx = f(Wrx), f(Wzx), f(Wnx)
        self.Wrh, self.Wzh, self.Wnh = f(Wrh), f(Wzh), f(Wnh)
        self.brx, self.bzx, self.bnx = f(brx), f(bzx), f(bnx)
        self.brh, self.bzh, self.bnh = f(brh), f(bzh), f(bnh)

    def zero_grad(self) -> None:
        """Reset the twelve parameter gradients to zero."""
        for name in ("Wrx", "Wzx", "Wnx", "Wrh", "Wzh", "Wnh", "brx", "bzx", "bnx", "brh", "bzh", "bnh"):
            setattr(self, "d" + name, np.zeros_like(getattr(self, name)))

    def forward(self, x: np.ndarray, h_prev_t: np.ndarray) -> np.ndarray:
        """h_t from x and h_prev_t (one example or a batch); stores what backward needs."""
        self.x = np.asarray(x, dtype=np.float64)
        self.hidden = np.asarray(h_prev_t, dtype=np.float64)
        x2, h2 = np.atleast_2d(self.x), np.atleast_2d(self.hidden)
        self.r = _sigmoid(x2 @ self.Wrx.T + self.brx + h2 @ self.Wrh.T + self.brh)
        self.z = _sigmoid(x2 @ self.Wzx.T + self.bzx + h2 @ self.Wzh.T + self.bzh)
        self.nh = h2 @ self.Wnh.T + self.bnh  # Wnh h + bnh, the part that r gates
        self.n = np.tanh(x2 @ self.Wnx.T + self.bnx + self.r * self.nh)
        h_t = (1.0 - self.z) * self.n + self.z * h2
        return h_t.reshape(-1) if self.x.ndim == 1 else h_t

    def backward(self, delta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Accumulate the twelve parameter gradients from delta = dL/dh_t; return (dx, dh_prev_t)."""
        delta = np.atleast_2d(np.asarray(delta, dtype=np.float64))
        x2, h2 = np.atleast_2d(self.x), np.atleast_2d(self.hidden)
        batch = delta.shape[0]
        # h' = (1 - z) n + z h  =>  dL/dz = delta (h - n), dL/dn = delta (1 - z)
        dz = delta * (h2 - self.n)
        dn = delta * (1.0 - self.z)
        # through the nonlinearities: a_n = pre-tanh of n, a_z and a_r = pre-sigmoid of z and r
        dan = dn * (1.0 - self.n**2)
        daz = dz * self.z * (1.0 - self.z)
        dr = dan * self.nh  # a_n contains r * (Wnh h + bnh)
        dar = dr * self.r * (1.0 - self.r)
        dnh = dan * self.r  # gradient reaching (Wnh h + bnh)
        # parameters: dL/dW = sum_b da_b input_b^T / B, dL/db = sum_b da_b / B
        self.dWrx += dar.T @ x2 / batch
        self.dWzx += daz.T @ x2 / batch
        self.dWnx += dan.T @ x2 / batch
        self.dWrh += dar.T @ h2 / batch
        self.dWzh += daz.T @ h2 / batch
        self.dWnh += dnh.T @ h2 / batch
        self.dbrx += dar.sum(axis=0) / batch
        self.dbzx += daz.sum(axis=0) / batch
        self.dbnx += dan.sum(axis=0) / batch
        self.dbrh += dar.sum(axis=0) / batch
        self.dbzh += daz.sum(axis=0) / batch
        self.dbnh += dnh.sum(axis=0) / batch
        # inputs: x feeds r, z, n; h feeds r, z, the gated part of n, and h' directly through z * h
        dx = dar @ self.Wrx + daz @ self.Wzx + dan @ self.Wnx
        dh_prev_t = delta * self.z + dar @ self.Wrh + daz @ self.Wzh + dnh @ self.Wnh
        if self.x.ndim == 1:
            return dx.reshape(-1), dh_prev_t.reshape(-1)
        return dx, dh_prev_t
