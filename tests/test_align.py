"""Tests for asrkit.align: CTC forward-backward posteriors, Viterbi state paths, saving and plotting."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from asrkit.align import (
    Span,
    best_state_path,
    ctc_alpha_beta,
    ctc_posteriors,
    extend_with_blanks,
    forced_align,
    save_alignment,
    segments,
)
from asrkit.align import core, scaled

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
    logits = torch.randn(T, V, generator=torch.Generator().manual_seed(T + 7 * V), dtype=torch.float64) * 2
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


@pytest.mark.parametrize("T,V,targets", SHAPES)
def test_token_occupancy_matches_ctc_loss_gradient_wrt_log_probs(T, V, targets):
    # torch's ctc_loss backward does not return d(loss)/d(log_probs) = -occupancy: it assumes log_softmax
    # inputs and returns the gradient w.r.t. the logits underneath, d(loss_n)/d(lp[t, n, k]) = exp(lp[t, n, k])
    # - occ[t, k], with occ[t, k] = sum of gamma[t, s] over the states s labelled k (checked by experiment,
    # torch 2.11, float64, CPU; with reduction='none' and a sum of the losses). So occ = exp(lp) - grad.
    lp = _random_log_probs(T, V, seed=3 * T + V).requires_grad_(True)
    tg = torch.tensor(targets, dtype=torch.long)
    loss = F.ctc_loss(
        lp.unsqueeze(1), tg.unsqueeze(0), torch.tensor([T]), torch.tensor([len(targets)]), reduction="none"
    )
    assert loss.shape == (1,)
    (grad,) = torch.autograd.grad(loss.sum(), lp)
    occ_ref = lp.detach().exp() - grad
    _, gamma = ctc_posteriors(lp.detach(), tg)
    ext, _ = extend_with_blanks(tg)
    torch.testing.assert_close(_token_occupancy(gamma, ext, V), occ_ref, rtol=0, atol=1e-5)


def _bench_like(N: int, T: int, L: int, V: int, seed: int, scale: float = 3.0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    lp = (torch.randn(N, T, V, generator=g, dtype=torch.float64) * scale).log_softmax(-1).to(dtype)
    return lp, torch.randint(1, V, (N, L), generator=g)


def test_batched_float32_T1000_matches_float64_log_space_reference_without_fallback():
    # Random log-probs at T=1000 are the hard case: within a frame, alphas of states that still carry
    # posterior mass sit up to ~e^-500 below the front, beyond float32's range.
    N, T, L, V = 3, 1000, 200, 30
    lp, tg = _bench_like(N, T, L, V, seed=42)
    in_len, tg_len = torch.tensor([T, 900, 1000]), torch.tensor([L, 150, 120])
    ll, gamma = ctc_posteriors(lp, tg, input_lengths=in_len, target_lengths=tg_len)
    assert ll.dtype == torch.float32 and gamma.dtype == torch.float32 and gamma.shape == (N, T, 2 * L + 1)
    # Independent reference: the float64 log-space recursion, and torch's ctc_loss for the totals.
    la, lb, ll_ref, frame_ok, state_ok = core._forward_backward(lp.double(), tg, in_len, tg_len, 0)
    g_ref = torch.where(frame_ok.unsqueeze(2) & state_ok.unsqueeze(1), (la + lb - ll_ref.view(-1, 1, 1)).exp(), 0.0)
    err = (gamma.double() - g_ref).abs().max().item()
    assert err < 1e-5, err
    ctc = -F.ctc_loss(lp.double().transpose(0, 1), tg, in_len, tg_len, reduction="none")
    torch.testing.assert_close(ll.double(), ctc, rtol=1e-6, atol=0)
    # ... and the fast path produced it (no row went to the log-space fallback).
    tab = core._scaled_forward_backward(lp, tg, in_len, tg_len, 0, torch.float64, torch.float32)
    assert not tab.fallback.any()
    torch.testing.assert_close(tab.loglik, ctc, rtol=1e-9, atol=0)


def test_float32_recursion_loses_that_mass_and_the_check_catches_it():
    # The consistency check (every frame's sum_s alpha*beta must equal P(x)) is what sends rows whose range
    # the recursion's dtype cannot hold to the log-space fallback; a float32 recursion must trip it here.
    lp, tg = _bench_like(2, 1000, 200, 30, seed=42)
    lens = (torch.tensor([1000, 1000]), torch.tensor([200, 200]))
    tab = core._scaled_forward_backward(lp, tg, *lens, 0, torch.float32, torch.float32)
    assert tab.fallback.all()
    # A short utterance fits float32's range and passes.
    tab = core._scaled_forward_backward(
        lp[:, :40], tg[:, :10], torch.tensor([40, 40]), torch.tensor([10, 10]), 0, torch.float32, torch.float32
    )
    assert not tab.fallback.any()


def test_fallback_rows_are_redone_in_log_space(monkeypatch):
    lp, tg = _bench_like(3, 300, 60, 12, seed=8, dtype=torch.float64)
    lens = (torch.tensor([300, 250, 300]), torch.tensor([60, 40, 50]))
    ll_ok, g_ok = ctc_posteriors(lp, tg, 0, *lens)
    real = core._scaled_forward_backward

    def flag_row_one(*args, **kw):
        tab = real(*args, **kw)
        tab.fallback = torch.tensor([False, True, False])
        tab.gamma[1] = 7.0  # garbage that the fallback must overwrite
        return tab

    monkeypatch.setattr(core, "_scaled_forward_backward", flag_row_one)
    ll, g = ctc_posteriors(lp, tg, 0, *lens)
    torch.testing.assert_close(ll, ll_ok, rtol=1e-12, atol=0)
    torch.testing.assert_close(g, g_ok, rtol=0, atol=1e-12)


def test_eager_scripted_two_threads_and_chunks_agree(monkeypatch):
    lp, tg = _bench_like(5, 200, 40, 20, seed=3)
    lens = (torch.tensor([200, 120, 64, 199, 150]), torch.tensor([40, 30, 10, 1, 0]))
    threads = torch.get_num_threads()
    runs = {}
    try:
        torch.set_num_threads(1)
        runs["eager"] = ctc_posteriors(lp, tg, 0, *lens)  # this size runs the loops eagerly
        monkeypatch.setattr(scaled, "_SCRIPT_CELLS", 0)
        assert scaled._step_fns(True)[2], "TorchScript loops did not compile"
        runs["scripted"] = ctc_posteriors(lp, tg, 0, *lens)
        torch.set_num_threads(2)  # scripted forward and backward loops in two threads, small gamma chunks
        runs["two_threads"] = ctc_posteriors(lp, tg, 0, *lens)
        torch.set_num_threads(1)
        monkeypatch.setattr(core, "_CHUNK_BYTES", 1)  # one utterance per chunk
        runs["chunks"] = ctc_posteriors(lp, tg, 0, *lens)
    finally:
        torch.set_num_threads(threads)
    ll1, g1 = runs.pop("eager")
    for name, (ll, g) in runs.items():
        torch.testing.assert_close(ll, ll1, rtol=1e-7, atol=0, msg=name)
        torch.testing.assert_close(g, g1, rtol=0, atol=1e-7, msg=name)
    ref = -F.ctc_loss(lp.double().transpose(0, 1), tg, *lens, reduction="none")
    torch.testing.assert_close(ll1.double(), ref, rtol=1e-6, atol=0)


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


# Hand example 2: 3 symbols (blank=0, "1", "2"), 6 frames, targets [1, 2, 2]: extended states
# s0..s6 = [b, 1, b, 2, b, 2, b]; the skip s1 -> s3 is allowed ("1" -> "2"), s3 -> s5 is not ("2" -> "2").
# The tables below are exact (decimal inputs): alpha_t(s) sums the emission products of every valid path
# prefix that ends in s at t, beta_t(s) those of every suffix from s at t (emissions after t) that ends in
# s5 or s6, and P = alpha_5(s5) + alpha_5(s6) = 0.14364 over the 28 complete paths; gamma = alpha*beta/P.
# `_brute_force_tables` recomputes all three by enumerating state paths, independently of asrkit.
HAND6_PROBS = [[0.5, 0.3, 0.2], [0.2, 0.6, 0.2], [0.4, 0.3, 0.3], [0.3, 0.2, 0.5], [0.6, 0.1, 0.3], [0.2, 0.2, 0.6]]
HAND6_TARGETS = [1, 2, 2]
HAND6_P = 0.14364
HAND6_ALPHA = [
    [0.5, 0.3, 0.0, 0.0, 0.0, 0.0, 0.0],
    [0.1, 0.48, 0.06, 0.06, 0.0, 0.0, 0.0],
    [0.04, 0.174, 0.216, 0.18, 0.024, 0.0, 0.0],
    [0.012, 0.0428, 0.117, 0.285, 0.0612, 0.012, 0.0],
    [0.0072, 0.00548, 0.09588, 0.13344, 0.20772, 0.02196, 0.0072],
    [0.00144, 0.002536, 0.020272, 0.14088, 0.068232, 0.137808, 0.005832],
]
HAND6_BETA = [
    [0.1512, 0.2268, 0.0864, 0.09216, 0.0576, 0.01872, 0.00288],
    [0.054, 0.234, 0.18, 0.252, 0.2088, 0.0792, 0.0144],
    [0.0, 0.18, 0.18, 0.36, 0.36, 0.216, 0.036],
    [0.0, 0.0, 0.0, 0.36, 0.6, 0.36, 0.12],
    [0.0, 0.0, 0.0, 0.0, 0.6, 0.8, 0.2],
    [0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0],
]
HAND6_GAMMA = [
    [0.5263157894736842, 0.47368421052631576, 0.0, 0.0, 0.0, 0.0, 0.0],
    [0.03759398496240601, 0.7819548872180451, 0.07518796992481203, 0.10526315789473684, 0.0, 0.0, 0.0],
    [0.0, 0.21804511278195488, 0.2706766917293233, 0.45112781954887216, 0.06015037593984962, 0.0, 0.0],
    [0.0, 0.0, 0.0, 0.7142857142857143, 0.2556390977443609, 0.03007518796992481, 0.0],
    [0.0, 0.0, 0.0, 0.0, 0.8676691729323308, 0.12230576441102757, 0.010025062656641603],
    [0.0, 0.0, 0.0, 0.0, 0.0, 0.9593984962406015, 0.0406015037593985],
]


def _brute_force_tables(probs, ext):
    """alpha, beta, gamma and P by enumerating state sequences (no recursion), for tiny cases."""
    import itertools

    T, S = len(probs), len(ext)

    def step_ok(a, b):
        return b in (a, a + 1) or (b == a + 2 and ext[b] != 0 and ext[b] != ext[a])

    def valid(seq):
        return all(step_ok(a, b) for a, b in zip(seq, seq[1:]))

    def weight(seq, t0):
        return math.prod(probs[t0 + i][ext[s]] for i, s in enumerate(seq))

    alpha = [[0.0] * S for _ in range(T)]
    beta = [[0.0] * S for _ in range(T)]
    for t in range(T):
        for seq in itertools.product(range(S), repeat=t + 1):
            if seq[0] in (0, 1) and valid(seq):
                alpha[t][seq[-1]] += weight(seq, 0)
        for seq in itertools.product(range(S), repeat=T - t):
            if seq[-1] in (S - 1, S - 2) and valid(seq):
                beta[t][seq[0]] += weight(seq[1:], t + 1)
    total = alpha[T - 1][S - 1] + alpha[T - 1][S - 2]
    gamma = [[alpha[t][s] * beta[t][s] / total for s in range(S)] for t in range(T)]
    return alpha, beta, gamma, total


def test_hand_computed_six_frame_tables():
    ext = [0, 1, 0, 2, 0, 2, 0]
    alpha, beta, gamma, total = _brute_force_tables(HAND6_PROBS, ext)
    np.testing.assert_allclose(alpha, HAND6_ALPHA, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(beta, HAND6_BETA, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(gamma, HAND6_GAMMA, rtol=1e-12, atol=1e-15)
    assert total == pytest.approx(HAND6_P, rel=1e-12)

    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 1e-6)):
        lp = torch.tensor(HAND6_PROBS, dtype=torch.float64).log().to(dtype)
        ll, g = ctc_posteriors(lp, HAND6_TARGETS)
        assert ll.dtype == dtype and ll.item() == pytest.approx(math.log(HAND6_P), rel=tol)
        torch.testing.assert_close(g.double(), torch.tensor(HAND6_GAMMA, dtype=torch.float64), rtol=0, atol=tol)
        la, lb, ll2 = ctc_alpha_beta(lp, HAND6_TARGETS)
        torch.testing.assert_close(la.exp(), torch.tensor(HAND6_ALPHA, dtype=torch.float64), rtol=0, atol=tol)
        torch.testing.assert_close(lb.exp(), torch.tensor(HAND6_BETA, dtype=torch.float64), rtol=0, atol=tol)
        assert ll2.item() == pytest.approx(math.log(HAND6_P), rel=tol)


def test_forced_align_equals_torchaudio():
    import torchaudio.functional as taf

    for T, V, targets in [s for s in SHAPES if s[2]] + [(1000, 30, list(range(1, 30)) * 6 + [5, 5, 5])]:
        lp = _random_log_probs(T, V, seed=T * 3 + V)
        for dtype in (torch.float64, torch.float32):
            path, scores = forced_align(lp.to(dtype), targets)
            ref_path, ref_scores = taf.forced_align(
                lp.to(dtype).unsqueeze(0), torch.tensor([targets], dtype=torch.int32)
            )
            assert path.dtype == torch.int64 and path.shape == (T,) and scores.dtype == dtype
            assert path.tolist() == ref_path[0].tolist()
            torch.testing.assert_close(scores, ref_scores[0], rtol=0, atol=0)
            # The scores are the log-probs of the path's labels.
            torch.testing.assert_close(scores, lp.to(dtype)[torch.arange(T), path], rtol=0, atol=0)
            assert _collapse(path.tolist()) == list(targets)
    path, scores = forced_align(_random_log_probs(5, 4, seed=1), [])
    assert path.tolist() == [0] * 5 and scores.shape == (5,)
    with pytest.raises(ValueError, match="cannot align"):
        forced_align(_random_log_probs(3, 4, seed=1), [1, 1, 2])
    with pytest.raises(ValueError, match="other than the blank"):
        forced_align(_random_log_probs(9, 4, seed=1), [1, 0, 2])


def test_alignment_takes_inputs_of_any_strides():
    lp = _random_log_probs(40, 6, seed=7)
    targets = [1, 2, 2, 5, 3]
    want_path, want_scores = forced_align(lp, targets)
    want_post = ctc_posteriors(lp, targets)
    views = {
        "transposed": lp.t().contiguous().t(),  # (T, V) with column-major strides
        "fortran": torch.from_numpy(np.asfortranarray(lp.numpy())),
        "sliced": torch.stack([lp, lp], 2)[:, :, 0],  # every other float of a wider buffer
    }
    for name, view in views.items():
        assert not view.is_contiguous(), name
        path, scores = forced_align(view, torch.tensor([0, 1, 0, 2, 0, 2, 0, 5, 0, 3], dtype=torch.int32)[1::2])
        assert path.tolist() == want_path.tolist(), name
        torch.testing.assert_close(scores, want_scores, rtol=0, atol=0)
        torch.testing.assert_close(ctc_posteriors(view, targets), want_post)


# A peaky hand-made input: symbols blank, " ", "a", "b"; transcript "ab ba"; 14 frames of 20 ms.
PEAKY_SYMBOLS = ["<b>", " ", "a", "b"]
PEAKY_TARGETS = [2, 3, 1, 3, 2]
PEAKY_PATH = [0, 2, 2, 0, 3, 0, 1, 1, 0, 3, 3, 3, 2, 0]


def test_segments_on_a_peaky_input():
    T, V = len(PEAKY_PATH), len(PEAKY_SYMBOLS)
    probs = torch.full((T, V), 0.1 / (V - 1), dtype=torch.float64)
    probs[torch.arange(T), PEAKY_PATH] = 0.9
    probs[4, 3], probs[4, 0] = 0.6, 0.4 - 2 * 0.1 / (V - 1)  # one less certain frame
    path, scores = forced_align(probs.log(), PEAKY_TARGETS)
    assert path.tolist() == PEAKY_PATH
    tokens, words = segments(path, scores, PEAKY_TARGETS, PEAKY_SYMBOLS, frame_shift=0.02)
    got = [(t.label, t.first_frame, t.n_frames) for t in tokens]
    assert got == [("a", 1, 2), ("b", 4, 1), (" ", 6, 2), ("b", 9, 3), ("a", 12, 1)]
    for t, (start, dur) in zip(tokens, [(0.02, 0.04), (0.08, 0.02), (0.12, 0.04), (0.18, 0.06), (0.24, 0.02)]):
        assert (
            t.start == pytest.approx(start) and t.duration == pytest.approx(dur) and t.end == pytest.approx(start + dur)
        )
    assert [t.conf for t in tokens] == pytest.approx([0.9, 0.6, 0.9, 0.9, 0.9])
    assert [(w.label, w.first_frame, w.n_frames) for w in words] == [("ab", 1, 4), ("ba", 9, 4)]
    assert [w.start for w in words] == pytest.approx([0.02, 0.18])
    assert [w.duration for w in words] == pytest.approx([0.08, 0.08])
    # a word is as confident as its least confident token
    assert words[0].conf == pytest.approx(0.6) and words[1].conf == pytest.approx(0.9)
    assert [(w.first_frame, w.end_frame) for w in words] == [(1, 5), (9, 13)]
    assert isinstance(words[0], Span) and set(words[0].as_dict()) == {"label", "start", "end", "conf"}
    # No " " among the symbols and no `space`: no words; a separator that never occurs: one word.
    assert segments(path, scores, PEAKY_TARGETS, ["<b>", "|", "a", "b"], 0.02)[1] == []
    (one,) = segments(path, scores, PEAKY_TARGETS, PEAKY_SYMBOLS, 0.02, space=-1)[1]
    assert (one.label, one.first_frame, one.n_frames) == ("ab ba", 1, 12)
    # A path that spells something else is refused.
    with pytest.raises(ValueError, match="does not spell"):
        segments(path, scores, [2, 3, 1, 3], PEAKY_SYMBOLS, 0.02)


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
