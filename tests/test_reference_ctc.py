"""The NumPy reference CTC against a brute-force enumeration of paths and against torch.nn.functional.ctc_loss.

The handout (HW3P1 section 4.1, Table 5) defines the loss as the batch mean of the divergence
DIV = -sum_t sum_r gamma(t, r) log y_t[S_r] and its backward (4.1.2) as -sum_{r: S_r = l} gamma(t, r) / y_t[l] per
utterance. Its text gives no loss values (Figure 17's tables did not survive as text), so the expected values here
come from enumerating every alignment (small T) or from torch.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from asrkit.reference import CTC, CTCLoss, LogCTC, log_backward, log_forward
from tests.ctc_helpers import collapse

# ---- the hand example: blank + 2 symbols, 6 frames, target [1, 2, 2] (extended: _ 1 _ 2 _ 2 _) ----
Y_HAND = np.array(
    [
        [0.5, 0.3, 0.2],
        [0.4, 0.4, 0.2],
        [0.3, 0.2, 0.5],
        [0.2, 0.1, 0.7],
        [0.6, 0.1, 0.3],
        [0.3, 0.3, 0.4],
    ]
)
TARGET_HAND = (1, 2, 2)
# the expected tables (T, S), printed once from brute_force_tables below; test_brute_force_reproduces_tables re-derives them
ALPHA_HAND = np.array(
    [
        [0.5, 0.3, 0, 0, 0, 0, 0],
        [0.2, 0.32, 0.12, 0.06, 0, 0, 0],
        [0.06, 0.104, 0.132, 0.25, 0.018, 0, 0],
        [0.012, 0.0164, 0.0472, 0.3402, 0.0536, 0.0126, 0],
        [0.0072, 0.00284, 0.03816, 0.12114, 0.23628, 0.01986, 0.00756],
        [0.00216, 0.003012, 0.0123, 0.064856, 0.107226, 0.102456, 0.008226],
    ]
)
BETA_HAND = np.array(
    [
        [0.09864, 0.20454, 0.11934, 0.15294, 0.13842, 0.03738, 0.00432],
        [0.0336, 0.213, 0.1794, 0.2379, 0.2634, 0.1653, 0.0108],
        [0, 0.168, 0.168, 0.258, 0.363, 0.309, 0.036],
        [0, 0, 0, 0.24, 0.45, 0.39, 0.18],
        [0, 0, 0, 0, 0.4, 0.7, 0.3],
        [0, 0, 0, 0, 0, 1, 1],
    ]
)
GAMMA_HAND = np.array(
    [
        [0.445600910717, 0.554399089283, 0, 0, 0, 0, 0],
        [0.060714479319, 0.615818290237, 0.194503171247, 0.128964059197, 0, 0, 0],
        [0, 0.15785764623, 0.200357781753, 0.582750582751, 0.059033989267, 0, 0],
        [0, 0, 0, 0.737680923727, 0.21792161327, 0.044397463002, 0],
        [0, 0, 0, 0, 0.853905784138, 0.125603079091, 0.02049113677],
        [0, 0, 0, 0, 0, 0.925678972191, 0.074321027809],
    ]
)
P_HAND = 0.110682  # alpha(5, 5) + alpha(5, 6)


def brute_force_tables(y: np.ndarray, target: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """alpha, beta and gamma straight from their definitions, by enumerating every label sequence over the frames."""
    T, V = y.shape
    S = 2 * len(target) + 1

    def prob(seq, t0):
        return float(np.prod([y[t0 + i, k] for i, k in enumerate(seq)]))

    alpha, beta = np.zeros((T, S)), np.zeros((T, S))
    for t in range(T):
        # alpha(t, r): prefixes of t+1 frames that collapse to target[:k] and end in state r (blank: 2k, label: 2k-1)
        for pre in itertools.product(range(V), repeat=t + 1):
            c = collapse(pre)
            if c == target[: len(c)]:
                r = 2 * len(c) if pre[-1] == 0 else 2 * len(c) - 1
                alpha[t, r] += prob(pre, 0)
        # beta(t, r): suffixes of frames t+1.. that complete the target from state r
        for r in range(S):
            state = ([x for label in target for x in (0, label)] + [0])[
                : r + 1
            ]  # a path that sits in state r: _ l1 _ l2 ...
            for suf in itertools.product(range(V), repeat=T - 1 - t):
                if collapse(state + list(suf)) == target:
                    beta[t, r] += prob(suf, t + 1)
    P = sum(prob(p, 0) for p in itertools.product(range(V), repeat=T) if collapse(p) == target)
    return alpha, beta, alpha * beta / P


def test_brute_force_reproduces_tables():
    alpha, beta, gamma = brute_force_tables(Y_HAND, TARGET_HAND)
    np.testing.assert_allclose(alpha, ALPHA_HAND, rtol=0, atol=1e-12)
    np.testing.assert_allclose(beta, BETA_HAND, rtol=0, atol=1e-12)
    np.testing.assert_allclose(gamma, GAMMA_HAND, rtol=0, atol=1e-11)


def test_extend_target_with_blank():
    ext, skip = CTC().extend_target_with_blank(np.array(TARGET_HAND))
    assert ext.tolist() == [0, 1, 0, 2, 0, 2, 0]
    assert skip.tolist() == [
        False,
        False,
        False,
        True,
        False,
        False,
        False,
    ]  # 1 -> 2 may skip the blank, 2 -> 2 may not


@pytest.mark.parametrize("cls", [CTC, LogCTC])
def test_alpha_beta_gamma_by_hand(cls):
    ctc = cls()
    ext, skip = ctc.extend_target_with_blank(np.array(TARGET_HAND))
    log = cls is LogCTC
    with np.errstate(divide="ignore"):
        y = np.log(Y_HAND) if log else Y_HAND
        alpha, beta = ctc.get_forward_probs(y, ext, skip), ctc.get_backward_probs(y, ext, skip)
        gamma = ctc.get_posterior_probs(alpha, beta)
    if log:
        alpha, beta, gamma = np.exp(alpha), np.exp(beta), np.exp(gamma)
    np.testing.assert_allclose(alpha, ALPHA_HAND, rtol=0, atol=1e-12)
    np.testing.assert_allclose(beta, BETA_HAND, rtol=0, atol=1e-12)
    np.testing.assert_allclose(gamma, GAMMA_HAND, rtol=0, atol=1e-11)
    np.testing.assert_allclose((alpha * beta).sum(axis=1), P_HAND, rtol=1e-12)  # sum_r alpha beta = P at every frame
    nll = CTCLoss(log_space=log, objective="nll")
    assert nll.forward(Y_HAND[:, None], np.array([TARGET_HAND]), [6], [3]) == pytest.approx(-np.log(P_HAND), rel=1e-12)
    div = CTCLoss(log_space=log)
    expected = -np.sum(GAMMA_HAND * np.log(Y_HAND[:, ext]))  # DIV from the brute-force gamma table
    assert div.forward(Y_HAND[:, None], np.array([TARGET_HAND]), [6], [3]) == pytest.approx(expected, rel=1e-10)


def random_batch(rng: np.random.Generator, T: int, B: int, V: int, Lmax: int):
    """Softmax probabilities (T, B, V), padded targets with repeats, and mixed input and target lengths."""
    logits = rng.normal(size=(T, B, V)) * 2
    y = np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True)
    target = rng.integers(1, V, size=(B, Lmax))
    target[0, 1] = target[0, 0]  # a repeated label, which needs a blank between the two copies
    target_lengths = rng.integers(1, Lmax + 1, size=B)
    target_lengths[0] = Lmax
    input_lengths = rng.integers(2 * Lmax + 1, T + 1, size=B)  # long enough for any target with repeats
    input_lengths[0] = T
    return y, target, input_lengths, target_lengths


def torch_losses(y, target, input_lengths, target_lengths, requires_grad=False):
    """Per-utterance -log P from torch.nn.functional.ctc_loss on log(y), and the float64 leaf tensor for y."""
    yt = torch.tensor(y, dtype=torch.float64, requires_grad=requires_grad)
    losses = F.ctc_loss(
        torch.log(yt),
        torch.tensor(target),
        torch.tensor(input_lengths),
        torch.tensor(target_lengths),
        blank=0,
        reduction="none",
    )
    return losses, yt


def torch_loss_and_grad(y, target, input_lengths, target_lengths):
    """Per-utterance losses from torch and autograd of their mean w.r.t. y, with torch's log_softmax shortcut undone.

    ctc_loss's backward assumes its input is a log_softmax output: it returns exp(lp) - gamma for d(-log P)/d(lp)
    instead of -gamma, so autograd through log(y) gives (1 - gamma/y)/B. Subtract that 1/B on every frame inside the
    input; test_torch_gradient_correction_by_finite_differences checks the corrected value without this argument.
    """
    losses, yt = torch_losses(y, target, input_lengths, target_lengths, requires_grad=True)
    losses.mean().backward()
    T, B = y.shape[:2]
    inside = (np.arange(T)[:, None] < np.asarray(input_lengths)[None, :])[:, :, None]
    return losses.detach().numpy(), yt.grad.numpy() - inside / B


def test_torch_gradient_correction_by_finite_differences():
    y, target, input_lengths, target_lengths = random_batch(np.random.default_rng(3), 7, 2, 3, 2)
    _, grad = torch_loss_and_grad(y, target, input_lengths, target_lengths)
    numeric, h = np.zeros_like(y), 1e-6
    for idx in np.ndindex(*y.shape):
        e = np.zeros_like(y)
        e[idx] = h * y[idx]  # unconstrained perturbation of one probability (y leaves the simplex)
        up = torch_losses(y + e, target, input_lengths, target_lengths)[0].mean().item()
        down = torch_losses(y - e, target, input_lengths, target_lengths)[0].mean().item()
        numeric[idx] = (up - down) / (2 * e[idx])
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-8)
    ctc = CTCLoss(objective="nll")
    ctc.forward(y, target, input_lengths, target_lengths)
    np.testing.assert_allclose(ctc.backward(), numeric, rtol=1e-5, atol=1e-8)


def torch_divergences(y, target, input_lengths, target_lengths) -> np.ndarray:
    """Per-utterance DIV with gamma read off torch's gradient: sum_r gamma(t, r) [S_r = l] = -y_t[l] d(-log P)/dy_t[l]."""
    _, grad = torch_loss_and_grad(y, target, input_lengths, target_lengths)
    B = y.shape[1]
    gamma = -grad * y * B  # grad is of the batch mean: undo the 1/B
    with np.errstate(divide="ignore"):
        return np.array(
            [
                -np.sum(np.where(gamma[:n, b] == 0, 0.0, gamma[:n, b] * np.log(y[:n, b])))
                for b, n in enumerate(input_lengths)
            ]
        )


