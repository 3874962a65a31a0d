"""asrkit.models: the zoo (dnn, rnn, lstm, bilstm, gru, bigru) × front-ends × heads; shapes, lengths, padding invariance."""

from __future__ import annotations

import math

import pytest
import torch

from asrkit.errors import InputError
from asrkit.models import MODELS, ZOO, build_model, count_parameters, zoo_table
from asrkit.models import frontend as frontend_module
from asrkit.models.dnn import DNNModel
from asrkit.models.frontend import ConvSubsample, Identity, ResNetSubsample, StackSubsample
from asrkit.models.heads import AttentionPool, LastPool, MeanPool
from asrkit.models.recurrent import RecurrentModel, StackedRecurrent, reverse_within

N_FEATS, N_TOKENS, HIDDEN = 20, 7, 16
ZOO_NAMES = ("dnn", "rnn", "lstm", "bilstm", "gru", "bigru")
HEADS = ("ctc", "frame", "classifier")
# each front-end with a subsample it supports (none cannot subsample)
FRONTENDS = (("none", 1), ("stack", 3), ("conv", 2), ("resnet", 4))
BIDIRECTIONAL = {"dnn": False, "rnn": False, "lstm": False, "bilstm": True, "gru": False, "bigru": True}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # these models are tiny: a second intra-op thread only adds contention (3x slower on a busy 2-core box)
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _cfg(name: str = "bilstm", **kw) -> dict:
    cfg = {
        "name": name,
        "n_feats": N_FEATS,
        "n_tokens": N_TOKENS,
        "conv_channels": 4,
        "cnn_blocks": 1,
        "subsample": 2,
        "hidden": HIDDEN,
        "layers": 2,
        "dropout": 0.1,
        "context": 1,
    }
    cfg.update(kw)
    return cfg


def _model(name: str = "bilstm", **kw) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(_cfg(name, **kw)).eval()


def _feats(lengths: list[int], seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, N_FEATS, generator=g) for n in lengths]


