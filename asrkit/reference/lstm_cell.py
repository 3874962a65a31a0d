"""LSTM cell in plain NumPy, matching torch.nn.LSTMCell.

    i = sigmoid(Wix x + bix + Wih h + bih)      input gate
    f = sigmoid(Wfx x + bfx + Wfh h + bfh)      forget gate
    g = tanh(Wgx x + bgx + Wgh h + bgh)         candidate cell
    o = sigmoid(Wox x + box + Woh h + boh)      output gate
    c' = f * c + i * g
    h' = o * tanh(c')

torch stacks the gates as rows [i, f, g, o] of weight_ih (4H, D) and weight_hh (4H, H). Here "Wih" is the
input gate's weight on h (the GRU cell's naming), not torch's weight_ih. forward takes one example or a batch;
weight and bias gradients are accumulated and averaged over the batch, dx, dh_prev_t and dc_prev_t are not.
"""

from __future__ import annotations

import numpy as np

_GATES = ("i", "f", "g", "o")
# Wix, Wfx, Wgx, Wox, Wih, Wfh, Wgh, Woh, bix, ..., box, bih, ..., boh
_PARAMS = tuple(f"{kind}{g}{src}" for kind, src in (("W", "x"), ("W", "h"), ("b", "x"), ("b", "h")) for g in _GATES)


def _sigmoid(a: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-a))


class LSTMCell:
    """One LSTM cell with torch.nn.LSTMCell's equations; parameters W{i,f,g,o}{x,h} and b{i,f,g,o}{x,h}."""

    def __init__(self, in_dim: int, hidden_dim: int, rng: np.random.Generator | None = None):
        self.d = in_dim
        self.h = hidden_dim
        rng = rng if rng is not None else np.random.default_rng()
        k = 1.0 / np.sqrt(hidden_dim)  # torch's default initialisation
        shapes = {"x": (hidden_dim, in_dim), "h": (hidden_dim, hidden_dim)}
        params = {}
        for name in _PARAMS:
            params[name] = rng.uniform(-k, k, shapes[name[2]] if name[0] == "W" else (hidden_dim,))
        self.init_weights(**params)
        self.zero_grad()

    def init_weights(self, **params: np.ndarray) -> None:
        """Replace parameters by name (Wix, Wfx, Wgx, Wox, Wih, Wfh, Wgh, Woh, bix, ..., boh), copied as float64."""
        for name, value in params.items():
            if name not in _PARAMS:
                raise ValueError(f"unknown LSTM parameter {name!r}")
            setattr(self, name, np.array(value, dtype=np.float64))

    def init_weights_torch(
        self, weight_ih: np.ndarray, weight_hh: np.ndarray, bias_ih: np.ndarray, bias_hh: np.ndarray
    ) -> None:
        """Replace all parameters from torch's stacked layout (gate rows in the order i, f, g, o)."""
        H = self.h
        for k, g in enumerate(_GATES):
            rows = slice(k * H, (k + 1) * H)
            self.init_weights(
                **{
                    f"W{g}x": weight_ih[rows],
                    f"W{g}h": weight_hh[rows],
                    f"b{g}x": bias_ih[rows],
                    f"b{g}h": bias_hh[rows],
                }
            )

    def zero_grad(self) -> None:
        """Reset the sixteen parameter gradients to zero."""
        for name in _PARAMS:
            setattr(self, "d" + name, np.zeros_like(getattr(self, name)))

    def _pre(self, g: str, x2: np.ndarray, h2: np.ndarray) -> np.ndarray:
        # pre-activation of gate g: W_gx x + b_gx + W_gh h + b_gh, batch items as rows
        return (
            x2 @ getattr(self, f"W{g}x").T
            + getattr(self, f"b{g}x")
            + h2 @ getattr(self, f"W{g}h").T
            + getattr(self, f"b{g}h")
        )

    def forward(self, x: np.ndarray, h_prev_t: np.ndarray, c_prev_t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(h_t, c_t) from x, h_prev_t and c_prev_t (one example or a batch); stores what backward needs."""
        self.x = np.asarray(x, dtype=np.float64)
        self.hidden = np.asarray(h_prev_t, dtype=np.float64)
        self.cell = np.asarray(c_prev_t, dtype=np.float64)
        x2, h2, c2 = np.atleast_2d(self.x), np.atleast_2d(self.hidden), np.atleast_2d(self.cell)
        self.i = _sigmoid(self._pre("i", x2, h2))
        self.f = _sigmoid(self._pre("f", x2, h2))
        self.g = np.tanh(self._pre("g", x2, h2))
        self.o = _sigmoid(self._pre("o", x2, h2))
        c_t = self.f * c2 + self.i * self.g
        self.tanh_c = np.tanh(c_t)
        h_t = self.o * self.tanh_c
        if self.x.ndim == 1:
            return h_t.reshape(-1), c_t.reshape(-1)
        return h_t, c_t

    def backward(
        self, delta_h: np.ndarray, delta_c: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Accumulate parameter gradients from dL/dh_t (and dL/dc_t if given); return (dx, dh_prev_t, dc_prev_t)."""
        dh = np.atleast_2d(np.asarray(delta_h, dtype=np.float64))
        dc = np.zeros_like(dh) if delta_c is None else np.atleast_2d(np.asarray(delta_c, dtype=np.float64))
        x2, h2, c2 = np.atleast_2d(self.x), np.atleast_2d(self.hidden), np.atleast_2d(self.cell)
        batch = dh.shape[0]
        # h' = o tanh(c')  =>  dL/do = dh tanh(c'), and c' also receives dh o (1 - tanh(c')^2)
        do = dh * self.tanh_c
        dc = dc + dh * self.o * (1.0 - self.tanh_c**2)
        # c' = f c + i g
        di, df, dg = dc * self.g, dc * c2, dc * self.i
        dc_prev_t = dc * self.f
        # through the gate nonlinearities (sigmoid' = s (1 - s), tanh' = 1 - t^2)
        da = {
            "i": di * self.i * (1.0 - self.i),
            "f": df * self.f * (1.0 - self.f),
            "g": dg * (1.0 - self.g**2),
            "o": do * self.o * (1.0 - self.o),
        }
        dx = np.zeros_like(x2)
        dh_prev_t = np.zeros_like(h2)
        for g, a in da.items():
            # parameters: dL/dW = sum_b da_b input_b^T / B, dL/db = sum_b da_b / B
            getattr(self, f"dW{g}x")[...] += a.T @ x2 / batch
            getattr(self, f"dW{g}h")[...] += a.T @ h2 / batch
            getattr(self, f"db{g}x")[...] += a.sum(axis=0) / batch
            getattr(self, f"db{g}h")[...] += a.sum(axis=0) / batch
            dx += a @ getattr(self, f"W{g}x")
            dh_prev_t += a @ getattr(self, f"W{g}h")
        if self.x.ndim == 1:
            return dx.reshape(-1), dh_prev_t.reshape(-1), dc_prev_t.reshape(-1)
        return dx, dh_prev_t, dc_prev_t