SHAPES = [(12, 3, 4, 3), (30, 4, 6, 5), (50, 2, 10, 8), (7, 1, 3, 2)]


@pytest.mark.parametrize("objective", ["divergence", "nll"])
@pytest.mark.parametrize("log_space", [False, True])
@pytest.mark.parametrize("shape", SHAPES)
def test_loss_and_gradient_match_torch(shape, log_space, objective):
    y, target, input_lengths, target_lengths = random_batch(np.random.default_rng(sum(shape)), *shape)
    ref_nll, ref_grad = torch_loss_and_grad(y, target, input_lengths, target_lengths)
    B = shape[1]
    ctc = CTCLoss(log_space=log_space, objective=objective)
    mean = ctc.forward(y, target, input_lengths, target_lengths)
    np.testing.assert_allclose(ctc.neg_log_probs, ref_nll, rtol=1e-6, atol=0)
    np.testing.assert_allclose(ctc.divergences, torch_divergences(y, target, input_lengths, target_lengths), rtol=1e-6)
    ref_losses = ref_nll if objective == "nll" else ctc.divergences
    assert mean == pytest.approx(ref_losses.mean(), rel=1e-6)
    dY = ctc.backward()
    assert dY.shape == y.shape
    # torch's gradient is of the batch mean; the handout's backward (section 4.1.2) is each utterance's, undivided
    np.testing.assert_allclose(dY, ref_grad if objective == "nll" else ref_grad * B, rtol=1e-6, atol=1e-12)
    for b, n in enumerate(input_lengths):
        assert np.all(dY[n:, b] == 0) and np.any(dY[n - 1, b] != 0)  # frames past a shorter input get no gradient


