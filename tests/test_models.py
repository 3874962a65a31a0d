"""asrkit.models: the zoo, output lengths, and padding invariance of the recurrent CTC models."""

from __future__ import annotations

import pytest
import torch

from asrkit.errors import InputError
from asrkit.models import MODELS, build_model, count_parameters
from asrkit.models.frontend import ConvSubsample, StackSubsample
from asrkit.models.recurrent import RecurrentCTC

N_FEATS, N_TOKENS = 20, 7


def _model(name: str = "bilstm", subsample: int = 2, **kw) -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = {"name": name, "n_feats": N_FEATS, "n_tokens": N_TOKENS, "conv_channels": 4, "subsample": subsample, "hidden": 16, "layers": 2, "dropout": 0.1}
    cfg.update(kw)
    return build_model(cfg).eval()


def _feats(lengths: list[int], seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, N_FEATS, generator=g) for n in lengths]


@pytest.mark.parametrize(("name", "bidirectional"), [("bilstm", True), ("lstm", False)])
def test_build_zoo_entries(name, bidirectional):
    m = _model(name)
    assert isinstance(m, RecurrentCTC)
    assert m.rnn.bidirectional is bidirectional
    assert m.rnn.num_layers == 2 and m.rnn.hidden_size == 16
    assert m.head.in_features == 16 * (2 if bidirectional else 1)
    assert m.head.out_features == N_TOKENS
    assert count_parameters(m) == sum(p.numel() for p in m.parameters()) > 0
    assert set(MODELS) == {"bilstm", "lstm"}


def test_bilstm_has_more_parameters_than_lstm():
    assert count_parameters(_model("bilstm")) > count_parameters(_model("lstm"))


@pytest.mark.parametrize("name", ["gru", None, "BiLSTM"])
def test_unknown_model_name(name):
    with pytest.raises(InputError) as e:
        build_model({"name": name, "n_feats": 4, "n_tokens": 3, "hidden": 4, "layers": 1})
    assert repr(name) in str(e.value)
    assert "bilstm" in str(e.value) and "lstm" in str(e.value)


@pytest.mark.parametrize("subsample", [1, 2, 3, 4])
def test_output_lengths_formula(subsample):
    lengths = torch.tensor([1, 2, 3, 4, 5, 7, 8, 9, 100])
    expected = [-(-n // subsample) for n in lengths.tolist()]  # ceil(n / subsample)
    for fe in (ConvSubsample(N_FEATS, 4, 8, subsample), StackSubsample(N_FEATS, 8, subsample)):
        assert fe.output_lengths(lengths).tolist() == expected


@pytest.mark.parametrize("frontend", ["conv", "stack"])
@pytest.mark.parametrize("name", ["bilstm", "lstm"])
@pytest.mark.parametrize("subsample", [1, 2, 3, 4])
def test_forward_shapes_and_lengths(name, subsample, frontend):
    m = _model(name, subsample, frontend=frontend)
    feats = _feats([37, 50, 9])
    x = torch.nn.utils.rnn.pad_sequence(feats, batch_first=True)
    lengths = torch.tensor([37, 50, 9])
    with torch.no_grad():
        lp, out_len = m(x, lengths)
    assert out_len.tolist() == m.output_lengths(lengths).tolist()
    assert lp.shape == (3, int(out_len.max()), N_TOKENS)
    # each row is a distribution: log-probs sum to 1 in probability space
    for i, n in enumerate(out_len.tolist()):
        assert torch.allclose(lp[i, :n].exp().sum(-1), torch.ones(n), atol=1e-5)
        assert (lp[i, :n] <= 0).all()


@pytest.mark.parametrize("frontend", ["conv", "stack"])
@pytest.mark.parametrize("name", ["bilstm", "lstm"])
@pytest.mark.parametrize("subsample", [1, 2, 3, 4])
def test_padding_invariance(name, subsample, frontend):
    m = _model(name, subsample, frontend=frontend)
    lengths = [23, 61, 40, 7]
    feats = _feats(lengths, seed=subsample)
    x = torch.nn.utils.rnn.pad_sequence(feats, batch_first=True)
    # make the padding loud: it must not leak into any utterance's output
    for i, n in enumerate(lengths):
        x[i, n:] = 1e3
    with torch.no_grad():
        lp_batch, out_len = m(x, torch.tensor(lengths))
        for i, f in enumerate(feats):
            lp_one, n_one = m(f[None], torch.tensor([f.shape[0]]))
            n = int(out_len[i])
            assert n == int(n_one[0]) == lp_one.shape[1]
            torch.testing.assert_close(lp_batch[i, :n], lp_one[0], atol=1e-5, rtol=1e-5)


def test_eval_is_deterministic_and_train_mode_uses_dropout():
    m = _model("bilstm", dropout=0.5)
    x = _feats([30])[0][None]
    n = torch.tensor([30])
    with torch.no_grad():
        a, _ = m(x, n)
        b, _ = m(x, n)
        assert torch.equal(a, b)
        m.train()
        torch.manual_seed(1)
        c, _ = m(x, n)
    assert not torch.allclose(a, c)


def test_gradients_reach_every_parameter():
    m = _model("lstm", subsample=3).train()
    feats = _feats([30, 18])
    x = torch.nn.utils.rnn.pad_sequence(feats, batch_first=True)
    lengths = torch.tensor([30, 18])
    lp, out_len = m(x, lengths)
    targets = torch.tensor([[1, 2, 3], [4, 5, 0]])
    loss = torch.nn.functional.ctc_loss(lp.transpose(0, 1), targets, out_len, torch.tensor([3, 2]), blank=0)
    assert torch.isfinite(loss)
    loss.backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name
