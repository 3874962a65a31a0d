"""GRU character predictor in plain NumPy: one GRUCell followed by a linear projection to class logits, and an
inference loop that unrolls it over a sequence (forward pass only)."""

from __future__ import annotations

import numpy as np

from asrkit.reference.gru_cell import GRUCell
from asrkit.reference.linear import Linear


class CharacterPredictor:
    """GRUCell(input_dim, hidden_dim) and projection Linear(hidden_dim, num_classes)."""

    def __init__(self, input_dim: int, hidden_dim: int, num_classes: int, rng: np.random.Generator | None = None):
        rng = rng if rng is not None else np.random.default_rng()
        self.input_dim = input_dim
        self.hidden_dim = hidden_dim
        self.num_classes = num_classes
        self.rnn = GRUCell(input_dim, hidden_dim, rng=rng)
        self.projection = Linear(hidden_dim, num_classes, rng=rng)

    def init_rnn_weights(
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
        """Set the GRU cell's weights (same order as GRUCell.init_weights)."""
        self.rnn.init_weights(Wrx, Wzx, Wnx, Wrh, Wzh, Wnh, brx, bzx, bnx, brh, bzh, bnh)

    def init_projection_weights(self, W: np.ndarray, b: np.ndarray) -> None:
        """Set the projection's weight (num_classes, hidden_dim) and bias (num_classes,)."""
        self.projection.init_weights(W, b)

    def forward(self, x: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One step: x (D,) or (B, D), h (H,) or (B, H) -> (logits (C,) or (B, C), next hidden state)."""
        h_next = self.rnn.forward(x, h)
        return self.projection.forward(h_next), h_next


def inference(net: CharacterPredictor, inputs: np.ndarray) -> np.ndarray:
    """Unroll net over inputs (T, D) from a zero hidden state; return the logits of every step (T, num_classes)."""
    inputs = np.asarray(inputs, dtype=np.float64)
    h = np.zeros(net.hidden_dim)
    logits = np.empty((inputs.shape[0], net.num_classes))
    for t in range(inputs.shape[0]):
        logits[t], h = net.forward(inputs[t], h)
    return logits