def brute_force_torch(y: np.ndarray, target: tuple[int, ...]) -> dict[str, np.ndarray | float]:
    """Every alignment of one utterance enumerated in torch: -log P, DIV, the posterior entropy and three gradients.

    With P(path) = prod_t y_t[path_t] over the alignments that collapse to the target, P = sum P(path) and
    q(path) = P(path) / P, DIV = -sum_path q(path) log P(path) = -sum_t sum_r gamma(t, r) log y_t[S_r].
    """
    T, V = y.shape
    paths = [p for p in itertools.product(range(V), repeat=T) if collapse(p) == target]
    idx = torch.tensor(paths)
    out: dict[str, np.ndarray | float] = {}
    for name in ("nll", "div_q_fixed", "div_total"):
        yt = torch.tensor(y, dtype=torch.float64, requires_grad=True)
        log_pp = torch.log(yt[torch.arange(T), idx]).sum(dim=1)  # log P(path), one per alignment
        nll = -torch.logsumexp(log_pp, dim=0)
        q = torch.exp(log_pp + nll)
        if name == "nll":
            loss = nll
            out["nll"] = nll.item()
            out["entropy"] = -(q * torch.log(q)).sum().item()
        else:
            loss = -((q.detach() if name == "div_q_fixed" else q) * log_pp).sum()
            out["div"] = loss.item()
        loss.backward()
        out["grad_" + name] = yt.grad.numpy()
    return out


