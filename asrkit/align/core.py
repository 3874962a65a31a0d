"""CTC alignment: forward-backward state posteriors, Viterbi state paths, saving and plotting.

Conventions: the blank index is 0 by default; ``log_probs`` are per-frame log-softmax outputs of
shape (T, V) for one utterance or (N, T, V) for a batch.  The blank-extended label sequence of
targets [a, b, c] is [blank, a, blank, b, blank, c, blank] (2L+1 states); the skip transition
s-2 -> s is allowed when ext[s] != blank and ext[s] != ext[s-2].
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from asrkit.fsutil import atomic_save_png, atomic_write

_NEG_INF = float("-inf")
_CHUNK_BYTES = 1 << 30  # work memory of one batched soft-alignment pass
# The scaled recursions renormalise every this many frames (a frame can shrink the total by its emissions;
# float64 has room for that, and an underflow is caught and sent to the log-space fallback).
_RENORM_EVERY = 4


def _compute_dtype(device: torch.device) -> torch.dtype:
    """Dtype of the internal recursions: float64 everywhere it exists (not on MPS)."""
    return torch.float32 if device.type == "mps" else torch.float64


def _as_index_tensor(x: Sequence[int] | Tensor, device: torch.device | None = None) -> Tensor:
    """Turn a sequence, array or tensor of integers into an int64 tensor (on `device` if given)."""
    t = x if isinstance(x, Tensor) else torch.as_tensor(np.asarray(x))
    if t.numel() > 0 and (t.is_floating_point() or t.is_complex() or t.dtype == torch.bool):
        raise ValueError(f"expected integer label ids, got dtype {t.dtype}")
    t = t.to(torch.int64)
    return t if device is None else t.to(device)


def _to_numpy(x: Tensor | np.ndarray | Sequence) -> np.ndarray:
    """Detach a tensor to a CPU numpy array; pass arrays and sequences through np.asarray."""
    if isinstance(x, Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def extend_with_blanks(targets: Sequence[int] | Tensor, blank: int = 0) -> tuple[Tensor, Tensor]:
    """Return the blank-extended states (2L+1,) of 1-D `targets` and the mask of states allowing a skip from s-2."""
    t = _as_index_tensor(targets)
    if t.dim() != 1:
        raise ValueError(f"targets must be 1-D, got shape {tuple(t.shape)}")
    if bool((t == blank).any()):
        raise ValueError(f"targets contain the blank index {blank}")
    n_states = 2 * t.numel() + 1
    ext = torch.full((n_states,), blank, dtype=torch.int64, device=t.device)
    ext[1::2] = t
    skip = torch.zeros(n_states, dtype=torch.bool, device=t.device)
    skip[2:] = (ext[2:] != blank) & (ext[2:] != ext[:-2])
    return ext, skip


def _prepare(
    log_probs: Tensor,
    targets: Sequence[int] | Tensor,
    input_lengths: Sequence[int] | Tensor | None,
    target_lengths: Sequence[int] | Tensor | None,
    blank: int,
) -> tuple[bool, Tensor, Tensor, Tensor, Tensor]:
    """Check shapes and return (batched?, log_probs (N,T,V), targets (N,L), input_lengths (N,), target_lengths (N,))."""
    if not isinstance(log_probs, Tensor) or not log_probs.is_floating_point():
        raise ValueError("log_probs must be a floating-point tensor")
    device = log_probs.device
    tg = _as_index_tensor(targets, device)
    if log_probs.dim() == 2:
        if tg.dim() != 1:
            raise ValueError(f"for (T, V) log_probs, targets must be 1-D, got shape {tuple(tg.shape)}")
        if input_lengths is not None or target_lengths is not None:
            raise ValueError("input_lengths/target_lengths are only for batched (N, T, V) input")
        single = True
        lp = log_probs.unsqueeze(0)
        tg = tg.unsqueeze(0)
    elif log_probs.dim() == 3:
        if tg.dim() != 2 or tg.shape[0] != log_probs.shape[0]:
            raise ValueError(
                f"for (N, T, V) log_probs, targets must be (N, Lmax), got {tuple(tg.shape)} with N={log_probs.shape[0]}"
            )
        single = False
        lp = log_probs
    else:
        raise ValueError(f"log_probs must be (T, V) or (N, T, V), got shape {tuple(log_probs.shape)}")
    n, t_max, vocab = lp.shape
    if not 0 <= blank < vocab:
        raise ValueError(f"blank index {blank} outside the vocabulary of size {vocab}")
    in_len = (
        torch.full((n,), t_max, dtype=torch.int64, device=device)
        if input_lengths is None
        else _as_index_tensor(input_lengths, device).reshape(-1)
    )
    tg_len = (
        torch.full((n,), tg.shape[1], dtype=torch.int64, device=device)
        if target_lengths is None
        else _as_index_tensor(target_lengths, device).reshape(-1)
    )
    if in_len.numel() != n or tg_len.numel() != n:
        raise ValueError(f"input_lengths and target_lengths must have {n} entries")
    if bool(((in_len < 0) | (in_len > t_max)).any()):
        raise ValueError(f"input_lengths must lie in [0, {t_max}]")
    if bool(((tg_len < 0) | (tg_len > tg.shape[1])).any()):
        raise ValueError(f"target_lengths must lie in [0, {tg.shape[1]}]")
    real = torch.arange(tg.shape[1], device=device).unsqueeze(0) < tg_len.unsqueeze(1)
    if bool((real & ((tg < 0) | (tg >= vocab) | (tg == blank))).any()):
        raise ValueError(f"targets must be ids in [0, {vocab}) other than the blank {blank}")
    return single, lp, tg, in_len, tg_len


def _forward_backward(
    lp: Tensor, tg: Tensor, in_len: Tensor, tg_len: Tensor, blank: int
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Batched log-space forward-backward; returns (log_alpha, log_beta, loglik, frame mask (N,T), state mask (N,S))."""
    device = lp.device
    n, t_max, _ = lp.shape
    n_states = 2 * tg.shape[1] + 1
    lp = lp.to(_compute_dtype(device))

    # Blank-extended states; padded targets become blanks so that the gather below stays in range.
    s_idx = torch.arange(n_states, device=device)
    state_ok = s_idx.unsqueeze(0) < (2 * tg_len + 1).unsqueeze(1)  # (N, S)
    tg_real = torch.arange(tg.shape[1], device=device).unsqueeze(0) < tg_len.unsqueeze(1)
    ext = torch.full((n, n_states), blank, dtype=torch.int64, device=device)
    ext[:, 1::2] = torch.where(tg_real, tg, torch.full_like(tg, blank))
    skip = torch.zeros((n, n_states), dtype=torch.bool, device=device)
    skip[:, 2:] = (ext[:, 2:] != blank) & (ext[:, 2:] != ext[:, :-2])
    skip_next = F.pad(skip[:, 2:], (0, 2), value=False)[:, :n_states]  # transition s -> s+2 allowed
    frame_ok = torch.arange(t_max, device=device).unsqueeze(0) < in_len.unsqueeze(1)  # (N, T)

    em = lp.gather(2, ext.unsqueeze(1).expand(n, t_max, n_states))  # (N, T, S)
    em = em.masked_fill(~state_ok.unsqueeze(1), _NEG_INF)

    log_alpha = torch.full_like(em, _NEG_INF)
    log_beta = torch.full_like(em, _NEG_INF)
    if t_max > 0:
        a = em[:, 0].clone()
        a[:, 2:] = _NEG_INF
        log_alpha[:, 0] = a
        for t in range(1, t_max):
            a1 = F.pad(a, (1, 0), value=_NEG_INF)[:, :n_states]
            a2 = F.pad(a, (2, 0), value=_NEG_INF)[:, :n_states].masked_fill(~skip, _NEG_INF)
            a = torch.logsumexp(torch.stack((a, a1, a2)), dim=0) + em[:, t]
            log_alpha[:, t] = a

        # Beta excludes the emission at t: log P(x_{t+1..T-1} | state s at t).
        final = (s_idx.unsqueeze(0) == (2 * tg_len).unsqueeze(1)) | (
            (s_idx.unsqueeze(0) == (2 * tg_len - 1).unsqueeze(1)) & (tg_len > 0).unsqueeze(1)
        )
        b_init = torch.zeros_like(em[:, 0]).masked_fill(~final, _NEG_INF)
        b = torch.full_like(em[:, 0], _NEG_INF)
        for t in range(t_max - 1, -1, -1):
            if t < t_max - 1:
                nb = b + em[:, t + 1]
                b1 = F.pad(nb[:, 1:], (0, 1), value=_NEG_INF)
                b2 = F.pad(nb[:, 2:], (0, 2), value=_NEG_INF)[:, :n_states].masked_fill(~skip_next, _NEG_INF)
                b = torch.logsumexp(torch.stack((nb, b1, b2)), dim=0)
            b = torch.where((in_len - 1 == t).unsqueeze(1), b_init, b)
            log_beta[:, t] = b

    log_alpha = log_alpha.masked_fill(~frame_ok.unsqueeze(2), _NEG_INF)
    log_beta = log_beta.masked_fill(~frame_ok.unsqueeze(2), _NEG_INF)

    # Total log-likelihood: alpha at the last frame in the last two states.
    last_t = (in_len - 1).clamp(min=0).view(n, 1, 1).expand(n, 1, n_states)
    a_last = log_alpha.gather(1, last_t).squeeze(1) if t_max > 0 else em.new_full((n, n_states), _NEG_INF)
    end_idx = torch.stack(((2 * tg_len), (2 * tg_len - 1).clamp(min=0)), dim=1)
    ends = a_last.gather(1, end_idx)
    ends[:, 1] = ends[:, 1].masked_fill(tg_len == 0, _NEG_INF)
    loglik = torch.logsumexp(ends, dim=1)
    # Zero frames: the empty target has probability 1, anything else is impossible.
    empty_ll = torch.where(tg_len == 0, 0.0, _NEG_INF).to(loglik.dtype)
    loglik = torch.where(in_len == 0, empty_ll, loglik)
    return log_alpha, log_beta, loglik, frame_ok, state_ok


