"""The NumPy reference RNNClassifier and CharacterPredictor against PyTorch in float64.

Batch-averaging convention: the reference accumulates every parameter gradient averaged over the batch, and
returns dh_0 averaged over the batch too (the initial hidden states count as parameters). With delta = dL/dlogits
passed to backward, that is the gradient of L = sum(logits * delta) / B. So the torch loss below is exactly that,
and every torch gradient (weights, biases and h_0's) must then equal ours with no further scaling.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from asrkit.reference import CharacterPredictor, RNNClassifier, inference

RTOL, ATOL = 1e-6, 1e-12


def np_(t: torch.Tensor) -> np.ndarray:
    return t.detach().numpy().copy()


def close(ours: np.ndarray, theirs: torch.Tensor | np.ndarray, name: str) -> None:
    theirs = np_(theirs) if isinstance(theirs, torch.Tensor) else theirs
    assert ours.shape == theirs.shape, f"{name}: shape {ours.shape} != {theirs.shape}"
    np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=ATOL, err_msg=name)


def copied_classifier(rnn: torch.nn.RNN, linear: torch.nn.Linear) -> RNNClassifier:
    net = RNNClassifier(rnn.input_size, rnn.hidden_size, linear.out_features, num_layers=rnn.num_layers)
    rnn_weights = [
        [np_(getattr(rnn, f"{name}_l{k}")) for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
        for k in range(rnn.num_layers)
    ]
    net.init_weights(rnn_weights, [np_(linear.weight), np_(linear.bias)])
    return net


# (batch, time, input size, hidden size, classes, layers)
CASES = [(1, 1, 3, 4, 2, 1), (3, 5, 2, 3, 8, 2), (4, 7, 6, 5, 3, 3), (8, 12, 10, 16, 7, 2), (2, 9, 4, 6, 5, 1)]


@pytest.mark.parametrize("B,T,D,H,C,L", CASES)
@pytest.mark.parametrize("given_h0", [False, True])
def test_rnn_classifier_matches_torch(B, T, D, H, C, L, given_h0):
    torch.manual_seed(B * 1000 + T * 100 + D * 10 + L)
    rnn = torch.nn.RNN(D, H, num_layers=L, batch_first=True).double()
    linear = torch.nn.Linear(H, C).double()
    net = copied_classifier(rnn, linear)
    x = torch.randn(B, T, D, dtype=torch.float64)
    h0 = (
        torch.randn(L, B, H, dtype=torch.float64) if given_h0 else torch.zeros(L, B, H, dtype=torch.float64)
    ).requires_grad_()
    delta = torch.randn(B, C, dtype=torch.float64)

    out, _ = rnn(x, h0)
    logits = linear(out[:, -1])
    (logits * delta).sum().div(B).backward()  # see the module docstring: the batch-mean loss whose gradient we return

    ours = net.forward(x.numpy(), h0.detach().numpy() if given_h0 else None)
    close(ours, logits, "logits")
    close(np.stack(net.hiddens[1:], axis=2)[-1], out, "top-layer hidden states")
    dh0 = net.backward(delta.numpy())
    close(dh0, h0.grad, "dh_0")
    close(net.dW, linear.weight.grad, "output dW")
    close(net.db, linear.bias.grad, "output db")
    for k, cell in enumerate(net.rnn):
        close(cell.dW_ih, getattr(rnn, f"weight_ih_l{k}").grad, f"dW_ih layer {k}")
        close(cell.dW_hh, getattr(rnn, f"weight_hh_l{k}").grad, f"dW_hh layer {k}")
        close(cell.db_ih, getattr(rnn, f"bias_ih_l{k}").grad, f"db_ih layer {k}")
        close(cell.db_hh, getattr(rnn, f"bias_hh_l{k}").grad, f"db_hh layer {k}")


def test_dh0_is_batch_averaged_and_grads_accumulate_until_zero_grad():
    rng = np.random.default_rng(0)
    net = RNNClassifier(3, 4, 5, num_layers=2, rng=rng)
    x, delta = rng.standard_normal((6, 4, 3)), rng.standard_normal((6, 5))
    net.forward(x)
    dh0 = net.backward(delta)
    once = [net.dW.copy()] + [c.dW_hh.copy() for c in net.rnn]
    # the same example repeated 6 times: averaging means the batch gives the single example's dh_0 / 6 per row
    net.zero_grad()
    net.forward(x[:1])
    single = net.backward(delta[:1])
    net.zero_grad()
    net.forward(np.repeat(x[:1], 6, axis=0))
    np.testing.assert_allclose(
        net.backward(np.repeat(delta[:1], 6, axis=0)) * 6, np.repeat(single, 6, axis=1), rtol=RTOL
    )
    # a second backward without zero_grad doubles the parameter gradients
    net.zero_grad()
    net.forward(x)
    np.testing.assert_allclose(net.backward(delta), dh0, rtol=RTOL)
    net.backward(delta)
    for got, want in zip([net.dW] + [c.dW_hh for c in net.rnn], once):
        np.testing.assert_allclose(got, 2 * want, rtol=RTOL)


@pytest.mark.parametrize("L", [1, 2, 3])
def test_variable_lengths_padded_batch_equals_each_sequence_alone(L):
    rng = np.random.default_rng(L)
    D, H, C, T = 4, 5, 3, 9
    lengths = np.array([9, 3, 1, 6])
    B = len(lengths)
    net = RNNClassifier(D, H, C, num_layers=L, rng=rng)
    x = rng.standard_normal((B, T, D))
    for b, n in enumerate(lengths):
        x[b, n:] = np.nan  # padding is never read: NaN there must not reach any result
    h0 = rng.standard_normal((L, B, H))
    delta = rng.standard_normal((B, C))

    logits = net.forward(x, h0, lengths=lengths)
    dh0 = net.backward(delta)
    batch_grads = [net.dW.copy(), net.db.copy()] + [
        g.copy() for c in net.rnn for g in (c.dW_ih, c.dW_hh, c.db_ih, c.db_hh)
    ]
    assert np.isfinite(logits).all() and np.isfinite(dh0).all()

    alone_grads = [np.zeros_like(g) for g in batch_grads]
    for b, n in enumerate(lengths):
        net.zero_grad()
        alone = net.forward(x[b : b + 1, :n], h0[:, b : b + 1])
        np.testing.assert_allclose(logits[b : b + 1], alone, rtol=RTOL, atol=ATOL, err_msg=f"logits of sequence {b}")
        # dh_0 is averaged over the batch: the batch row is the single-sequence value / B
        np.testing.assert_allclose(
            dh0[:, b : b + 1] * B, net.backward(delta[b : b + 1]), rtol=RTOL, atol=ATOL, err_msg=f"dh_0 {b}"
        )
        grads = [net.dW, net.db] + [g for c in net.rnn for g in (c.dW_ih, c.dW_hh, c.db_ih, c.db_hh)]
        for acc, g in zip(alone_grads, grads):
            acc += g / B  # the batch's averaged gradient is the mean of the per-sequence ones
    for k, (got, want) in enumerate(zip(batch_grads, alone_grads)):
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL, err_msg=f"parameter gradient {k}")


def test_variable_lengths_match_torch_packed_sequence():
    torch.manual_seed(7)
    D, H, C, L, T = 3, 4, 5, 2, 6
    lengths = [6, 2, 4]
    rnn = torch.nn.RNN(D, H, num_layers=L, batch_first=True).double()
    linear = torch.nn.Linear(H, C).double()
    net = copied_classifier(rnn, linear)
    x = torch.randn(len(lengths), T, D, dtype=torch.float64)
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, torch.tensor(lengths), batch_first=True, enforce_sorted=False)
    _, h_n = rnn(packed)  # h_n[-1] is each sequence's top-layer state at its own last step
    close(net.forward(x.numpy(), lengths=lengths), linear(h_n[-1]), "logits with lengths")


def test_bad_lengths_rejected():
    net = RNNClassifier(2, 3, 4, num_layers=1, rng=np.random.default_rng(0))
    with pytest.raises(ValueError):
        net.forward(np.zeros((2, 5, 2)), lengths=[5, 0])
    with pytest.raises(ValueError):
        net.forward(np.zeros((2, 5, 2)), lengths=[6, 1])


@pytest.mark.parametrize("T,D,H,C", [(1, 2, 3, 4), (10, 5, 4, 6), (30, 8, 16, 12)])
def test_character_predictor_inference_matches_torch(T, D, H, C):
    torch.manual_seed(T + D + H + C)
    gru = torch.nn.GRUCell(D, H).double()
    proj = torch.nn.Linear(H, C).double()
    net = CharacterPredictor(D, H, C)
    # torch stacks the gates as rows [r, z, n]
    Wrx, Wzx, Wnx = np.split(np_(gru.weight_ih), 3)
    Wrh, Wzh, Wnh = np.split(np_(gru.weight_hh), 3)
    brx, bzx, bnx = np.split(np_(gru.bias_ih), 3)
    brh, bzh, bnh = np.split(np_(gru.bias_hh), 3)
    net.init_rnn_weights(Wrx, Wzx, Wnx, Wrh, Wzh, Wnh, brx, bzx, bnx, brh, bzh, bnh)
    net.init_projection_weights(np_(proj.weight), np_(proj.bias))

    inputs = torch.randn(T, D, dtype=torch.float64)
    h = torch.zeros(1, H, dtype=torch.float64)
    expected = []
    with torch.no_grad():
        for t in range(T):
            h = gru(inputs[t : t + 1], h)
            expected.append(proj(h)[0])
    close(inference(net, inputs.numpy()), torch.stack(expected), "inference logits")

    # one forward step from a non-zero state also returns the next hidden state
    h_prev = torch.randn(H, dtype=torch.float64)
    logits, h_next = net.forward(inputs[0].numpy(), h_prev.numpy())
    with torch.no_grad():
        h_ref = gru(inputs[:1], h_prev[None])[0]
        close(h_next, h_ref, "h_next")
        close(logits, proj(h_ref), "step logits")
