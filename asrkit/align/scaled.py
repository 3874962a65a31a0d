"""CTC forward-backward in scaled probability space: the fast path behind `asrkit.align.ctc_posteriors`.

Emissions are exponentiated once per frame relative to the frame's largest log-prob; the recursions are
then multiplications and additions on all utterances' states at once, renormalised every few frames with
the log-scales summed in float64. Rows that scaling cannot represent are flagged for the log-space
recursion in `core` (see `_soft_alignment` there).
"""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import torch
from torch import Tensor

_NEG_INF = float("-inf")
# The scaled recursions renormalise every this many frames (a frame can shrink the total by its emissions;
# float64 has room for that, and an underflow is caught and sent to the log-space fallback).
_RENORM_EVERY = 4


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
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                _SCRIPTED = (torch.jit.script(_forward_steps), torch.jit.script(_backward_steps), True)
        except Exception:  # noqa: BLE001 - any failure to compile means: use the eager loops
            _SCRIPTED = (_forward_steps, _backward_steps, False)
    return _SCRIPTED if big and _SCRIPTED is not None else (_forward_steps, _backward_steps, False)


def _run_loops(
    P: Tensor,
    B: Tensor,
    b_start: Tensor,
    E: Tensor,
    idx: Tensor,
    skip: Tensor,
    skip_next: Tensor,
    c_f: Tensor,
    c_b: Tensor,
) -> None:
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
        with ThreadPoolExecutor(1) as pool:
            job = pool.submit(run_fwd)
            run_bwd()
            job.result()
    else:
        run_fwd()
        run_bwd()


class _Layout(NamedTuple):
    """The batch laid out for the scaled recursions (see `_scaled_forward_backward`)."""

    E: Tensor  # (T, n, V + 1) scaled emissions per frame and symbol; the last column is the zero emission
    m: Tensor  # (n, T) each frame's scale: the largest log-prob among the utterance's own symbols
    idx: Tensor  # (n, W) the symbol of each cell (V: a pad cell)
    skip: Tensor  # (n, W) 1 where the skip s-2 -> s is allowed
    skip_next: Tensor  # (n, W) 1 where s -> s+2 is allowed
    frame_ok: Tensor  # (n, T)
    state_ok: Tensor  # (n, S)


def _layout(lp: Tensor, tg: Tensor, in_len: Tensor, tg_len: Tensor, blank: int, dtype: torch.dtype) -> _Layout:
    """Emissions per symbol, scaled per frame by the best of the utterance's own symbols (past the end: blank
    only), and the cell tables of the rows [0, 0, s_0 .. s_{S-1}]."""
    device = lp.device
    n, t_max, vocab = lp.shape
    n_tok = tg.shape[1]
    S = 2 * n_tok + 1
    W = S + 2
    s_idx = torch.arange(S, device=device)
    n_states = 2 * tg_len + 1
    state_ok = s_idx.unsqueeze(0) < n_states.unsqueeze(1)  # (n, S)
    tg_real = torch.arange(n_tok, device=device).unsqueeze(0) < tg_len.unsqueeze(1)
    ext = torch.full((n, S), blank, dtype=torch.int64, device=device)
    ext[:, 1::2] = torch.where(tg_real, tg, torch.full_like(tg, blank))
    frame_ok = torch.arange(t_max, device=device).unsqueeze(0) < in_len.unsqueeze(1)  # (n, T)

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
    return _Layout(E, m, idx, skip, skip_next, frame_ok, state_ok)


def _recursions(lay: _Layout, tg_len: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Run both loops: (P, B, c_f, c_b), P[k] (after two leading zeros) the scaled alphas of frame k-1 with
    P[0] the start, B[t] the scaled betas of frame t, c_f and c_b the (T, n) scales."""
    t_max, n, _ = lay.E.shape
    W = lay.idx.shape[1]
    M = n * W
    device = lay.E.device
    P = torch.empty((t_max + 1, M + 2), dtype=dtype, device=device)
    P[0].zero_()
    P[1:, :2] = 0.0
    P[0, 2:].view(n, W)[:, 2] = 1.0
    B = torch.empty((t_max, M), dtype=dtype, device=device)
    b_start = torch.zeros(M + 2, dtype=dtype, device=device)
    b_start[:M].view(n, W).scatter_(1, (2 + 2 * tg_len).unsqueeze(1), 1.0)
    c_f = torch.ones((t_max, n), dtype=dtype, device=device)  # frames that are not renormalised keep scale 1
    c_b = torch.ones((t_max, n), dtype=dtype, device=device)
    _run_loops(P, B, b_start, lay.E, lay.idx, lay.skip.view(M), lay.skip_next.view(M), c_f, c_b)
    return P, B, c_f, c_b


def _gamma(alpha_hat: Tensor, beta_hat: Tensor, ok_t: Tensor, out_dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """(gamma (n, T, S), per-frame totals den (T, n)): gamma_t(s) = alpha_t(s) beta_t(s) / P(x), i.e.
    alpha_hat * beta_hat renormalised per frame, a few frames at a time so that the product stays in cache
    between its sum, its scaling and its copy to the output."""
    t_max, n, W = alpha_hat.shape
    M = n * W
    device, dtype = alpha_hat.device, alpha_hat.dtype
    gamma = torch.empty((n, t_max, W - 2), dtype=out_dtype, device=device)
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
    return gamma, den


def _no_frames(n: int, S: int, tg_len: Tensor, out_dtype: torch.dtype, log_tables: bool) -> _Tables:
    """The tables of a batch without frames: the empty target has probability one, anything else is impossible."""
    device = tg_len.device
    tables = _Tables()
    tables.loglik = torch.where(tg_len == 0, 0.0, _NEG_INF).to(torch.float64)
    tables.gamma = torch.zeros((n, 0, S), dtype=out_dtype, device=device)
    tables.fallback = torch.zeros(n, dtype=torch.bool, device=device)
    if log_tables:
        tables.log_alpha = torch.zeros((n, 0, S), dtype=torch.float64, device=device)
        tables.log_beta = torch.zeros((n, 0, S), dtype=torch.float64, device=device)
    return tables


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
    n, t_max, _ = lp.shape
    W = 2 * tg.shape[1] + 3
    if t_max == 0:
        return _no_frames(n, W - 2, tg_len, out_dtype, log_tables)
    lay = _layout(lp, tg, in_len, tg_len, blank, dtype)
    frame_ok, state_ok, m = lay.frame_ok, lay.state_ok, lay.m
    P, B, c_f, c_b = _recursions(lay, tg_len, dtype)
    del lay  # the emissions, as big as the alphas

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

    gamma, den = _gamma(alpha_hat, beta_hat, ok_t, out_dtype)
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
    tables = _Tables()
    tables.loglik, tables.gamma, tables.fallback = loglik, gamma, bad
    if log_tables:
        valid = frame_ok.unsqueeze(2) & state_ok.unsqueeze(1)
        la = alpha_hat[:, :, 2:].transpose(0, 1).double().log() + cum.unsqueeze(2)
        lb = beta_hat[:, :, 2:].transpose(0, 1).double().log() + tail.unsqueeze(2)
        tables.log_alpha = torch.where(valid, la, _NEG_INF)
        tables.log_beta = torch.where(valid, lb, _NEG_INF)
    return tables