def _feasible(tg: Tensor, in_len: Tensor, tg_len: Tensor) -> Tensor:
    """(N,) bool: whether `in_len` frames can hold the targets (one frame per token plus one blank per repeat)."""
    if tg.shape[1] < 2:
        repeats = torch.zeros_like(tg_len)
    else:
        both_real = torch.arange(1, tg.shape[1], device=tg.device).unsqueeze(0) < tg_len.unsqueeze(1)
        repeats = ((tg[:, 1:] == tg[:, :-1]) & both_real).sum(1)
    return in_len >= tg_len + repeats


class _Tables:
    """What the scaled forward-backward leaves behind (see `_scaled_forward_backward`)."""

    loglik: Tensor  # (N,) float64
    gamma: Tensor  # (N, T, S) compute dtype, zero outside the utterance and for impossible ones
    fallback: Tensor  # (N,) bool: rows that scaling could not represent; recomputed in log space
    log_alpha: Tensor | None = None  # (N, T, S) float64, when asked for
    log_beta: Tensor | None = None


def _flush_denormals_on() -> bool:
    """Whether this thread flushes subnormal floats to zero (no getter exists: a subnormal input reads as zero)."""
    return torch.tensor([5e-324], dtype=torch.float64).mul(1.0).item() == 0.0


