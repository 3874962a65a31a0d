"""Tests for asrkit.align: CTC forward-backward posteriors, Viterbi state paths, saving and plotting."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from asrkit.align import (
    best_state_path,
    ctc_alpha_beta,
    ctc_posteriors,
    extend_with_blanks,
    plot_alignment,
    save_alignment,
)

# (T, V, targets): includes repeated labels ("aa", "abba", "aaa") and a path that is just feasible.
SHAPES = [
    (12, 5, [1, 2, 3]),
    (20, 4, [1, 1, 2]),
    (30, 6, [2, 3, 3, 2, 5, 5, 5]),
    (7, 3, [1, 1, 2, 2]),  # T == L + repeats: exactly one valid path
    (50, 10, [4]),
    (9, 4, []),
]


def _random_log_probs(T: int, V: int, seed: int, scale: float = 2.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(T, V, generator=g, dtype=torch.float64) * scale).log_softmax(-1)


def _token_occupancy(gamma: torch.Tensor, ext: torch.Tensor, V: int) -> torch.Tensor:
    """Sum state posteriors by vocabulary symbol: occ[t, k] = sum_{s: ext[s]=k} gamma[t, s]."""
    return gamma @ F.one_hot(ext, V).to(gamma.dtype)


def _collapse(symbols: list[int], blank: int = 0) -> list[int]:
    out, prev = [], None
    for s in symbols:
        if s != prev and s != blank:
            out.append(s)
        prev = s
    return out


def test_extend_with_blanks_and_skip_mask():
    ext, skip = extend_with_blanks([1, 1, 2], blank=0)
    assert ext.tolist() == [0, 1, 0, 1, 0, 2, 0]
    # skip into s only for non-blank s differing from s-2: the second "1" may not skip.
    assert skip.tolist() == [False, False, False, False, False, True, False]
    ext, skip = extend_with_blanks(torch.tensor([3, 4]), blank=2)
    assert ext.tolist() == [2, 3, 2, 4, 2] and skip.tolist() == [False, False, False, True, False]
    ext, skip = extend_with_blanks([])
    assert ext.tolist() == [0] and skip.tolist() == [False]
    with pytest.raises(ValueError):
        extend_with_blanks([1, 0, 2])


@pytest.mark.parametrize("T,V,targets", SHAPES)
def test_loglik_matches_torch_ctc_loss(T, V, targets):
    lp = _random_log_probs(T, V, seed=T * 31 + V)
    tg = torch.tensor(targets, dtype=torch.long)
    ll, gamma = ctc_posteriors(lp, tg)
    ref = -F.ctc_loss(
        lp.unsqueeze(1), tg.unsqueeze(0), torch.tensor([T]), torch.tensor([len(targets)]), reduction="none"
    )[0]
    assert ll.dtype == torch.float64 and ll.dim() == 0
    assert math.isfinite(ll.item())
    assert ll.item() == pytest.approx(ref.item(), rel=1e-6)
    # Each frame's posteriors over states sum to one.
    torch.testing.assert_close(gamma.sum(1), torch.ones(T, dtype=torch.float64), rtol=0, atol=1e-9)
    # alpha/beta tables give the same total at every frame.
    la, lb, ll2 = ctc_alpha_beta(lp, tg)
    per_frame = torch.logsumexp(la + lb, dim=1)
    torch.testing.assert_close(per_frame, ll2.expand(T), rtol=0, atol=1e-9)


@pytest.mark.parametrize("T,V,targets", SHAPES)
def test_token_occupancy_matches_ctc_loss_gradient(T, V, targets):
    logits = (torch.randn(T, V, generator=torch.Generator().manual_seed(T + 7 * V), dtype=torch.float64) * 2)
    logits.requires_grad_(True)
    lp = logits.log_softmax(-1)
    tg = torch.tensor(targets, dtype=torch.long)
    lengths = (torch.tensor([T]), torch.tensor([len(targets)]))
    loss = F.ctc_loss(lp.unsqueeze(1), tg.unsqueeze(0), *lengths, reduction="sum")
    (grad,) = torch.autograd.grad(loss, logits)
    occ_ref = logits.detach().softmax(-1) - grad  # d(-loglik)/d logits = softmax - occupancy

    _, gamma = ctc_posteriors(lp.detach(), tg)
    ext, _ = extend_with_blanks(tg)
    occ = _token_occupancy(gamma, ext, V)
    torch.testing.assert_close(occ, occ_ref, rtol=0, atol=1e-5)


def test_float32_matches_float64_at_T1000():
    T, V, L = 1000, 40, 50
    g = torch.Generator().manual_seed(1234)
    lp32 = (torch.randn(T, V, generator=g) * 3).log_softmax(-1)
    tg = torch.randint(1, V, (L,), generator=g)
    ll32, gamma32 = ctc_posteriors(lp32, tg)
    ll64, gamma64 = ctc_posteriors(lp32.double(), tg)
    assert gamma32.dtype == torch.float32 and ll32.dtype == torch.float32
    assert gamma32.shape == (T, 2 * L + 1)
    assert math.isfinite(ll64.item())
    err = (gamma32.double() - gamma64).abs().max().item()
    assert err < 1e-5, err
    assert ll32.item() == pytest.approx(ll64.item(), rel=1e-6)
    # The posteriors are not trivial: many frames are genuinely uncertain.
    assert (gamma64.max(1).values < 0.9).sum() > 10


def test_batched_equals_per_utterance_with_padding():
    V = 7
    utts = [(15, [1, 2, 2, 3]), (9, [4, 4]), (20, [5, 1, 6, 2, 3, 1]), (6, []), (3, [1, 1, 1])]  # last: impossible
    N, Tmax, Lmax = len(utts), max(t for t, _ in utts), max(len(y) for _, y in utts)
    g = torch.Generator().manual_seed(5)
    # Padding frames hold random log-probs and padded targets random ids: neither may leak into the result.
    lp = (torch.randn(N, Tmax, V, generator=g, dtype=torch.float64) * 2).log_softmax(-1)
    tg = torch.randint(1, V, (N, Lmax), generator=g)
    for n, (_, y) in enumerate(utts):
        tg[n, : len(y)] = torch.tensor(y, dtype=torch.long)
    in_len = torch.tensor([t for t, _ in utts])
    tg_len = torch.tensor([len(y) for _, y in utts])

    ll, gamma = ctc_posteriors(lp, tg, input_lengths=in_len, target_lengths=tg_len)
    assert ll.shape == (N,) and gamma.shape == (N, Tmax, 2 * Lmax + 1)
    assert not torch.isnan(gamma).any() and not torch.isnan(ll).any()
    for n, (T, y) in enumerate(utts):
        ll1, g1 = ctc_posteriors(lp[n, :T], torch.tensor(y, dtype=torch.long))
        S = 2 * len(y) + 1
        if math.isinf(ll1.item()):
            assert ll[n].item() == -math.inf
        else:
            assert ll[n].item() == pytest.approx(ll1.item(), rel=1e-12)
        torch.testing.assert_close(gamma[n, :T, :S], g1, rtol=0, atol=1e-12)
        assert (gamma[n, T:] == 0).all() and (gamma[n, :, S:] == 0).all()
    ref = -F.ctc_loss(lp.transpose(0, 1), tg, in_len, tg_len, reduction="none")
    torch.testing.assert_close(ll, ref, rtol=1e-6, atol=0)


# Hand-worked example: V=3 (blank=0, symbols 1 and 2), targets [1, 2], T=3, probabilities
#        blank   "1"   "2"
#   t0:   0.5    0.4   0.1
#   t1:   0.3    0.3   0.4
#   t2:   0.6    0.1   0.3
# Extended states: s0=blank s1="1" s2=blank s3="2" s4=blank.
# The five length-3 frame labellings that collapse to [1, 2], their state paths and probabilities:
#   (1, 2, b)  states 1,3,4   0.4*0.4*0.6 = 0.096
#   (1, 1, 2)  states 1,1,3   0.4*0.3*0.3 = 0.036
#   (1, 2, 2)  states 1,3,3   0.4*0.4*0.3 = 0.048
#   (b, 1, 2)  states 0,1,3   0.5*0.3*0.3 = 0.045
#   (1, b, 2)  states 1,2,3   0.4*0.3*0.3 = 0.036
#   total P = 0.261
# Path mass through each (t, s), i.e. P * gamma[t, s]:
#   t0: s0 = 0.045 (b12); s1 = 0.096 + 0.036 + 0.048 + 0.036 = 0.216
#   t1: s1 = 0.036 (112) + 0.045 (b12) = 0.081; s2 = 0.036 (1b2); s3 = 0.096 + 0.048 = 0.144
#   t2: s3 = 0.036 + 0.048 + 0.045 + 0.036 = 0.165; s4 = 0.096
# Forward alpha (includes frame t's emission):
#   alpha0 = [0.5, 0.4, 0, 0, 0]
#   alpha1 = [0.5*0.3, (0.5+0.4)*0.3, 0.4*0.3, (0.4 via skip)*0.4, 0] = [0.15, 0.27, 0.12, 0.16, 0]
#   alpha2[s3] = (0.16+0.12+0.27)*0.3 = 0.165, alpha2[s4] = 0.16*0.6 = 0.096 -> P = 0.261
# Backward beta (excludes frame t's emission), beta2 = [0, 0, 0, 1, 1]:
#   beta1 = [0, 0.3, 0.3, 0.3+0.6, 0.6] = [0, 0.3, 0.3, 0.9, 0.6]
#   beta0 = [0.3*0 + 0.3*0.3, 0.3*0.3 + 0.3*0.3 + 0.4*0.9, 0.3*0.3 + 0.4*0.9, 0.4*0.9 + 0.3*0.6, 0.3*0.6]
#         = [0.09, 0.54, 0.45, 0.54, 0.18]
# Best path: (1, 2, b) = states [1, 3, 4] with 0.096.
HAND_PROBS = [[0.5, 0.4, 0.1], [0.3, 0.3, 0.4], [0.6, 0.1, 0.3]]
HAND_MASS = [
    [0.045, 0.216, 0.0, 0.0, 0.0],
    [0.0, 0.081, 0.036, 0.144, 0.0],
    [0.0, 0.0, 0.0, 0.165, 0.096],
]
HAND_ALPHA1 = [0.15, 0.27, 0.12, 0.16, 0.0]
HAND_BETA0 = [0.09, 0.54, 0.45, 0.54, 0.18]
HAND_BETA1 = [0.0, 0.3, 0.3, 0.9, 0.6]


def test_hand_computed_example():
    lp = torch.tensor(HAND_PROBS, dtype=torch.float64).log()
    ll, gamma = ctc_posteriors(lp, [1, 2])
    assert ll.item() == pytest.approx(math.log(0.261), rel=1e-12)
    expected = torch.tensor(HAND_MASS, dtype=torch.float64) / 0.261
    torch.testing.assert_close(gamma, expected, rtol=0, atol=1e-12)

    la, lb, _ = ctc_alpha_beta(lp, [1, 2])
    torch.testing.assert_close(la[1].exp(), torch.tensor(HAND_ALPHA1, dtype=torch.float64), rtol=0, atol=1e-12)
    torch.testing.assert_close(lb[0].exp(), torch.tensor(HAND_BETA0, dtype=torch.float64), rtol=0, atol=1e-12)
    torch.testing.assert_close(lb[1].exp(), torch.tensor(HAND_BETA1, dtype=torch.float64), rtol=0, atol=1e-12)

    assert best_state_path(lp, [1, 2]).tolist() == [1, 3, 4]
    assert best_state_path(lp.float(), torch.tensor([1, 2])).tolist() == [1, 3, 4]


@pytest.mark.parametrize("T,targets", [(2, [1, 2, 3]), (2, [1, 1]), (3, [1, 2, 2]), (0, [1])])
def test_impossible_alignment_gives_minus_inf_and_no_nan(T, targets):
    lp = _random_log_probs(max(T, 1), 4, seed=3)[:T]
    for dtype in (torch.float64, torch.float32):
        ll, gamma = ctc_posteriors(lp.to(dtype), targets)
        assert ll.item() == -math.inf
        assert gamma.shape == (T, 2 * len(targets) + 1)
        assert not torch.isnan(gamma).any() and (gamma == 0).all()
    if T > 0:
        with pytest.raises(ValueError):
            best_state_path(lp, targets)


def test_feasible_with_zero_probability_symbol_gives_minus_inf():
    # Enough frames, but symbol 2 never has any probability: impossible, must not produce NaN.
    lp = torch.full((5, 3), 0.5).log()
    lp[:, 2] = -math.inf
    ll, gamma = ctc_posteriors(lp, [1, 2])
    assert ll.item() == -math.inf and not torch.isnan(gamma).any() and (gamma == 0).all()


@pytest.mark.parametrize("T,V,targets", [s for s in SHAPES if s[2]] + [(200, 30, [3, 3, 7, 1, 1, 1, 9, 2] * 4)])
def test_best_state_path_is_a_valid_alignment(T, V, targets):
    lp = _random_log_probs(T, V, seed=T + V)
    path = best_state_path(lp, targets)
    ext, skip = extend_with_blanks(targets)
    S = ext.numel()
    assert path.shape == (T,) and path.dtype == torch.int64
    assert path[0].item() in (0, 1)
    assert path[-1].item() in (S - 1, S - 2)
    steps = path[1:] - path[:-1]
    assert ((steps >= 0) & (steps <= 2)).all()
    # A jump of two states is only allowed into a state that permits the skip.
    assert skip[path[1:][steps == 2]].all()
    assert _collapse(ext[path].tolist()) == list(targets)
    # Every (frame, state) on the Viterbi path lies on some valid path, so has non-zero posterior.
    _, gamma = ctc_posteriors(lp, targets)
    assert (gamma[torch.arange(T), path] > 0).all()


def test_save_alignment_round_trip(tmp_path):
    lp = _random_log_probs(25, 5, seed=11)
    targets = [1, 3, 3, 2]
    ll, gamma = ctc_posteriors(lp, targets)
    ext, _ = extend_with_blanks(targets)
    path = best_state_path(lp, targets)
    out = tmp_path / "sub" / "utt1.npz"
    save_alignment(out, gamma, ext, path, frame_shift=0.01, loglik=ll.item())
    assert out.exists()
    assert [p.name for p in out.parent.iterdir()] == ["utt1.npz"]  # no leftover temp files
    with np.load(out) as z:
        assert set(z.files) == {"posteriors", "states", "path", "frame_shift", "loglik"}
        assert z["posteriors"].dtype == np.float32 and z["posteriors"].shape == (25, 9)
        np.testing.assert_allclose(z["posteriors"], gamma.numpy(), atol=1e-7)
        assert np.issubdtype(z["states"].dtype, np.integer) and z["states"].tolist() == ext.tolist()
        assert np.issubdtype(z["path"].dtype, np.integer) and z["path"].tolist() == path.tolist()
        assert float(z["frame_shift"]) == 0.01
        assert float(z["loglik"]) == pytest.approx(ll.item(), rel=1e-12)
    # Overwriting goes through the same atomic path; mismatched shapes are refused.
    save_alignment(out, gamma, ext, path, frame_shift=0.02, loglik=ll)
    with np.load(out) as z:
        assert float(z["frame_shift"]) == 0.02
    with pytest.raises(ValueError):
        save_alignment(out, gamma, ext[:-1], path, frame_shift=0.01, loglik=0.0)


def test_plot_alignment_writes_png(tmp_path):
    lp = _random_log_probs(60, 5, seed=2)
    targets = [1, 2, 2, 4]
    _, gamma = ctc_posteriors(lp, targets)
    path = best_state_path(lp, targets)
    ext, _ = extend_with_blanks(targets)
    labels = ["<b>" if k == 0 else str(k) for k in ext.tolist()]
    out = tmp_path / "align.png"
    plot_alignment(out, gamma, labels, path_states=path, frame_shift=0.01, title="utt")
    data = out.read_bytes()
    assert len(data) > 1000 and data[:8] == b"\x89PNG\r\n\x1a\n"
    out2 = tmp_path / "nopath.png"
    plot_alignment(out2, gamma.numpy(), labels)
    assert out2.stat().st_size > 1000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["align.png", "nopath.png"]
    with pytest.raises(ValueError):
        plot_alignment(tmp_path / "bad.png", gamma, labels[:-1])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    V = 8
    lp = (torch.randn(3, 40, V, generator=torch.Generator().manual_seed(9)) * 2).log_softmax(-1)
    tg = torch.tensor([[1, 2, 2, 3], [4, 5, 0, 0], [6, 6, 6, 7]])
    in_len, tg_len = torch.tensor([40, 30, 25]), torch.tensor([4, 2, 4])
    ll_cpu, g_cpu = ctc_posteriors(lp, tg, input_lengths=in_len, target_lengths=tg_len)
    ll_gpu, g_gpu = ctc_posteriors(lp.cuda(), tg.cuda(), input_lengths=in_len.cuda(), target_lengths=tg_len.cuda())
    assert ll_gpu.device.type == "cuda" and g_gpu.device.type == "cuda"
    torch.testing.assert_close(ll_gpu.cpu(), ll_cpu, rtol=1e-6, atol=0)
    torch.testing.assert_close(g_gpu.cpu(), g_cpu, rtol=0, atol=1e-6)
    path_gpu = best_state_path(lp[0].cuda(), tg[0].cuda())
    assert path_gpu.tolist() == best_state_path(lp[0], tg[0]).tolist()
