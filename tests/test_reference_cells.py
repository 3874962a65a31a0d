"""The NumPy reference recurrent cells against torch.nn.RNNCell / GRUCell / LSTMCell in float64.

Batch-averaging convention: the reference cells accumulate weight and bias gradients averaged over the batch,
but return dx, dh_prev (and dc_prev) per example, not averaged. So torch's loss is L = sum(h * delta) / B: its
parameter gradients equal ours, and its input gradients are ours divided by B.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from asrkit.reference import GRUCell, LSTMCell, RNNCell

RTOL, ATOL = 1e-6, 1e-12
SHAPES = [(1, 3, 4), (5, 7, 2), (16, 10, 20)]  # (batch, input size, hidden size)


def close(ours: np.ndarray, theirs: torch.Tensor, name: str) -> None:
    theirs = theirs.detach().numpy()
    assert ours.shape == theirs.shape, f"{name}: shape {ours.shape} != {theirs.shape}"
    np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=ATOL, err_msg=name)


def leaf(a: np.ndarray) -> torch.Tensor:
    return torch.tensor(a, dtype=torch.float64, requires_grad=True)


def np_(t: torch.Tensor) -> np.ndarray:
    return t.detach().numpy().copy()


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("B,D,H", SHAPES)
def test_rnn_cell_matches_torch(nonlinearity, B, D, H):
    torch.manual_seed(B * 100 + D * 10 + H)
    ref = torch.nn.RNNCell(D, H, nonlinearity=nonlinearity).double()
    cell = RNNCell(D, H, nonlinearity=nonlinearity)
    cell.init_weights(np_(ref.weight_ih), np_(ref.weight_hh), np_(ref.bias_ih), np_(ref.bias_hh))
    rng = np.random.default_rng(B + D + H)
    x, h0, delta = rng.normal(size=(B, D)), rng.normal(size=(B, H)), rng.normal(size=(B, H))

    xt, ht = leaf(x), leaf(h0)
    h_torch = ref(xt, ht)
    (h_torch * torch.from_numpy(delta)).sum().div(B).backward()  # L = sum(h * delta) / B, see the module docstring

    h = cell.forward(x, h0)
    close(h, h_torch, "h_t")
    dx, dh_prev = cell.backward(delta, h, x, h0)
    close(dx / B, xt.grad, "dx")
    close(dh_prev / B, ht.grad, "dh_prev_t")
    close(cell.dW_ih, ref.weight_ih.grad, "dW_ih")
    close(cell.dW_hh, ref.weight_hh.grad, "dW_hh")
    close(cell.db_ih, ref.bias_ih.grad, "db_ih")
    close(cell.db_hh, ref.bias_hh.grad, "db_hh")


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_rnn_cell_accumulates_over_time_steps(nonlinearity):
    # the same cell used at two time steps: gradients from both backward calls must add up, as autograd's do
    B, D, H = 4, 3, 5
    torch.manual_seed(7)
    ref = torch.nn.RNNCell(D, H, nonlinearity=nonlinearity).double()
    cell = RNNCell(D, H, nonlinearity=nonlinearity)
    cell.init_weights(np_(ref.weight_ih), np_(ref.weight_hh), np_(ref.bias_ih), np_(ref.bias_hh))
    rng = np.random.default_rng(7)
    x0, x1, h0 = rng.normal(size=(B, D)), rng.normal(size=(B, D)), rng.normal(size=(B, H))
    d1, d2 = rng.normal(size=(B, H)), rng.normal(size=(B, H))

    ht0 = leaf(h0)
    a = ref(torch.from_numpy(x0), ht0)
    b = ref(torch.from_numpy(x1), a)
    ((a * torch.from_numpy(d1)).sum() + (b * torch.from_numpy(d2)).sum()).div(B).backward()

    h1 = cell.forward(x0, h0)
    h2 = cell.forward(x1, h1)
    close(h2, b, "h_2")
    _, dh1 = cell.backward(d2, h2, x1, h1)
    _, dh0 = cell.backward(d1 + dh1, h1, x0, h0)
    close(dh0 / B, ht0.grad, "dh_0")
    for ours, theirs, name in [
        (cell.dW_ih, ref.weight_ih, "dW_ih"),
        (cell.dW_hh, ref.weight_hh, "dW_hh"),
        (cell.db_ih, ref.bias_ih, "db_ih"),
        (cell.db_hh, ref.bias_hh, "db_hh"),
    ]:
        close(ours, theirs.grad, name)
    cell.zero_grad()
    assert not cell.dW_ih.any() and not cell.db_hh.any()


def gru_from_torch(ref: torch.nn.GRUCell, D: int, H: int) -> GRUCell:
    # torch stacks the gates as rows [r, z, n]
    w_ih, w_hh, b_ih, b_hh = np_(ref.weight_ih), np_(ref.weight_hh), np_(ref.bias_ih), np_(ref.bias_hh)
    r, z, n = slice(0, H), slice(H, 2 * H), slice(2 * H, 3 * H)
    cell = GRUCell(D, H)
    cell.init_weights(
        w_ih[r], w_ih[z], w_ih[n], w_hh[r], w_hh[z], w_hh[n], b_ih[r], b_ih[z], b_ih[n], b_hh[r], b_hh[z], b_hh[n]
    )
    return cell


def gru_grads(cell: GRUCell, ref: torch.nn.GRUCell, H: int) -> list[tuple[np.ndarray, torch.Tensor, str]]:
    pairs = []
    for k, gate in enumerate("rzn"):
        rows = slice(k * H, (k + 1) * H)
        pairs += [
            (getattr(cell, f"dW{gate}x"), ref.weight_ih.grad[rows], f"dW{gate}x"),
            (getattr(cell, f"dW{gate}h"), ref.weight_hh.grad[rows], f"dW{gate}h"),
            (getattr(cell, f"db{gate}x"), ref.bias_ih.grad[rows], f"db{gate}x"),
            (getattr(cell, f"db{gate}h"), ref.bias_hh.grad[rows], f"db{gate}h"),
        ]
    return pairs


@pytest.mark.parametrize("B,D,H", SHAPES + [(None, 5, 3)])  # None: one example as 1-D vectors, as in the handout
def test_gru_cell_matches_torch(B, D, H):
    torch.manual_seed((B or 0) * 100 + D * 10 + H)
    ref = torch.nn.GRUCell(D, H).double()
    cell = gru_from_torch(ref, D, H)
    rng = np.random.default_rng((B or 0) + D + H)
    lead = () if B is None else (B,)
    x, h0, delta = rng.normal(size=lead + (D,)), rng.normal(size=lead + (H,)), rng.normal(size=lead + (H,))
    n = B or 1

    xt, ht = leaf(x), leaf(h0)
    h_torch = ref(xt, ht)
    (h_torch * torch.from_numpy(delta)).sum().div(n).backward()  # L = sum(h * delta) / B

    h = cell.forward(x, h0)
    close(h, h_torch, "h_t")
    dx, dh_prev = cell.backward(delta)
    close(dx / n, xt.grad, "dx")
    close(dh_prev / n, ht.grad, "dh_prev_t")
    for ours, theirs, name in gru_grads(cell, ref, H):
        close(ours, theirs, name)


def lstm_grads(cell: LSTMCell, ref: torch.nn.LSTMCell, H: int) -> list[tuple[np.ndarray, torch.Tensor, str]]:
    pairs = []
    for k, gate in enumerate("ifgo"):  # torch's row order
        rows = slice(k * H, (k + 1) * H)
        pairs += [
            (getattr(cell, f"dW{gate}x"), ref.weight_ih.grad[rows], f"dW{gate}x"),
            (getattr(cell, f"dW{gate}h"), ref.weight_hh.grad[rows], f"dW{gate}h"),
            (getattr(cell, f"db{gate}x"), ref.bias_ih.grad[rows], f"db{gate}x"),
            (getattr(cell, f"db{gate}h"), ref.bias_hh.grad[rows], f"db{gate}h"),
        ]
    return pairs


@pytest.mark.parametrize("with_dc", [False, True])
@pytest.mark.parametrize("B,D,H", SHAPES + [(None, 5, 3)])
def test_lstm_cell_matches_torch(B, D, H, with_dc):
    torch.manual_seed((B or 0) * 100 + D * 10 + H)
    ref = torch.nn.LSTMCell(D, H).double()
    cell = LSTMCell(D, H)
    cell.init_weights_torch(np_(ref.weight_ih), np_(ref.weight_hh), np_(ref.bias_ih), np_(ref.bias_hh))
    rng = np.random.default_rng((B or 0) + D + H + with_dc)
    lead = () if B is None else (B,)
    x, h0, c0 = rng.normal(size=lead + (D,)), rng.normal(size=lead + (H,)), rng.normal(size=lead + (H,))
    dh, dc = rng.normal(size=lead + (H,)), (rng.normal(size=lead + (H,)) if with_dc else None)
    n = B or 1

    xt, ht, ct = leaf(x), leaf(h0), leaf(c0)
    h_torch, c_torch = ref(xt, (ht, ct))
    loss = (h_torch * torch.from_numpy(dh)).sum()
    if with_dc:
        loss = loss + (c_torch * torch.from_numpy(dc)).sum()
    loss.div(n).backward()  # L = (sum(h * dh) + sum(c * dc)) / B

    h, c = cell.forward(x, h0, c0)
    close(h, h_torch, "h_t")
    close(c, c_torch, "c_t")
    dx, dh_prev, dc_prev = cell.backward(dh, dc)
    close(dx / n, xt.grad, "dx")
    close(dh_prev / n, ht.grad, "dh_prev_t")
    close(dc_prev / n, ct.grad, "dc_prev_t")
    for ours, theirs, name in lstm_grads(cell, ref, H):
        close(ours, theirs, name)