class _FlushDenormals:
    """Flush subnormals to zero on this thread (x86 handles them ~100x slower), restoring the old state."""

    def __init__(self, device: torch.device):
        self.active = device.type == "cpu"

    def __enter__(self) -> None:
        if self.active:
            self.was_on = _flush_denormals_on()
            self.active = torch.set_flush_denormal(True)

    def __exit__(self, *exc) -> None:
        if self.active and not self.was_on:
            torch.set_flush_denormal(False)


def _forward_steps(P: Tensor, E: Tensor, idx: Tensor, skip: Tensor, c: Tensor, every: int) -> None:
    """Scaled alphas into P[1:] from P[0] (rows of two zero pads and S states, flat, after two leading zeros).

    Per frame: q = p + shift1(p) + skip * shift2(p); p' = q * em; every `every` frames, c = row sums of p'
    and p' /= c.  Written in TorchScript's subset of Python: large inputs run it scripted (see `_step_fns`).
    """
    R = idx.shape[0]
    W = idx.shape[1]
    em = torch.empty([R, W], dtype=P.dtype, device=P.device)
    q = torch.empty([R * W], dtype=P.dtype, device=P.device)
    em_flat = em.view(-1)
    T = E.shape[0]
    for k in range(T):
        prev = P[k]
        torch.add(prev[2:], prev[1:-1], out=q)
        q.addcmul_(prev[:-2], skip)
        torch.gather(E[k], 1, idx, out=em)
        post = P[k + 1, 2:]
        torch.mul(q, em_flat, out=post)
        if k % every == every - 1 or k == T - 1:
            rows = post.view(R, W)
            ck = c[k].view(R, 1)
            torch.sum(rows, 1, keepdim=True, out=ck)
            rows.div_(ck)


def _backward_steps(B: Tensor, b: Tensor, E: Tensor, idx: Tensor, skip_next: Tensor, c: Tensor, every: int) -> None:
    """Scaled betas (without frame t's emission) into B[t], from frame T-1 down, from b' = `b` (modified).

    Per frame: B[t] = b + shift1(b) + skip_next * shift2(b) (shifts to the left); b = B[t] * em_t, renormalised
    every `every` frames.  `b` has R*W cells and two trailing zeros.  TorchScript-compatible like `_forward_steps`.
    """
    R = idx.shape[0]
    W = idx.shape[1]
    em = torch.empty([R, W], dtype=B.dtype, device=B.device)
    em_flat = em.view(-1)
    body = b[:-2]
    rows = body.view(R, W)
    T = E.shape[0]
    for i in range(T):
        t = T - 1 - i
        beta = B[t]
        torch.add(b[:-2], b[1:-1], out=beta)
        beta.addcmul_(b[2:], skip_next)
        torch.gather(E[t], 1, idx, out=em)
        torch.mul(beta, em_flat, out=body)
        if t % every == 0:
            ct = c[t].view(R, 1)
            torch.sum(rows, 1, keepdim=True, out=ct)
            rows.div_(ct)


_SCRIPTED: tuple | None = None
_SCRIPT_CELLS = 1 << 20  # frames x cells above which the loops run as TorchScript (compiled once per process)


def _step_fns(big: bool) -> tuple:
    """(forward, backward, scripted?): the TorchScript versions for big inputs where they compile, else eager.

    Scripted, the ~5000 small ops of a loop skip Python's per-op overhead (about 40% of a loop at T=1000)
    and release the GIL, so the two loops can run in two threads.  torch.jit.script is deprecated in favour
    of torch.compile, which would unroll these loops; where it is gone or fails, the eager loops run.
    """
    global _SCRIPTED
    if big and _SCRIPTED is None:
        try:
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                _SCRIPTED = (torch.jit.script(_forward_steps), torch.jit.script(_backward_steps), True)
        except Exception:  # noqa: BLE001 - any failure to compile means: use the eager loops
            _SCRIPTED = (_forward_steps, _backward_steps, False)
    return _SCRIPTED if big and _SCRIPTED is not None else (_forward_steps, _backward_steps, False)