def course_style_batch(rng: np.random.Generator, normalised: bool):
    """A batch of two like the course's tests (uniform random 'probabilities', rows not summing to 1), or softmaxed."""
    y = rng.uniform(0.05, 1.0, size=(6, 2, 3))
    if normalised:
        y = y / y.sum(axis=-1, keepdims=True)
    target = np.array([[1, 2], [2, 0]])  # the second target is padded: one label
    return y, target, np.array([6, 4]), np.array([2, 1])


@pytest.mark.parametrize("log_space", [False, True])
@pytest.mark.parametrize("normalised", [False, True])
def test_divergence_and_gradients_by_brute_force(normalised, log_space):
    y, target, input_lengths, target_lengths = course_style_batch(np.random.default_rng(5), normalised)
    bf = [
        brute_force_torch(y[:n, b], tuple(target[b, :m])) for b, (n, m) in enumerate(zip(input_lengths, target_lengths))
    ]
    div = CTCLoss(log_space=log_space)
    mean_div = div.forward(y, target, input_lengths, target_lengths)
    assert mean_div == pytest.approx(np.mean([r["div"] for r in bf]), rel=1e-10)
    nll = CTCLoss(log_space=log_space, objective="nll")
    mean_nll = nll.forward(y, target, input_lengths, target_lengths)
    assert mean_nll == pytest.approx(np.mean([r["nll"] for r in bf]), rel=1e-10)
    d_div, d_nll = div.backward(), nll.backward()
    for b, n in enumerate(input_lengths):
        # section 4.1.2: -sum gamma / y, which is the derivative of DIV with the posterior held fixed, not divided by B
        np.testing.assert_allclose(d_div[:n, b], bf[b]["grad_div_q_fixed"], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(d_nll[:n, b], bf[b]["grad_nll"] / len(input_lengths), rtol=1e-9, atol=1e-12)
        assert np.all(d_div[n:, b] == 0) and np.all(d_nll[n:, b] == 0)


@pytest.mark.parametrize("normalised", [False, True])
def test_handout_gradient_is_the_nll_gradient(normalised):
    # the seeds README: the course's divergence is the one "whose gradient is d(-log P)/dy"; that holds with gamma held
    # fixed (as section 4.1.2 computes it), for normalised and unnormalised y alike, and not for DIV's total derivative
    y, target, input_lengths, target_lengths = course_style_batch(np.random.default_rng(11), normalised)
    ctc = CTCLoss()
    ctc.forward(y, target, input_lengths, target_lengths)
    dY = ctc.backward()
    for b, n in enumerate(input_lengths):
        bf = brute_force_torch(y[:n, b], tuple(target[b, : target_lengths[b]]))
        np.testing.assert_allclose(bf["grad_div_q_fixed"], bf["grad_nll"], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(dY[:n, b], bf["grad_nll"], rtol=1e-9, atol=1e-12)
        assert np.abs(bf["grad_div_total"] - bf["grad_nll"]).max() > 1e-2


@pytest.mark.parametrize("normalised", [False, True])
def test_divergence_is_nll_plus_posterior_entropy(normalised):
    # DIV = E_q[-log P(path)] = -log P + H(q): the two objectives differ by the entropy of the alignment posterior
    y, target, input_lengths, target_lengths = course_style_batch(np.random.default_rng(2), normalised)
    ctc = CTCLoss()
    ctc.forward(y, target, input_lengths, target_lengths)
    for b, n in enumerate(input_lengths):
        bf = brute_force_torch(y[:n, b], tuple(target[b, : target_lengths[b]]))
        assert bf["entropy"] > 0.1
        assert ctc.divergences[b] - ctc.neg_log_probs[b] == pytest.approx(bf["entropy"], rel=1e-9)
        assert ctc.neg_log_probs[b] == pytest.approx(bf["nll"], rel=1e-10)


def test_divergence_equals_nll_when_one_alignment_exists():
    # T equal to the target length with no repeated labels: a single alignment, a zero-entropy posterior
    y = np.random.default_rng(4).uniform(0.05, 1.0, size=(3, 1, 4))
    target = np.array([[1, 3, 2]])
    ctc = CTCLoss()
    div = ctc.forward(y, target, [3], [3])
    assert div == pytest.approx(-np.log(y[0, 0, 1] * y[1, 0, 3] * y[2, 0, 2]), rel=1e-12)
    assert div == pytest.approx(ctc.neg_log_probs[0], rel=1e-12)


def test_unknown_objective_is_refused():
    with pytest.raises(ValueError, match="objective"):
        CTCLoss(objective="mean")


def test_long_input_underflows_in_probability_space_only():
    rng = np.random.default_rng(7)
    T, V, L = 2000, 5, 40
    logits = rng.normal(size=(T, 1, V))
    y = np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True)
    target = rng.integers(1, V, size=(1, L))
    ctc = CTC()
    ext, skip = ctc.extend_target_with_blank(target[0])
    alpha = ctc.get_forward_probs(y[:, 0], ext, skip)
    assert alpha[0].max() > 0 and np.all(alpha[-1] == 0)  # every path has probability below 1e-308: it underflows to 0
    with np.errstate(divide="ignore", invalid="ignore"):
        assert CTCLoss(objective="nll").forward(y, target, [T], [L]) == np.inf
        assert np.isnan(CTCLoss().forward(y, target, [T], [L]))  # gamma = 0 / 0
    log_alpha = log_forward(np.log(y[:, 0]), target[0])
    log_beta = log_backward(np.log(y[:, 0]), target[0])
    assert np.isfinite(log_alpha[-1, -2:]).all() and np.isfinite(log_beta[0, :2]).all()
    loss = CTCLoss(log_space=True, objective="nll").forward(y, target, [T], [L])
    ref = torch_losses(y, target, [T], [L])[0].item()
    assert np.isfinite(loss) and loss == pytest.approx(ref, rel=1e-6)
    # P is the same read from either end: log P = logsumexp over the first frame of log alpha + log beta
    assert np.logaddexp.reduce(log_alpha[0] + log_beta[0]) == pytest.approx(-loss, rel=1e-9)
    div = CTCLoss(log_space=True).forward(y, target, [T], [L])
    assert div == pytest.approx(torch_divergences(y, target, [T], [L])[0], rel=1e-6) and div > loss
