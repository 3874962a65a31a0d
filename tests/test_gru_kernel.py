"""The fused CPU GRU layer (asrkit/models/gru_kernel.py) against torch.nn.GRU: outputs, final state, every gradient."""

from __future__ import annotations

import pytest
import torch

from asrkit.models import gru_kernel
from asrkit.models.recurrent import StackedRecurrent


def _both(batch: int, steps: int, n_in: int, hid: int, scale: float = 1.0, with_h0: bool = True, seed: int = 0):
    """Run nn.GRU and the fused layer on the same inputs; return (reference, fused) lists of outputs and grads."""
    torch.manual_seed(seed)
    gru = torch.nn.GRU(n_in, hid, batch_first=True)
    x = (scale * torch.randn(batch, steps, n_in)).requires_grad_()
    h0 = torch.randn(1, batch, hid).requires_grad_() if with_h0 else None
    # weights on the outputs and the state, so every path of the backward pass carries a distinct gradient
    wy, wh = torch.randn(batch, steps, hid), torch.randn(1, batch, hid)
    results = []
    for run in (lambda: gru(x, h0), lambda: gru_kernel.fused_gru(gru, x, h0)):
        x.grad = None
        if h0 is not None:
            h0.grad = None
        gru.zero_grad()
        y, h = run()
        ((y * wy).sum() + (h * wh).sum()).backward()
        grads = (
            [x.grad.clone()]
            + ([h0.grad.clone()] if h0 is not None else [])
            + [p.grad.clone() for p in gru.parameters()]
        )
        results.append([y.detach(), h.detach()] + grads)
    return results


@pytest.mark.parametrize(
    ("batch", "steps", "n_in", "hid"),
    [(128, 20, 36, 96), (7, 13, 5, 33), (1, 9, 4, 8), (17, 1, 6, 16), (40, 31, 80, 64)],
    ids=["echo", "odd_sizes", "one_row", "one_step", "split_rows"],
)
def test_outputs_state_and_every_gradient_match_nn_gru(batch, steps, n_in, hid):
    ref, got = _both(batch, steps, n_in, hid)
    names = ["y", "h_n", "dx", "dh0", "dW_ih", "dW_hh", "db_ih", "db_hh"]
    for name, a, b in zip(names, ref, got):
        assert a.shape == b.shape, name
        tol = 2e-6 * max(1.0, a.abs().max().item())
        assert (a - b).abs().max().item() <= tol, f"{name}: max diff {(a - b).abs().max().item():.3g}"


def test_saturated_gates_and_no_initial_state():
    """Large pre-activations push every gate into saturation, where a poor tanh approximation would show."""
    ref, got = _both(16, 12, 8, 24, scale=40.0, with_h0=False, seed=3)
    for a, b in zip(ref, got):
        assert torch.isfinite(b).all()
        # float32: the rational tanh is within 3e-7 of tanh, and near ±1 the 1 - n² factors magnify it a little
        assert (a - b).abs().max().item() <= 5e-6 * max(1.0, a.abs().max().item())


def test_the_row_blocks_do_not_change_the_result():
    """Rows are split into one block per thread; one thread or two must give the same numbers."""
    torch.manual_seed(1)
    gru = torch.nn.GRU(10, 32, batch_first=True)
    x = torch.randn(64, 15, 10)
    before = torch.get_num_threads()
    outs = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            outs.append(gru_kernel.fused_gru(gru, x)[0].detach())
    finally:
        torch.set_num_threads(before)
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=1e-6)


def _stack(cell: str = "gru") -> StackedRecurrent:
    torch.manual_seed(0)
    return StackedRecurrent(cell, 12, 20, 2, True, 0.0, "tanh")


def test_stacked_gru_runs_fused_on_cpu_and_matches_the_plain_path():
    rnn = _stack()
    x = torch.randn(5, 17, 12, requires_grad=True)
    lengths = torch.tensor([17, 11, 4, 17, 9])
    y, _ = rnn(x, lengths)
    assert _fused_in_graph(y)
    y.sum().backward()
    fused_grads = [x.grad.clone()] + [p.grad.clone() for p in rnn.parameters()]
    x.grad = None
    rnn.zero_grad()
    with gru_kernel.disabled():
        y2, _ = rnn(x, lengths)
        assert not _fused_in_graph(y2)
        y2.sum().backward()
    plain_grads = [x.grad.clone()] + [p.grad.clone() for p in rnn.parameters()]
    valid = torch.arange(17)[None, :] < lengths[:, None]
    torch.testing.assert_close(y[valid], y2[valid], rtol=0, atol=2e-6)
    for a, b in zip(plain_grads, fused_grads):
        torch.testing.assert_close(b, a, rtol=0, atol=2e-6 * max(1.0, a.abs().max().item()))


def _fused_in_graph(t: torch.Tensor) -> bool:
    seen, todo = set(), [t.grad_fn]
    while todo:
        fn = todo.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        if "_FusedGRU" in type(fn).__name__:
            return True
        todo.extend(f[0] for f in fn.next_functions)
    return False


def test_plain_gru_where_the_fused_layer_does_not_apply():
    """float64, tracing (what export does) and exact final states (packed) all run nn.GRU."""
    rnn = _stack()
    x = torch.randn(3, 6, 12)
    lengths = torch.tensor([6, 4, 2])
    assert _fused_in_graph(rnn(x.requires_grad_(), lengths)[0])
    assert not _fused_in_graph(rnn.double()(x.double().requires_grad_(), lengths)[0])
    rnn.float()
    assert not _fused_in_graph(rnn(x.requires_grad_(), lengths, exact_state=True)[0])

    class Outputs(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = rnn

        def forward(self, a):
            return self.rnn(a, lengths)[0]

    traced = torch.jit.trace(Outputs(), (x.detach(),), check_trace=False)
    torch.testing.assert_close(traced(x.detach()), rnn(x.detach(), lengths)[0], rtol=0, atol=2e-6)
    assert "aten::gru" in str(traced.inlined_graph)


def test_lstm_and_rnn_are_untouched():
    for cell in ("lstm", "rnn"):
        rnn = _stack(cell)
        y, _ = rnn(torch.randn(2, 5, 12, requires_grad=True), torch.tensor([5, 3]))
        assert not _fused_in_graph(y)