def _run_loops(P: Tensor, B: Tensor, b_start: Tensor, E: Tensor, idx: Tensor, skip: Tensor, skip_next: Tensor,
               c_f: Tensor, c_b: Tensor) -> None:
    """Run the forward and backward recursions; scripted on two CPU threads when torch has two or more."""
    device = P.device
    fwd, bwd, scripted = _step_fns(E.shape[0] * P.shape[1] >= _SCRIPT_CELLS)

    def run_fwd() -> None:
        with _FlushDenormals(device):
            fwd(P, E, idx, skip, c_f, _RENORM_EVERY)

    def run_bwd() -> None:
        with _FlushDenormals(device):
            bwd(B, b_start, E, idx, skip_next, c_b, _RENORM_EVERY)

    if scripted and device.type == "cpu" and torch.get_num_threads() >= 2:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(1) as pool:
            job = pool.submit(run_fwd)
            run_bwd()
            job.result()
    else:
        run_fwd()
        run_bwd()


def _scaled_forward_backward(
    lp: Tensor,
    tg: Tensor,
    in_len: Tensor,
    tg_len: Tensor,
    blank: int,
    dtype: torch.dtype,
    out_dtype: torch.dtype,
    log_tables: bool = False,
) -> _Tables:
    """Batched CTC forward-backward in scaled probability space, vectorised over states and utterances.

    Per frame, the emissions are exp(lp - m_t), m_t the largest log-prob among the utterance's own symbols;
    alpha_t = (alpha_{t-1} + shift1 + skip * shift2) * em_t is renormalised to sum one, and the log-scales
    (log c_t + m_t) are summed in float64 for the log-likelihood; beta likewise from the end.  No exp or
    log per cell: each step is six in-place torch ops on all utterances' states at once, laid out as one
    flat vector of rows [0, 0, s_0 .. s_{S-1}], so that the shifts are offsets of one view.  Frames past an
    utterance's end emit blanks only, so its betas wait there at its final state.  See `_run_loops` for
    how the two loops run (TorchScript, two threads).

    `dtype` is that of the recursion.  Within one frame, the alphas of states far behind the probability
    mass can be e^-500 of the front and still carry posterior mass (random log-probs at T=1000 need that
    range): float32 (e^-87) cannot hold them, float64 (e^-708) can.  Rows whose per-frame totals
    sum_s alpha_t(s) beta_t(s) disagree with the log-likelihood lost mass anyway, and rows whose scales
    underflowed, are flagged in `fallback` for the caller to redo in log space.
    """
    device = lp.device
    n, t_max, vocab = lp.shape
    n_tok = tg.shape[1]
    S = 2 * n_tok + 1
    W = S + 2
    M = n * W
    tables = _Tables()
    if t_max == 0:  # no frames: the empty target has probability one, anything else is impossible
        tables.loglik = torch.where(tg_len == 0, 0.0, _NEG_INF).to(torch.float64)
        tables.gamma = torch.zeros((n, 0, S), dtype=out_dtype, device=device)
        tables.fallback = torch.zeros(n, dtype=torch.bool, device=device)
        if log_tables:
            tables.log_alpha = torch.zeros((n, 0, S), dtype=torch.float64, device=device)
            tables.log_beta = torch.zeros((n, 0, S), dtype=torch.float64, device=device)
        return tables

    s_idx = torch.arange(S, device=device)
    n_states = 2 * tg_len + 1
    state_ok = s_idx.unsqueeze(0) < n_states.unsqueeze(1)  # (n, S)
    tg_real = torch.arange(n_tok, device=device).unsqueeze(0) < tg_len.unsqueeze(1)
    ext = torch.full((n, S), blank, dtype=torch.int64, device=device)
    ext[:, 1::2] = torch.where(tg_real, tg, torch.full_like(tg, blank))
    frame_ok = torch.arange(t_max, device=device).unsqueeze(0) < in_len.unsqueeze(1)  # (n, T)

    # Emissions per symbol, scaled per frame by the best of the utterance's own symbols; past the end, blank only.
    present = torch.zeros((n, vocab), dtype=torch.bool, device=device)
    present.scatter_(1, ext, True)
    lpc = lp.to(dtype)
    m = lpc.masked_fill(~present.unsqueeze(1), _NEG_INF).amax(2)
    m = torch.where(torch.isfinite(m) & frame_ok, m, torch.zeros_like(m))  # (n, T)
    emv = (lpc - m.unsqueeze(2)).exp_()
    pad_row = torch.zeros(vocab, dtype=dtype, device=device)
    pad_row[blank] = 1.0
    E = torch.zeros((t_max, n, vocab + 1), dtype=dtype, device=device)  # last column: the zero emission
    E[:, :, :vocab] = torch.where(frame_ok.unsqueeze(2), emv, pad_row).transpose(0, 1)
    idx = torch.full((n, W), vocab, dtype=torch.int64, device=device)
    idx[:, 2:] = torch.where(state_ok, ext, vocab)
    skip = torch.zeros((n, W), dtype=dtype, device=device)
    skip[:, 4:] = ((ext[:, 2:] != blank) & (ext[:, 2:] != ext[:, :-2])).to(dtype)
    skip_next = torch.zeros((n, W), dtype=dtype, device=device)  # s -> s+2 allowed
    skip_next[:, 2:-2] = skip[:, 4:]

    # P[k] (after two leading zeros): scaled alphas of frame k-1, P[0] the start; B[t]: scaled betas of frame t.
    P = torch.empty((t_max + 1, M + 2), dtype=dtype, device=device)
    P[0].zero_()
    P[1:, :2] = 0.0
    P[0, 2:].view(n, W)[:, 2] = 1.0
    B = torch.empty((t_max, M), dtype=dtype, device=device)
    b_start = torch.zeros(M + 2, dtype=dtype, device=device)
    b_start[:M].view(n, W).scatter_(1, (2 + 2 * tg_len).unsqueeze(1), 1.0)
    c_f = torch.ones((t_max, n), dtype=dtype, device=device)  # frames that are not renormalised keep scale 1
    c_b = torch.ones((t_max, n), dtype=dtype, device=device)
    _run_loops(P, B, b_start, E, idx, skip.view(M), skip_next.view(M), c_f, c_b)
    del E

    tiny = torch.finfo(dtype).tiny * 1e6
    zero64 = torch.zeros((), dtype=torch.float64, device=device)
    ok_t = frame_ok.t()  # (T, n)
    bad = (ok_t & ~((c_f > tiny) & (c_b > tiny))).any(0)  # a scale underflowed (or the row is impossible)
    m64 = m.double()
    scale_f = torch.where(ok_t, c_f.double().log(), zero64).t() + m64  # (n, T)
    scale_b = torch.where(ok_t, c_b.double().log(), zero64).t() + m64
    alpha_hat = P[1:, 2:].view(t_max, n, W)  # (T, n, W)
    beta_hat = B.view(t_max, n, W)

    # Log-likelihood: the forward scales up to the last frame and the alphas of the end states.
    last = (in_len - 1).clamp(min=0)
    a_last = alpha_hat[last, torch.arange(n, device=device)]  # (n, W)
    end1 = a_last.gather(1, (2 + 2 * tg_len).unsqueeze(1)).squeeze(1)
    end2 = a_last.gather(1, (1 + 2 * tg_len).unsqueeze(1)).squeeze(1)  # a pad cell (zero) when L = 0
    end = (end1 + end2).double()
    loglik = scale_f.sum(1) + end.log()
    bad |= ~(end > tiny) | ~torch.isfinite(loglik)

    # gamma_t(s) = alpha_t(s) beta_t(s) / P(x): alpha_hat * beta_hat renormalised per frame, a few frames at a
    # time so that the product stays in cache between its sum, its scaling and its copy to the output.
    gamma = torch.empty((n, t_max, S), dtype=out_dtype, device=device)
    den = torch.empty((t_max, n), dtype=dtype, device=device)
    # Chunks of ~2^18 cells on one thread; with more, chunks under torch's grain size (32768) so that each op
    # runs inline: hundreds of tiny OpenMP regions cost more than they gain, much more on a busy machine.
    step = max(1, ((1 << 18) if torch.get_num_threads() == 1 else 32767) // M) if device.type == "cpu" else t_max
    work = torch.empty((min(step, t_max), n, W), dtype=dtype, device=device)
    for t0 in range(0, t_max, step):
        t1 = min(t_max, t0 + step)
        g = work[: t1 - t0]
        torch.mul(alpha_hat[t0:t1], beta_hat[t0:t1], out=g)  # pad cells: alpha is zero
        d = den[t0:t1]
        torch.sum(g, 2, out=d)
        g.mul_(torch.where(ok_t[t0:t1] & (d > 0), 1.0 / d, 0.0).unsqueeze(2))
        gamma[:, t0:t1].copy_(g[:, :, 2:].transpose(0, 1))
    del work
    cum = scale_f.cumsum(1)
    tail = scale_b.flip(1).cumsum(1).flip(1) - scale_b  # sum over u > t
    # Every frame must see the whole probability: sum_s alpha_t(s) beta_t(s) = P(x).  Where one does not,
    # states that mattered fell below the dtype's range: the row goes to the log-space fallback.
    per_frame = den.t().double().log() + cum + tail  # (n, T)
    tol = 64 * torch.finfo(dtype).eps * (loglik.abs() + t_max)
    drift = torch.where(frame_ok, (per_frame - loglik.unsqueeze(1)).abs(), zero64).amax(1)
    bad |= ~(drift <= tol)

    # Zero frames: the empty target has probability one, anything else is impossible.
    empty = in_len == 0
    loglik = torch.where(empty, torch.where(tg_len == 0, 0.0, _NEG_INF).to(loglik.dtype), loglik)
    bad &= ~empty
    tables.loglik, tables.gamma, tables.fallback = loglik, gamma, bad

    if log_tables:
        valid = frame_ok.unsqueeze(2) & state_ok.unsqueeze(1)
        la = alpha_hat[:, :, 2:].transpose(0, 1).double().log() + cum.unsqueeze(2)
        lb = beta_hat[:, :, 2:].transpose(0, 1).double().log() + tail.unsqueeze(2)
        tables.log_alpha = torch.where(valid, la, _NEG_INF)
        tables.log_beta = torch.where(valid, lb, _NEG_INF)
    return tables


def _soft_alignment(
    lp: Tensor, tg: Tensor, in_len: Tensor, tg_len: Tensor, blank: int, out_dtype: torch.dtype, log_tables: bool
) -> _Tables:
    """Scaled forward-backward in chunks of utterances, impossible rows zeroed, lossy rows redone in log space."""
    n, t_max, _ = lp.shape
    dtype = _compute_dtype(lp.device)
    # Work buffers hold alphas and betas: 2 x N rows x (T+1) frames x (S+2) states: keep them near _CHUNK_BYTES.
    per_utt = 2 * (t_max + 1) * (2 * tg.shape[1] + 3) * torch.finfo(dtype).bits // 8
    step = max(1, min(n, _CHUNK_BYTES // max(per_utt, 1)))
    parts = [
        _scaled_forward_backward(lp[i : i + step], tg[i : i + step], in_len[i : i + step], tg_len[i : i + step],
                                 blank, dtype, out_dtype, log_tables)
        for i in range(0, n, step)
    ]
    tab = parts[0]
    if len(parts) > 1:
        for name in ("loglik", "gamma", "fallback", "log_alpha", "log_beta"):
            if getattr(tab, name) is not None:
                setattr(tab, name, torch.cat([getattr(p, name) for p in parts]))
    infeasible = ~_feasible(tg, in_len, tg_len)
    if bool(infeasible.any()):
        tab.loglik = tab.loglik.masked_fill(infeasible, _NEG_INF)
        tab.gamma.masked_fill_(infeasible.view(-1, 1, 1), 0.0)
        if log_tables:
            tab.log_alpha.masked_fill_(infeasible.view(-1, 1, 1), _NEG_INF)
            tab.log_beta.masked_fill_(infeasible.view(-1, 1, 1), _NEG_INF)
    redo = tab.fallback & ~infeasible
    if bool(redo.any()):
        rows = redo.nonzero().squeeze(1)
        la, lb, ll, frame_ok, state_ok = _forward_backward(lp[rows], tg[rows], in_len[rows], tg_len[rows], blank)
        ok = frame_ok.unsqueeze(2) & state_ok.unsqueeze(1) & torch.isfinite(ll).view(-1, 1, 1)
        g = torch.where(ok, (la + lb - ll.view(-1, 1, 1)).exp(), torch.zeros_like(la))
        tab.loglik[rows] = ll.to(tab.loglik.dtype)
        tab.gamma[rows] = g.to(tab.gamma.dtype)
        if log_tables:
            tab.log_alpha[rows] = la
            tab.log_beta[rows] = lb
    return tab


@torch.no_grad()
def ctc_alpha_beta(
    log_probs: Tensor,
    targets: Sequence[int] | Tensor,
    blank: int = 0,
    input_lengths: Sequence[int] | Tensor | None = None,
    target_lengths: Sequence[int] | Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Return float64 (log_alpha, log_beta, loglik); alpha includes frame t's emission, beta excludes it; padding -inf."""
    single, lp, tg, in_len, tg_len = _prepare(log_probs, targets, input_lengths, target_lengths, blank)
    tab = _soft_alignment(lp, tg, in_len, tg_len, blank, torch.float64, log_tables=True)
    if single:
        return tab.log_alpha[0], tab.log_beta[0], tab.loglik[0]
    return tab.log_alpha, tab.log_beta, tab.loglik


@torch.no_grad()
def ctc_posteriors(
    log_probs: Tensor,
    targets: Sequence[int] | Tensor,
    blank: int = 0,
    input_lengths: Sequence[int] | Tensor | None = None,
    target_lengths: Sequence[int] | Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Return (loglik, state posteriors gamma (..., T, 2L+1)) of the CTC forward-backward.

    `log_probs` is (T, V) with 1-D `targets`, or (N, T, V) with (N, Lmax) `targets` and optional lengths.
    float32 input runs a per-frame renormalised float32 recursion (posteriors within ~1e-6 of float64);
    float64 input runs it in float64.  Outputs have the input's dtype; gamma is zero in padding and for
    alignments that are impossible, whose loglik is -inf.
    """
    single, lp, tg, in_len, tg_len = _prepare(log_probs, targets, input_lengths, target_lengths, blank)
    tab = _soft_alignment(lp, tg, in_len, tg_len, blank, log_probs.dtype, log_tables=False)
    out_dtype = log_probs.dtype
    loglik, gamma = tab.loglik.to(out_dtype), tab.gamma.to(out_dtype)
    if single:
        return loglik[0], gamma[0]
    return loglik, gamma


def forced_align(log_probs: Tensor, targets: Sequence[int] | Tensor, blank: int = 0) -> tuple[Tensor, Tensor]:
    """Viterbi CTC alignment of one utterance, via `torchaudio.functional.forced_align`.

    `log_probs` (T, V), `targets` (L,) label ids without the blank.  Returns the label id of every frame
    (T,) int64 (the blank or the aligned target) and that label's log-prob per frame (T,), in the input's
    dtype (float16/bfloat16 are computed in float32).  ValueError when T frames cannot hold the targets.
    """
    if not isinstance(log_probs, Tensor) or log_probs.dim() != 2 or not log_probs.is_floating_point():
        raise ValueError("log_probs must be a floating-point (T, V) tensor")
    tg = targets if isinstance(targets, Tensor) and targets.dtype == torch.int32 else _as_index_tensor(targets)
    tg = tg.to(log_probs.device)
    if tg.dim() != 1:
        raise ValueError(f"targets must be 1-D, got shape {tuple(tg.shape)}")
    n_frames, vocab = log_probs.shape
    if not 0 <= blank < vocab:
        raise ValueError(f"blank index {blank} outside the vocabulary of size {vocab}")
    n_tokens = tg.numel()
    if n_tokens and bool(((tg < 0) | (tg >= vocab) | (tg == blank)).any()):
        raise ValueError(f"targets must be ids in [0, {vocab}) other than the blank {blank}")
    lp = log_probs if log_probs.dtype in (torch.float32, torch.float64) else log_probs.float()
    if n_tokens == 0:
        return torch.full((n_frames,), blank, dtype=torch.int64, device=lp.device), lp[:, blank].clone()
    n_repeats = int((tg[1:] == tg[:-1]).sum()) if n_tokens > 1 else 0
    if n_frames < n_tokens + n_repeats:
        raise ValueError(
            f"{n_frames} frames cannot align {n_tokens} tokens with {n_repeats} repeats (needs {n_tokens + n_repeats})"
        )
    import torchaudio.functional as taf

    labels, scores = taf.forced_align(lp.unsqueeze(0), tg.to(torch.int32).unsqueeze(0), blank=blank)
    return labels[0].to(torch.int64), scores[0]


@dataclass
class Segment:
    """A token or word of a forced alignment: label, start and duration in seconds, and a confidence in [0, 1]
    (the mean probability of the label over its frames), with its frames [first_frame, first_frame + n_frames)."""

    label: str
    start: float
    duration: float
    confidence: float
    first_frame: int
    n_frames: int

    @property
    def end(self) -> float:
        return self.start + self.duration

    def as_dict(self) -> dict:
        return {
            "label": self.label, "start": round(self.start, 4), "duration": round(self.duration, 4),
            "confidence": round(self.confidence, 4),
        }


def segments(
    path: Tensor | Sequence[int],
    scores: Tensor | Sequence[float],
    targets: Sequence[int] | Tensor,
    symbols: Sequence[str],
    frame_shift: float,
    space: int | None = None,
    blank: int = 0,
) -> tuple[list[Segment], list[Segment]]:
    """Token and word segments of a `forced_align` path.

    A token occupies the run of frames that emit it (a new run starts at a non-blank label that differs
    from the previous frame's); its confidence is the mean of exp(score) over those frames.  Words are the
    runs of tokens between `space` tokens (the id of the word separator; by default that of " " in
    `symbols`, and no words when there is none); a word spans its first token's start to its last token's
    end, its label joins its tokens' symbols, its confidence is the mean over all its tokens' frames.
    """
    lab = _to_numpy(path).astype(np.int64).reshape(-1)
    sc = _to_numpy(scores).astype(np.float64).reshape(-1)
    tg = _to_numpy(targets).astype(np.int64).reshape(-1)
    if lab.size != sc.size:
        raise ValueError(f"path has {lab.size} frames, scores have {sc.size}")
    prev = np.concatenate(([blank], lab[:-1]))
    starts = np.flatnonzero((lab != blank) & (lab != prev))
    # A run ends at the next frame whose label differs.
    change = np.append(np.flatnonzero(lab[1:] != lab[:-1]) + 1, lab.size)
    ends = change[np.searchsorted(change, starts, side="right")]
    if starts.size != tg.size or not np.array_equal(lab[starts], tg):
        raise ValueError("the path does not spell the targets")
    prob = np.exp(sc)
    tokens = [
        Segment(symbols[int(k)], float(a * frame_shift), float((b - a) * frame_shift), float(prob[a:b].mean()), int(a), int(b - a))
        for k, a, b in zip(tg, starts, ends)
    ]
    if space is None:
        space = next((i for i, s in enumerate(symbols) if s == " " and i != blank), None)
    words: list[Segment] = []
    if space is not None:
        group: list[tuple[Segment, int, int]] = []
        for k, a, b, tok in zip(tg, starts, ends, tokens):
            if k == space:
                _close_word(group, words, prob, frame_shift)
                group = []
            else:
                group.append((tok, int(a), int(b)))
        _close_word(group, words, prob, frame_shift)
    return tokens, words


def _close_word(group: list[tuple[Segment, int, int]], words: list[Segment], prob: np.ndarray, frame_shift: float) -> None:
    """Append the word made of `group`'s tokens (nothing for an empty group)."""
    if not group:
        return
    first, last = group[0][1], group[-1][2]
    frames = np.concatenate([prob[a:b] for _, a, b in group])
    words.append(
        Segment("".join(t.label for t, _, _ in group), first * frame_shift, (last - first) * frame_shift,
                float(frames.mean()), first, last - first)
    )


def best_state_path(log_probs: Tensor, targets: Sequence[int] | Tensor, blank: int = 0) -> Tensor:
    """Return the Viterbi extended-state index (T,) per frame for one utterance, via `forced_align`."""
    tg = _as_index_tensor(targets, log_probs.device if isinstance(log_probs, Tensor) else None)
    lab, _ = forced_align(log_probs, tg, blank)
    n_tokens = tg.numel()
    if n_tokens == 0:
        return torch.zeros(lab.numel(), dtype=torch.int64, device=lab.device)
    # A non-blank frame starts a new token unless it continues the previous frame's token.
    nonblank = lab != blank
    prev = F.pad(lab[:-1], (1, 0), value=blank)
    n_emitted = torch.cumsum((nonblank & (lab != prev)).to(torch.int64), dim=0)
    states = torch.where(nonblank, 2 * n_emitted - 1, 2 * n_emitted)
    ext, _ = extend_with_blanks(tg, blank)
    if int(n_emitted[-1]) != n_tokens or not bool((ext[states] == lab).all()):
        raise RuntimeError("forced_align returned a path that does not spell the targets")
    return states


def save_alignment(
    path: str | Path,
    posteriors: Tensor | np.ndarray,
    states: Tensor | np.ndarray | Sequence[int],
    path_states: Tensor | np.ndarray | Sequence[int],
    frame_shift: float,
    loglik: float,
) -> None:
    """Write posteriors, extended states, Viterbi path, frame shift and loglik atomically to an .npz file."""
    post = _to_numpy(posteriors).astype(np.float32)
    st = _to_numpy(states).astype(np.int64).reshape(-1)
    vit = _to_numpy(path_states).astype(np.int64).reshape(-1)
    if post.ndim != 2 or post.shape[1] != st.size:
        raise ValueError(f"posteriors must be (T, {st.size}), got shape {post.shape}")
    if vit.size != post.shape[0]:
        raise ValueError(f"path has {vit.size} frames, posteriors have {post.shape[0]}")
    ll = float(loglik.item()) if isinstance(loglik, Tensor) else float(loglik)

    def _write(tmp: str) -> None:
        # A file object, so that numpy does not append ".npz" to the temporary name.
        with open(tmp, "wb") as f:
            np.savez_compressed(
                f, posteriors=post, states=st, path=vit,
                frame_shift=np.float64(frame_shift), loglik=np.float64(ll),
            )

    atomic_write(path, _write)


def plot_alignment(
    path: str | Path,
    posteriors: Tensor | np.ndarray,
    state_labels: list[str],
    path_states: Tensor | np.ndarray | Sequence[int] | None = None,
    frame_shift: float = 0.01,
    title: str = "",
) -> None:
    """Save a PNG of the state posteriors (linear and log scale) over time, with the Viterbi path if given."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import LogNorm
    from matplotlib.figure import Figure

    post = _to_numpy(posteriors).astype(np.float64)
    if post.ndim != 2:
        raise ValueError(f"posteriors must be 2-D (T, S), got shape {post.shape}")
    n_frames, n_states = post.shape
    if len(state_labels) != n_states:
        raise ValueError(f"{len(state_labels)} state labels for {n_states} states")
    floor = 1e-6
    extent = (0.0, n_frames * frame_shift, -0.5, n_states - 0.5)
    width = min(max(6.0, 0.02 * n_frames), 20.0)
    panel_h = min(max(2.0, 0.15 * n_states), 8.0)
    fig = Figure(figsize=(width, 2 * panel_h + 1.0), dpi=100)
    FigureCanvasAgg(fig)  # Agg canvas without touching pyplot's global state
    axes = fig.subplots(2, 1, sharex=True)
    tick_step = max(1, int(np.ceil(n_states / 40)))
    ticks = np.arange(0, n_states, tick_step)
    panels = (
        ("posterior", dict(vmin=0.0, vmax=1.0), post),
        (f"posterior (log, floor {floor:g})", dict(norm=LogNorm(vmin=floor, vmax=1.0)), np.clip(post, floor, 1.0)),
    )
    vit = None if path_states is None else _to_numpy(path_states).reshape(-1)
    for ax, (name, scale, data) in zip(axes, panels):
        im = ax.imshow(
            data.T, origin="lower", aspect="auto", interpolation="nearest", extent=extent, cmap="viridis", **scale
        )
        fig.colorbar(im, ax=ax, label=name, pad=0.01)
        ax.set_yticks(ticks)
        ax.set_yticklabels([state_labels[i] for i in ticks], fontsize=7)
        ax.set_ylabel("state")
        if vit is not None:
            ax.plot((np.arange(vit.size) + 0.5) * frame_shift, vit, color="red", lw=1.0, drawstyle="steps-mid")
    axes[-1].set_xlabel("time (s)")
    if title:
        axes[0].set_title(title)
    fig.tight_layout()

    try:
        atomic_save_png(fig, path)
    finally:
        fig.clear()
