"""CTC soft alignment: forward-backward state posteriors (log space here, scaled space in `scaled`), saving.

Conventions: the blank index is 0 by default; ``log_probs`` are per-frame log-softmax outputs of
shape (T, V) for one utterance or (N, T, V) for a batch.  The blank-extended label sequence of
targets [a, b, c] is [blank, a, blank, b, blank, c, blank] (2L+1 states); the skip transition
s-2 -> s is allowed when ext[s] != blank and ext[s] != ext[s-2].
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from asrkit.align.inputs import as_lengths, as_log_probs, frames_needed
from asrkit.align.scaled import _scaled_forward_backward, _Tables
from asrkit.errors import InputError
from asrkit.fsutil import atomic_write

_NEG_INF = float("-inf")
_CHUNK_BYTES = 1 << 30  # work memory of one batched soft-alignment pass


def _compute_dtype(device: torch.device) -> torch.dtype:
    """Dtype of the internal recursions: float64 everywhere it exists (not on MPS)."""
    return torch.float32 if device.type == "mps" else torch.float64


def _as_index_tensor(x: Sequence[int] | Tensor, device: torch.device | None = None) -> Tensor:
    """Turn a sequence, array or tensor of integers into an int64 tensor (on `device` if given)."""
    t = x if isinstance(x, Tensor) else torch.as_tensor(np.asarray(x))
    if t.numel() > 0 and (t.is_floating_point() or t.is_complex() or t.dtype == torch.bool):
        raise InputError(f"expected integer label ids, got dtype {t.dtype}")
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
        raise InputError(f"targets must be 1-D, got shape {tuple(t.shape)}")
    if bool((t == blank).any()):
        raise InputError(f"targets contain the blank index {blank}")
    n_states = 2 * t.numel() + 1
    ext = torch.full((n_states,), blank, dtype=torch.int64, device=t.device)
    ext[1::2] = t
    skip = torch.zeros(n_states, dtype=torch.bool, device=t.device)
    skip[2:] = (ext[2:] != blank) & (ext[2:] != ext[:-2])
    return ext, skip


def _prepare(
    log_probs: Tensor | np.ndarray,
    targets: Sequence[int] | Tensor,
    input_lengths: Sequence[int] | Tensor | None,
    target_lengths: Sequence[int] | Tensor | None,
    blank: int,
) -> tuple[bool, Tensor, Tensor, Tensor, Tensor]:
    """Check shapes and return (batched?, log_probs (N,T,V), targets (N,L), input_lengths (N,), target_lengths (N,))."""
    lp = as_log_probs(log_probs)
    device = lp.device
    tg = _as_index_tensor(targets, device)
    single = lp.dim() == 2
    if single:
        if tg.dim() != 1:
            raise InputError(f"for (T, V) log_probs, targets must be 1-D, got shape {tuple(tg.shape)}")
        if input_lengths is not None or target_lengths is not None:
            raise InputError("input_lengths/target_lengths are only for batched (N, T, V) input")
        lp = lp.unsqueeze(0)
        tg = tg.unsqueeze(0)
    elif tg.dim() != 2 or tg.shape[0] != lp.shape[0]:
        raise InputError(
            f"for (N, T, V) log_probs, targets must be (N, Lmax), got {tuple(tg.shape)} with N={lp.shape[0]}"
        )
    n, t_max, vocab = lp.shape
    if not 0 <= blank < vocab:
        raise InputError(f"blank index {blank} outside the vocabulary of size {vocab}")
    in_len = as_lengths(input_lengths, n, t_max, "input_lengths").to(device)
    tg_len = as_lengths(target_lengths, n, tg.shape[1], "target_lengths").to(device)
    real = torch.arange(tg.shape[1], device=device).unsqueeze(0) < tg_len.unsqueeze(1)
    if bool((real & ((tg < 0) | (tg >= vocab) | (tg == blank))).any()):
        raise InputError(f"targets must be ids in [0, {vocab}) other than the blank {blank}")
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
        _scaled_forward_backward(
            lp[i : i + step],
            tg[i : i + step],
            in_len[i : i + step],
            tg_len[i : i + step],
            blank,
            dtype,
            out_dtype,
            log_tables,
        )
        for i in range(0, n, step)
    ]
    tab = parts[0]
    if len(parts) > 1:
        for name in ("loglik", "gamma", "fallback", "log_alpha", "log_beta"):
            if getattr(tab, name) is not None:
                setattr(tab, name, torch.cat([getattr(p, name) for p in parts]))
    infeasible = in_len < frames_needed(tg, tg_len)
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
    log_probs: Tensor | np.ndarray,
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
    log_probs: Tensor | np.ndarray,
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
    out_dtype = lp.dtype
    tab = _soft_alignment(lp, tg, in_len, tg_len, blank, out_dtype, log_tables=False)
    loglik, gamma = tab.loglik.to(out_dtype), tab.gamma.to(out_dtype)
    if single:
        return loglik[0], gamma[0]
    return loglik, gamma


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
        raise InputError(f"posteriors must be (T, {st.size}), got shape {post.shape}")
    if vit.size != post.shape[0]:
        raise InputError(f"path has {vit.size} frames, posteriors have {post.shape[0]}")
    ll = float(loglik.item()) if isinstance(loglik, Tensor) else float(loglik)

    def _write(tmp: str) -> None:
        # A file object, so that numpy does not append ".npz" to the temporary name.
        with open(tmp, "wb") as f:
            np.savez_compressed(
                f,
                posteriors=post,
                states=st,
                path=vit,
                frame_shift=np.float64(frame_shift),
                loglik=np.float64(ll),
            )

    atomic_write(path, _write)