def _batch(feats: list[torch.Tensor], pad_value: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.nn.utils.rnn.pad_sequence(feats, batch_first=True, padding_value=pad_value)
    return x, torch.tensor([f.shape[0] for f in feats])


def _ceil(lengths: list[int], s: int) -> list[int]:
    return [math.ceil(n / s) for n in lengths]


def _assert_padding_invariant(m: torch.nn.Module, lengths: list[int], seed: int = 0) -> None:
    """Each utterance alone == the same utterance inside a batch whose padding is loud (1e3)."""
    feats = _feats(lengths, seed)
    x, n = _batch(feats, pad_value=1e3)
    with torch.no_grad():
        out_batch, len_batch = m(x, n)
        for i, f in enumerate(feats):
            out_one, len_one = m(f[None], torch.tensor([f.shape[0]]))
            assert int(len_batch[i]) == int(len_one[0])
            if m.task == "classifier":
                assert out_batch.shape == (len(lengths), N_TOKENS) and out_one.shape == (1, N_TOKENS)
                torch.testing.assert_close(out_batch[i], out_one[0], atol=1e-5, rtol=1e-5)
            else:
                k = int(len_one[0])
                assert out_one.shape == (1, k, N_TOKENS)
                torch.testing.assert_close(out_batch[i, :k], out_one[0], atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------- the registry


def test_zoo_names_and_descriptions():
    assert MODELS == ZOO_NAMES
    for name in MODELS:
        d = ZOO[name].description
        assert d and "\n" not in d and len(d) < 100
        assert ZOO[name].bidirectional is BIDIRECTIONAL[name]


@pytest.mark.parametrize("name", ["transformer", None, "BiLSTM", "cnn"])
def test_unknown_model_name_lists_the_zoo(name):
    with pytest.raises(InputError) as e:
        build_model(_cfg(name))
    assert repr(name) in str(e.value)
    for entry in ZOO_NAMES:
        assert entry in str(e.value)


@pytest.mark.parametrize(
    ("name", "bad"),
    [
        ("bilstm", {"head": "seq2seq"}),
        ("gru", {"head": "classifier", "pool": "max"}),
        ("dnn", {"frontend": "vgg"}),
        ("lstm", {"frontend": "none", "subsample": 2}),
        ("conv", {}),
        ("lstm", {"projection": HIDDEN}),
        ("bilstm", {"projection": HIDDEN + 4}),
        ("rnn", {"nonlinearity": "sigmoid"}),
        ("gru", {"subsample": 5}),
    ],
)
def test_bad_settings_are_input_errors(name, bad):
    with pytest.raises(InputError):
        build_model(_cfg(name, **bad))


@pytest.mark.parametrize("name", ZOO_NAMES)
@pytest.mark.parametrize("head", HEADS)
def test_entry_structure(name, head):
    m = _model(name, head=head)
    assert m.task == head
    assert m.bidirectional is BIDIRECTIONAL[name]
    assert m.streamable is (not BIDIRECTIONAL[name])
    if name == "dnn":
        assert isinstance(m, DNNModel)
        linears = [layer for layer in m.mlp if isinstance(layer, torch.nn.Linear)]
        assert len(linears) == 2 and all(layer.out_features == HIDDEN for layer in linears)
    else:
        assert isinstance(m, RecurrentModel)
        expected = {
            "rnn": torch.nn.RNN,
            "lstm": torch.nn.LSTM,
            "bilstm": torch.nn.LSTM,
            "gru": torch.nn.GRU,
            "bigru": torch.nn.GRU,
        }[name]
        assert isinstance(m.rnn, StackedRecurrent)
        assert m.rnn.num_layers == 2 and m.rnn.hidden_size == HIDDEN and m.rnn.bidirectional is BIDIRECTIONAL[name]
        cells = [*m.rnn.fwd, *m.rnn.bwd]
        assert len(cells) == 2 * (2 if BIDIRECTIONAL[name] else 1)
        assert all(type(c) is expected and c.hidden_size == HIDDEN and not c.bidirectional for c in cells)
    assert count_parameters(m) == sum(p.numel() for p in m.parameters()) > 0


@pytest.mark.parametrize(("uni", "bi"), [("lstm", "bilstm"), ("gru", "bigru")])
@pytest.mark.parametrize("projection", [0, 8])
def test_bidirectional_has_more_parameters(uni, bi, projection):
    assert count_parameters(_model(bi, projection=projection)) > count_parameters(_model(uni, projection=projection))


# ---------------------------------------------------------------- padding invariance


@pytest.mark.parametrize(("frontend", "subsample"), FRONTENDS)
@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("name", ZOO_NAMES)
def test_padding_invariance_every_entry_head_frontend(name, head, frontend, subsample):
    m = _model(name, head=head, frontend=frontend, subsample=subsample)
    _assert_padding_invariant(m, [23, 61, 40, 7], seed=subsample)


@pytest.mark.parametrize("subsample", [1, 2, 3, 4])
@pytest.mark.parametrize("frontend", ["stack", "conv", "resnet"])
@pytest.mark.parametrize("name", ["lstm", "bigru"])
def test_padding_invariance_every_subsample(name, frontend, subsample):
    m = _model(name, frontend=frontend, subsample=subsample, cnn_blocks=2)
    _assert_padding_invariant(m, [17, 45, 30, 4, 5], seed=subsample)


@pytest.mark.parametrize("pool", ["last", "mean", "attention"])
@pytest.mark.parametrize(
    ("name", "extra"),
    [(n, {}) for n in ZOO_NAMES]
    + [
        ("bilstm", {"projection": 8}),
        ("lstm", {"projection": 8}),
        ("bigru", {"projection": 12}),
        ("rnn", {"projection": 8}),
    ],
)
def test_padding_invariance_classifier_pools(name, extra, pool):
    m = _model(name, head="classifier", pool=pool, frontend="conv", **extra)
    assert m.head.pool_kind == pool
    _assert_padding_invariant(m, [23, 61, 40, 7, 1], seed=3)


def test_padding_check_catches_a_leak(monkeypatch):
    # without the masks before each conv, loud padding leaks into the resnet front-end's output
    m = _model("gru", frontend="resnet", subsample=2, cnn_blocks=2)
    monkeypatch.setattr(frontend_module, "_mask", lambda lengths, t: torch.ones(len(lengths), t))
    with pytest.raises(AssertionError):
        _assert_padding_invariant(m, [23, 61, 40, 7])


# ---------------------------------------------------------------- shapes, lengths, normalisation


@pytest.mark.parametrize("subsample", [1, 2, 3, 4])
def test_frontend_output_lengths_formula(subsample):
    lengths = torch.tensor([1, 2, 3, 4, 5, 7, 8, 9, 100, 101])
    expected = _ceil(lengths.tolist(), subsample)
    fes = [
        ConvSubsample(N_FEATS, 4, 8, subsample),
        StackSubsample(N_FEATS, 8, subsample),
        ResNetSubsample(N_FEATS, 4, 8, subsample, 1),
    ]
    for fe in fes:
        assert fe.output_lengths(lengths).tolist() == expected
        x = torch.randn(len(lengths), int(lengths.max()), N_FEATS)
        y, out_len = fe(x, lengths)
        assert out_len.tolist() == expected and y.shape == (len(lengths), max(expected), 8)
    assert Identity(N_FEATS).output_lengths(lengths).tolist() == lengths.tolist()


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize(
    ("frontend", "subsample"), [("none", 1)] + [(f, s) for f in ("stack", "conv", "resnet") for s in (1, 2, 3, 4)]
)
def test_forward_shapes_lengths_and_normalisation(frontend, subsample, head):
    m = _model("gru" if subsample % 2 else "bilstm", head=head, frontend=frontend, subsample=subsample)
    lengths = [37, 50, 9]
    x, n = _batch(_feats(lengths))
    with torch.no_grad():
        out, out_len = m(x, n)
    assert out_len.tolist() == m.output_lengths(n).tolist() == _ceil(lengths, subsample)
    if head == "classifier":
        assert out.shape == (3, N_TOKENS)
        torch.testing.assert_close(out.exp().sum(-1), torch.ones(3))
    else:
        assert out.shape == (3, max(_ceil(lengths, subsample)), N_TOKENS)
        for i, k in enumerate(out_len.tolist()):
            torch.testing.assert_close(out[i, :k].exp().sum(-1), torch.ones(k))
    assert (out <= 0).all() and torch.isfinite(out).all()


# ---------------------------------------------------------------- dnn splicing


@pytest.mark.parametrize("context", [0, 1, 3])
def test_dnn_frame_depends_only_on_its_context(context):
    m = _model("dnn", head="frame", frontend="none", subsample=1, context=context, dropout=0.0)
    assert m.mlp[0].in_features == (2 * context + 1) * N_FEATS
    x = _feats([30])[0][None]
    n = torch.tensor([30])
    t0 = 15
    with torch.no_grad():
        base, _ = m(x, n)
        for far in (t0 - context - 1, t0 + context + 1):
            y = x.clone()
            y[0, far] += 5.0
            out, _ = m(y, n)
            torch.testing.assert_close(out[0, t0], base[0, t0], atol=0, rtol=0)
            assert not torch.allclose(out[0, far], base[0, far])  # the perturbation is real
        for near in (t0 - context, t0 + context):
            y = x.clone()
            y[0, near] += 5.0
            out, _ = m(y, n)
            assert not torch.allclose(out[0, t0], base[0, t0])


def test_dnn_edges_are_zero_padded():
    # appending `context` valid zero frames must not change any original frame's output
    m = _model("dnn", head="ctc", frontend="none", subsample=1, context=2, dropout=0.0)
    x = _feats([12])[0]
    padded = torch.cat([torch.zeros(2, N_FEATS), x, torch.zeros(2, N_FEATS)])
    with torch.no_grad():
        a, _ = m(x[None], torch.tensor([12]))
        b, _ = m(padded[None], torch.tensor([16]))
    torch.testing.assert_close(a[0], b[0, 2:14], atol=1e-6, rtol=1e-6)


# ---------------------------------------------------------------- recurrent options


@pytest.mark.parametrize("projection", [0, 8])
def test_rnn_relu_differs_from_tanh(projection):
    tanh = _model("rnn", nonlinearity="tanh", projection=projection)
    relu = _model("rnn", nonlinearity="relu", projection=projection)
    assert all(c.nonlinearity == "relu" for c in relu.rnn.fwd)
    relu.load_state_dict(tanh.state_dict())  # same weights: only the nonlinearity differs
    x, n = _batch(_feats([25, 18]))
    with torch.no_grad():
        assert not torch.allclose(tanh(x, n)[0], relu(x, n)[0], atol=1e-3)


def _lstm_params(in_dim: int, h: int, p: int, layers: int, dirs: int) -> int:
    total, d = 0, in_dim
    for _ in range(layers):
        total += dirs * (4 * h * d + 4 * h * (p or h) + 8 * h + (p * h if p else 0))
        d = (p or h) * dirs
    return total


def _gated_params(gates: int, in_dim: int, h: int, p: int, layers: int, dirs: int) -> int:
    total, d = 0, in_dim
    for _ in range(layers):
        total += dirs * (gates * h * (d + h) + 2 * gates * h) + ((h * dirs * p + p) if p else 0)
        d = p if p else h * dirs
    return total


@pytest.mark.parametrize("name", ["lstm", "bilstm"])
@pytest.mark.parametrize("projection", [0, 6])
def test_lstm_projection_parameter_formula_and_width(name, projection):
    dirs = 2 if name == "bilstm" else 1
    m = _model(name, projection=projection, frontend="stack")
    assert all(c.proj_size == projection for c in [*m.rnn.fwd, *m.rnn.bwd])
    assert count_parameters(m.rnn) == _lstm_params(HIDDEN, HIDDEN, projection, 2, dirs)
    width = (projection or HIDDEN) * dirs
    assert m.head.in_features == width
    y, _ = m.run_rnn(torch.randn(2, 9, HIDDEN), torch.tensor([9, 5]))
    assert y.shape == (2, 9, width)


@pytest.mark.parametrize(("name", "gates"), [("gru", 3), ("bigru", 3), ("rnn", 1)])
@pytest.mark.parametrize("projection", [0, 6, 24])
def test_gru_rnn_projection_parameter_formula_and_width(name, gates, projection):
    dirs = 2 if name.startswith("bi") else 1
    m = _model(name, projection=projection, frontend="stack")
    assert len(m.rnn.proj) == (2 if projection else 0)
    assert count_parameters(m.rnn) == _gated_params(gates, HIDDEN, HIDDEN, projection, 2, dirs)
    width = projection or HIDDEN * dirs
    assert m.head.in_features == width
    y, _ = m.run_rnn(torch.randn(2, 9, HIDDEN), torch.tensor([9, 5]))
    assert y.shape == (2, 9, width)
    assert count_parameters(m) != count_parameters(_model(name, projection=0 if projection else 6, frontend="stack"))


@pytest.mark.parametrize(
    ("name", "extra"),
    [
        ("lstm", {}),
        ("gru", {}),
        ("rnn", {"nonlinearity": "relu"}),
        ("gru", {"projection": 8}),
        ("lstm", {"projection": 8}),
    ],
)
def test_initial_state_continues_the_recurrence(name, extra):
    # room for streaming: feeding chunk 2 with chunk 1's final state == running the whole utterance
    m = _model(name, frontend="none", subsample=1, **extra)
    x = torch.randn(2, 20, N_FEATS)
    n = torch.tensor([16, 20])
    with torch.no_grad():
        whole, _ = m.run_rnn(x, n)
        first, state = m.run_rnn(x[:, :10], torch.tensor([10, 10]))
        second, _ = m.run_rnn(x[:, 10:], n - 10, state)
        fresh, _ = m.run_rnn(x[:, 10:], n - 10)
    torch.testing.assert_close(first, whole[:, :10], atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(second[0, :6], whole[0, 10:16], atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(second[1], whole[1, 10:], atol=1e-6, rtol=1e-6)
    assert not torch.allclose(fresh[1], whole[1, 10:], atol=1e-4)


# ---------------------------------------------------------------- classifier pooling semantics


def test_last_pool_takes_forward_last_valid_and_backward_first():
    y = torch.randn(2, 5, 6)
    lengths = torch.tensor([3, 5])
    assert torch.equal(LastPool()(y, lengths), torch.stack([y[0, 2], y[1, 4]]))
    pooled = LastPool(split=3)(y, lengths)
    assert torch.equal(pooled[0], torch.cat([y[0, 2, :3], y[0, 0, 3:]]))
    assert torch.equal(pooled[1], torch.cat([y[1, 4, :3], y[1, 0, 3:]]))
    assert torch.equal(LastPool(ends=True)(y, lengths)[0], torch.cat([y[0, 2], y[0, 0]]))


@pytest.mark.parametrize(
    ("name", "projection"), [("lstm", 0), ("bilstm", 0), ("gru", 0), ("bigru", 0), ("rnn", 0), ("bilstm", 6)]
)
def test_last_pool_equals_final_recurrent_states(name, projection):
    # PyTorch's own final states: forward at the last valid frame, backward at t=0
    m = _model(name, head="classifier", pool="last", frontend="stack", projection=projection)
    x, n = _batch(_feats([23, 9, 14]), pad_value=1e3)
    with torch.no_grad():
        h, out_len = m.frontend(x, n)
        y, final = m.run_rnn(h, out_len)
        dirs = 2 if m.bidirectional else 1
        # the last layer's final hidden states, forward then backward, each (1, B, H) (LSTM: the h of (h, c))
        last = [f[0] if isinstance(f, tuple) else f for f in final[-dirs:]]
        expected = torch.cat([x[0] for x in last], dim=-1)
        torch.testing.assert_close(m.head.pool(y, out_len), expected, atol=1e-6, rtol=1e-6)


def test_mean_and_attention_pools_use_valid_frames_only():
    torch.manual_seed(0)
    lengths = torch.tensor([4, 7, 1])
    y = torch.randn(3, 7, 5)
    loud = y.clone()
    for i, k in enumerate(lengths.tolist()):
        loud[i, k:] = 1e4
    mean = MeanPool()(loud, lengths)
    att = AttentionPool(5)
    w = att.weights(loud, lengths)
    pooled = att(loud, lengths)
    for i, k in enumerate(lengths.tolist()):
        torch.testing.assert_close(mean[i], y[i, :k].mean(0))
        assert (w[i, k:] == 0).all()
        torch.testing.assert_close(w[i].sum(), torch.tensor(1.0))
        alone = att.score(y[i, :k]).squeeze(-1).softmax(-1) @ y[i, :k]
        torch.testing.assert_close(pooled[i], alone)


# ---------------------------------------------------------------- zoo table and old checkpoints


def test_zoo_table_matches_built_models():
    cfg = _cfg("bilstm", head="classifier", pool="attention", frontend="resnet", projection=8)
    rows = zoo_table(cfg, N_FEATS, N_TOKENS)
    assert [r["name"] for r in rows] == list(ZOO_NAMES)
    for r in rows:
        assert set(r) == {"name", "description", "parameters", "bidirectional", "streamable"}
        built = build_model({**cfg, "name": r["name"], "n_feats": N_FEATS, "n_tokens": N_TOKENS})
        assert r["parameters"] == count_parameters(built) > 0
        assert r["bidirectional"] is BIDIRECTIONAL[r["name"]] and r["streamable"] is not r["bidirectional"]
        assert r["description"] == ZOO[r["name"]].description
    bigger = zoo_table({**cfg, "hidden": 24}, N_FEATS, N_TOKENS)
    assert all(b["parameters"] > r["parameters"] for b, r in zip(bigger, rows))
    # an LSTM projection that does not fit is reported on its rows, the others still count
    rows = zoo_table({**cfg, "projection": HIDDEN}, N_FEATS, N_TOKENS)
    bad = {r["name"] for r in rows if r["parameters"] is None}
    assert bad == {"lstm", "bilstm"} and all("error" in r for r in rows if r["name"] in bad)


_RNN_KEYS = {}
for _l, _in in ((0, 16), (1, 32)):
    for _suffix in ("", "_reverse"):
        _RNN_KEYS.update(
            {
                f"rnn.weight_ih_l{_l}{_suffix}": (64, _in),
                f"rnn.weight_hh_l{_l}{_suffix}": (64, 16),
                f"rnn.bias_ih_l{_l}{_suffix}": (64,),
                f"rnn.bias_hh_l{_l}{_suffix}": (64,),
            }
        )
# state-dict keys and shapes written by asrkit before the zoo (bilstm, hidden 16, 2 layers, 20 mels, 7 tokens)
OLD_KEYS = {
    "conv": {
        "frontend.conv1.weight": (4, 1, 3, 3),
        "frontend.conv1.bias": (4,),
        "frontend.conv2.weight": (4, 4, 3, 3),
        "frontend.conv2.bias": (4,),
        "frontend.proj.weight": (16, 20),
        "frontend.proj.bias": (16,),
        "frontend.norm.weight": (16,),
        "frontend.norm.bias": (16,),
        **_RNN_KEYS,
        "head.weight": (7, 32),
        "head.bias": (7,),
    },
    "stack": {
        "frontend.proj.weight": (16, 40),
        "frontend.proj.bias": (16,),
        "frontend.norm.weight": (16,),
        "frontend.norm.bias": (16,),
        **_RNN_KEYS,
        "head.weight": (7, 32),
        "head.bias": (7,),
    },
}


@pytest.mark.parametrize("frontend", ["conv", "stack", None])
def test_old_checkpoints_load_and_compute_what_they_computed(frontend):
    """Checkpoints from before the zoo hold one packed multi-layer nn.LSTM (rnn.weight_ih_l1_reverse, ...)."""
    old = {
        "name": "bilstm",
        "conv_channels": 4,
        "subsample": 2,
        "hidden": 16,
        "layers": 2,
        "dropout": 0.1,
        "n_feats": N_FEATS,
        "n_tokens": N_TOKENS,
    }
    if frontend:
        old["frontend"] = frontend
    m = build_model(old).eval()
    assert m.task == "ctc"
    torch.manual_seed(3)
    lstm = torch.nn.LSTM(16, 16, num_layers=2, bidirectional=True, batch_first=True)
    state = {k: v for k, v in m.state_dict().items() if not k.startswith("rnn.")}
    state.update({f"rnn.{k}": v for k, v in lstm.state_dict().items()})
    assert {k: tuple(v.shape) for k, v in state.items()} == OLD_KEYS[frontend or "conv"]
    m.load_state_dict(state)  # strict: every old key maps onto a new one
    x, n = _batch(_feats([23, 9, 14]))
    with torch.no_grad():
        h, out_len = m.frontend(x, n)
        y, _ = m.rnn(h, out_len)
        packed = torch.nn.utils.rnn.pack_padded_sequence(h, out_len, batch_first=True, enforce_sorted=False)
        ref, _ = torch.nn.utils.rnn.pad_packed_sequence(lstm(packed)[0], batch_first=True, total_length=h.shape[1])
    for i, k in enumerate(out_len.tolist()):
        torch.testing.assert_close(y[i, :k], ref[i, :k], atol=1e-6, rtol=1e-6)


def test_reverse_within_keeps_padding_at_the_end():
    x = torch.arange(10.0).reshape(2, 5, 1)
    r = reverse_within(x, torch.tensor([3, 5]))
    assert r[:, :, 0].tolist() == [[2.0, 1.0, 0.0, 3.0, 4.0], [9.0, 8.0, 7.0, 6.0, 5.0]]
    assert torch.equal(reverse_within(r, torch.tensor([3, 5])), x)


@pytest.mark.parametrize("name", ["bilstm", "bigru", "rnn"])
def test_padded_run_equals_packed_run_on_valid_frames(name):
    m = _model(name, frontend="stack", projection=6 if name == "bigru" else 0)
    x, n = _batch(_feats([23, 9, 14]), pad_value=1e3)
    with torch.no_grad():
        h, out_len = m.frontend(x, n)
        fast, _ = m.rnn(h, out_len)
        exact, _ = m.rnn(h, out_len, exact_state=True)
    for i, k in enumerate(out_len.tolist()):
        torch.testing.assert_close(fast[i, :k], exact[i, :k], atol=1e-6, rtol=1e-6)


# ---------------------------------------------------------------- training behaviour


def test_eval_is_deterministic_and_train_mode_uses_dropout():
    m = _model("bigru", dropout=0.5, frontend="resnet")
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


@pytest.mark.parametrize(
    ("name", "extra"),
    [
        ("lstm", {"subsample": 3}),
        ("bigru", {"frontend": "resnet", "head": "classifier", "pool": "attention"}),
        ("bigru", {"projection": 8, "head": "classifier", "pool": "last"}),
        ("dnn", {"frontend": "stack", "head": "frame", "context": 2}),
        ("rnn", {"frontend": "none", "subsample": 1, "nonlinearity": "relu", "head": "classifier", "pool": "last"}),
        ("bilstm", {"projection": 8, "head": "classifier", "pool": "mean"}),
    ],
)
def test_gradients_reach_every_parameter(name, extra):
    m = _model(name, **extra).train()
    x, n = _batch(_feats([30, 18]))
    out, out_len = m(x, n)
    if m.task == "ctc":
        targets = torch.tensor([[1, 2, 3], [4, 5, 0]])
        loss = torch.nn.functional.ctc_loss(out.transpose(0, 1), targets, out_len, torch.tensor([3, 2]), blank=0)
    elif m.task == "classifier":
        loss = torch.nn.functional.nll_loss(out, torch.tensor([1, 4]))
    else:
        mask = torch.arange(out.shape[1])[None] < out_len[:, None]
        loss = -(out[..., 2] * mask).sum()
    assert torch.isfinite(loss)
    loss.backward()
    for pname, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_dropout_drops_at_rate_p_scales_to_an_unbiased_mean_and_is_seeded(p):
    from asrkit.models.network import Dropout

    drop = Dropout(p).train()
    x = torch.ones(1000, 1001)
    torch.manual_seed(0)
    y = drop(x)
    dropped = (y == 0).float().mean().item()
    assert abs(dropped - p) < 0.003  # 1e6 draws: the standard error is at most 5e-4
    assert abs(y.mean().item() - 1.0) < 0.01
    assert torch.equal(torch.unique(y), torch.tensor([0.0, y.max().item()]))
    torch.manual_seed(0)
    assert torch.equal(drop(x), y)  # the same seed, the same mask
    assert not torch.equal(drop(x), y)  # the next draw, another mask
    rows = drop(torch.ones(4, 10000))
    assert len({tuple((r == 0).nonzero().flatten()[:20].tolist()) for r in rows}) == 4  # no repeated pattern
    assert torch.equal(drop.eval()(x), x)
    assert torch.equal(Dropout(1.0).train()(x), torch.zeros_like(x))
