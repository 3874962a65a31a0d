"""A fused CPU GRU layer: forward and backward over the whole sequence in compiled (numba) loops.

PyTorch's CPU GRU has no oneDNN kernel: it runs each step as a dozen small ATen ops forward and twice that
backward, and the per-op cost, not the arithmetic, sets its speed on short, narrow sequences (the echo task).
Here the input projections and the weight gradients are each one large GEMM over all frames (torch), and the
recurrence runs in one numba kernel per direction of the pass: the per-step product with W_hh goes to BLAS
(numba's np.dot, through SciPy), and the gate arithmetic is vectorised float32 code. The batch is split into
row blocks that run the whole sequence in parallel OpenMP threads (the rows of a GRU never interact).

Same equations and parameters as `torch.nn.GRU` (gates r, z, n; `b_hn` inside the reset product):
    r = σ(W_ir x + b_ir + W_hr h + b_hr)          z = σ(W_iz x + b_iz + W_hz h + b_hz)
    n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))  h' = (1 − z) ⊙ n + z ⊙ h
tanh is a float32 rational approximation (the minimax form Eigen and PyTorch's vectorised CPU code use; error
< 3e-7 on all of float32), σ(a) = (1 + tanh(a/2)) / 2. `bench/gru_kernel.py` measures it against nn.GRU, and
tests/test_gru_kernel.py holds its outputs and every gradient to nn.GRU's.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import os
from collections.abc import Iterator

import numpy as np
import numba
import torch
from numba import njit, prange

try:  # numba's np.dot on float arrays calls BLAS through SciPy; without SciPy the layer falls back to nn.GRU
    import scipy
    import scipy.linalg.cython_blas  # noqa: F401

    HAVE_BLAS = True
except ImportError:  # pragma: no cover - scipy is a dependency
    HAVE_BLAS = False

_F = np.float32
# tanh(x) ≈ x·P(x²)/Q(x²) on [-c, c], ±1 beyond (float32 minimax coefficients).
_C = _F(7.90531110763549805)
_A1, _A3, _A5, _A7, _A9, _A11, _A13 = (
    _F(4.89352455891786e-03), _F(6.37261928875436e-04), _F(1.48572235717979e-05), _F(5.12229709037114e-08),
    _F(-8.60467152213735e-11), _F(2.00018790482477e-13), _F(-2.76076847742355e-16),
)  # fmt: skip
_B0, _B2, _B4, _B6 = (
    _F(4.89352518554385e-03),
    _F(2.26843463243900e-03),
    _F(1.18534705686654e-04),
    _F(1.19825839466702e-06),
)
_HALF, _ONE = _F(0.5), _F(1.0)

# error_model="numpy": float division must not branch to raise ZeroDivisionError, or LLVM will not vectorise.
_JIT = dict(cache=True, fastmath=True, nogil=True, error_model="numpy")


@njit(inline="always", **_JIT)
def _tanh(x):
    x = min(max(x, -_C), _C)
    x2 = x * x
    p = x2 * _A13 + _A11
    p = x2 * p + _A9
    p = x2 * p + _A7
    p = x2 * p + _A5
    p = x2 * p + _A3
    p = x2 * p + _A1
    q = x2 * _B6 + _B4
    q = x2 * q + _B2
    q = x2 * q + _B0
    return x * p / q


@njit(**_JIT)
def _forward_rows(gi, whh_t, bhh, hs, saved, y, b0, b1):
    """Rows b0:b1 through all T steps. gi (B,T,3H): input projections with b_ih; hs (T+1,B,H) with hs[0] = h0
    (time-major: each step's rows are one contiguous GEMM operand); saved (T,B,4H) receives r | z | n |
    (W_hn h + b_hn) for the backward pass; y (B,T,H) the outputs, batch-major like the layer's input."""
    n_steps = gi.shape[1]
    hid = whh_t.shape[0]
    br, bz, bn = bhh[:hid], bhh[hid : 2 * hid], bhh[2 * hid :]
    for t in range(n_steps):
        gh = np.dot(hs[t, b0:b1], whh_t)
        for i in range(b1 - b0):
            b = b0 + i
            g, h_, hp, hn, s, yb = gi[b, t], gh[i], hs[t, b], hs[t + 1, b], saved[t, b], y[b, t]
            gr, gz, gn = g[:hid], g[hid : 2 * hid], g[2 * hid :]
            hr, hz, hh = h_[:hid], h_[hid : 2 * hid], h_[2 * hid :]
            sr, sz, sn, sg = s[:hid], s[hid : 2 * hid], s[2 * hid : 3 * hid], s[3 * hid :]
            for j in range(hid):
                r = _HALF * _tanh(_HALF * (gr[j] + hr[j] + br[j])) + _HALF
                z = _HALF * _tanh(_HALF * (gz[j] + hz[j] + bz[j])) + _HALF
                ghn = hh[j] + bn[j]
                n = _tanh(gn[j] + r * ghn)
                h = n + z * (hp[j] - n)
                hn[j] = h
                yb[j] = h
                sr[j] = r
                sz[j] = z
                sn[j] = n
                sg[j] = ghn


@njit(**_JIT)
def _backward_rows(dy, dh_last, whh, hs, saved, dgi, dgh, dh0, b0, b1):
    """Back through rows b0:b1: dgi (B,T,3H) and dgh (T,B,3H) receive the gradients of the input and the
    recurrent pre-activations, dh0 that of the initial state."""
    _, n_steps, hid = dy.shape
    dh = dh_last[b0:b1].copy()
    for t in range(n_steps - 1, -1, -1):
        for i in range(b1 - b0):
            b = b0 + i
            hp, d_y, s, di, dg, dhb = hs[t, b], dy[b, t], saved[t, b], dgi[b, t], dgh[t, b], dh[i]
            sr, sz, sn, sg = s[:hid], s[hid : 2 * hid], s[2 * hid : 3 * hid], s[3 * hid :]
            dir_, diz, din = di[:hid], di[hid : 2 * hid], di[2 * hid :]
            dgr, dgz, dgn = dg[:hid], dg[hid : 2 * hid], dg[2 * hid :]
            for j in range(hid):
                d = dhb[j] + d_y[j]
                r, z, n = sr[j], sz[j], sn[j]
                dan = d * (_ONE - z) * (_ONE - n * n)
                dar = dan * sg[j] * r * (_ONE - r)
                daz = d * (hp[j] - n) * z * (_ONE - z)
                dir_[j] = dar
                diz[j] = daz
                din[j] = dan
                dgr[j] = dar
                dgz[j] = daz
                dgn[j] = dan * r
                dhb[j] = d * z
        dh += np.dot(dgh[t, b0:b1], whh)
    dh0[b0:b1] = dh


@njit(parallel=True, **_JIT)
def _forward(gi, whh_t, bhh, hs, saved, y, blocks):
    step = -(-gi.shape[0] // blocks)
    for k in prange(blocks):
        _forward_rows(gi, whh_t, bhh, hs, saved, y, k * step, min(gi.shape[0], (k + 1) * step))


@njit(parallel=True, **_JIT)
def _backward(dy, dh_last, whh, hs, saved, dgi, dgh, dh0, blocks):
    step = -(-dy.shape[0] // blocks)
    for k in prange(blocks):
        _backward_rows(dy, dh_last, whh, hs, saved, dgi, dgh, dh0, k * step, min(dy.shape[0], (k + 1) * step))


_READY = False


def _setup() -> None:
    """Once per process: numba's OpenMP threading layer (the libgomp torch already runs, so torch's spinning
    workers do the blocks instead of competing with a second pool for the cores), and single-threaded
    SciPy BLAS inside each block (each block is one thread already)."""
    global _READY
    if _READY:
        return
    _READY = True
    layers = list(numba.config.THREADING_LAYER_PRIORITY)
    numba.config.THREADING_LAYER_PRIORITY = ["omp"] + [x for x in layers if x != "omp"]
    for lib in glob.glob(
        os.path.join(os.path.dirname(os.path.dirname(scipy.__file__)), "scipy.libs", "libscipy_openblas*.so*")
    ):
        try:
            ctypes.CDLL(lib).scipy_openblas_set_num_threads(1)
        except (OSError, AttributeError):  # another BLAS build: leave it as it is
            pass


def _blocks(batch: int) -> int:
    """Row blocks, one per thread (at least 8 rows each, so the per-step GEMMs stay efficient)."""
    _setup()
    return max(1, min(torch.get_num_threads(), numba.get_num_threads(), batch // 8))


class _FusedGRU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh):  # noqa: D102 - see fused_gru
        batch, steps, n_in = x.shape
        hid = w_hh.shape[1]
        x2 = x.detach().reshape(batch * steps, n_in)
        gi = torch.addmm(b_ih.detach(), x2, w_ih.detach().t()).reshape(batch, steps, 3 * hid)
        hs = torch.empty(steps + 1, batch, hid)
        hs[0] = 0 if h0 is None else h0.detach().reshape(batch, hid)
        saved = torch.empty(steps, batch, 4 * hid)
        y = torch.empty(batch, steps, hid)
        whh_t = w_hh.detach().t().contiguous()
        _forward(
            gi.numpy(),
            whh_t.numpy(),
            b_hh.detach().contiguous().numpy(),
            hs.numpy(),
            saved.numpy(),
            y.numpy(),
            _blocks(batch),
        )
        ctx.save_for_backward(x2, w_ih, w_hh, hs, saved)
        ctx.shape = (batch, steps, n_in, hid)
        return y, hs[steps].unsqueeze(0).clone()

    @staticmethod
    def backward(ctx, dy, dh_last):  # noqa: D102
        x2, w_ih, w_hh, hs, saved = ctx.saved_tensors
        batch, steps, n_in, hid = ctx.shape
        blocks = _blocks(batch)
        dy = dy.contiguous()
        dh_last = dh_last.reshape(batch, hid).contiguous()
        dgi = torch.empty(batch, steps, 3 * hid)
        dgh = torch.empty(steps, batch, 3 * hid)
        dh0 = torch.empty(batch, hid)
        arrays = (dy, dh_last, w_hh.detach().contiguous(), hs, saved, dgi, dgh, dh0)
        _backward(*(a.numpy() for a in arrays), blocks)
        dgi2 = dgi.reshape(batch * steps, 3 * hid)
        need = ctx.needs_input_grad
        dx = (dgi2 @ w_ih.detach()).reshape(batch, steps, n_in) if need[0] else None
        dw_ih = dgi2.t() @ x2 if need[2] else None
        dw_hh = dgh.reshape(steps * batch, 3 * hid).t() @ hs[:-1].reshape(steps * batch, hid) if need[3] else None
        # column sums as one GEMV each: a third of the time of .sum(0) on these tall matrices
        db_ih = torch.ones(1, batch * steps) @ dgi2 if need[4] else None
        db_hh = torch.ones(1, steps * batch) @ dgh.reshape(steps * batch, 3 * hid) if need[5] else None
        db_ih = db_ih[0] if db_ih is not None else None
        db_hh = db_hh[0] if db_hh is not None else None
        return dx, dh0.unsqueeze(0) if need[1] else None, dw_ih, dw_hh, db_ih, db_hh


_ENABLED = os.environ.get("ASRKIT_FUSED_GRU", "1") != "0"


@contextlib.contextmanager
def disabled() -> Iterator[None]:
    """Run CPU GRUs as plain nn.GRU inside the block (benchmarks and tests compare the two)."""
    global _ENABLED
    before, _ENABLED = _ENABLED, False
    try:
        yield
    finally:
        _ENABLED = before


def usable(x: torch.Tensor, mod: torch.nn.Module) -> bool:
    """True where the fused layer applies: it is on (`ASRKIT_FUSED_GRU=0` turns it off), and `mod` is a one-layer,
    unidirectional, batch-first nn.GRU with biases, run on CPU float32 tensors outside tracing (export traces the
    plain nn.GRU)."""
    return (
        _ENABLED
        and HAVE_BLAS
        and isinstance(mod, torch.nn.GRU)
        and x.device.type == "cpu"
        and x.dtype == torch.float32
        and mod.weight_hh_l0.dtype == torch.float32
        and mod.num_layers == 1
        and not mod.bidirectional
        and mod.batch_first
        and mod.bias
        and x.dim() == 3
        and x.shape[0] > 0
        and x.shape[1] > 0
        and not torch.jit.is_tracing()
        and not torch.jit.is_scripting()
        and not (torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") != torch.float32)
    )


def fused_gru(gru: torch.nn.GRU, x: torch.Tensor, h0: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """`gru(x, h0)` for a one-layer batch-first nn.GRU on CPU float32, in the fused kernels: ((B, T, H), (1, B, H))."""
    return _FusedGRU.apply(x, h0, gru.weight_ih_l0, gru.weight_hh_l0, gru.bias_ih_l0, gru.bias_hh_l0)


def compile_kernels() -> None:
    """Compile the kernels into numba's on-disk cache (`make setup` runs it, so training never waits for it)."""
    gru = torch.nn.GRU(3, 4, batch_first=True)
    x = torch.zeros(2, 3, 3, requires_grad=True)
    y, h = fused_gru(gru, x)
    (y.sum() + h.sum()).backward()
