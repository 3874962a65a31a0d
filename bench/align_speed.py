"""CTC alignment speed: asrkit's soft alignment against torch's CTC loss and a plain-Python loop,
and asrkit's forced alignment against torchaudio's.

The input: B = 32 utterances, T = 1000 frames, L = 200 target labels, V = 30,
float32.  The log-probs are log_softmax of N(0, 3^2) logits with random targets: the hard case for a
scaled recursion (posterior-carrying alphas reach ~e^-500 below the front of their frame), so this
measures the fast path where it needs its float64 range; the run checks that no row fell back to the
log-space recursion and that the posteriors match a float64 log-space computation.

Timed, each as the median of --repeats runs:
- asrkit.align.ctc_posteriors on the batch (log-likelihoods and (B, T, 2L+1) posteriors), against
  torch.nn.functional.ctc_loss forward + backward (reduction "sum") on the same batch, at 1 and 2 torch
  threads (torch.set_num_threads), alternating the two so that both see the same machine load;
- a per-cell forward-backward over plain Python lists with `math` (log space, math.exp/math.log per
  cell, gamma = exp(alpha + beta - loglik)), run in full on --loop-utts utterances and scaled to the
  batch by B / loop_utts (its cost per utterance does not depend on the batch);
- asrkit.align.forced_align against torchaudio.functional.forced_align, per utterance, at 1 thread.

Writes bench/results/align.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from asrkit.align import core, ctc_posteriors, forced_align

ROOT = Path(__file__).resolve().parents[1]
B, T, L, V = 32, 1000, 200, 30


def make_batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    lp = (torch.randn(B, T, V, generator=g) * 3).log_softmax(-1)
    return lp, torch.randint(1, V, (B, L), generator=g)


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def python_list_posteriors(
    lp: list[list[float]], targets: list[int], blank: int = 0
) -> tuple[float, list[list[float]]]:
    """The per-cell baseline: log-space CTC forward-backward over Python lists, one cell at a time."""
    ninf = -math.inf

    def lse(*xs: float) -> float:
        m = max(xs)
        if m == ninf:
            return ninf
        return m + math.log(sum(math.exp(x - m) for x in xs))

    ext = [blank]
    for k in targets:
        ext += [k, blank]
    S, n = len(ext), len(lp)
    skip = [s >= 2 and ext[s] != blank and ext[s] != ext[s - 2] for s in range(S)]
    alpha = [[ninf] * S for _ in range(n)]
    alpha[0][0] = lp[0][ext[0]]
    if S > 1:
        alpha[0][1] = lp[0][ext[1]]
    for t in range(1, n):
        prev, cur, row = alpha[t - 1], alpha[t], lp[t]
        for s in range(S):
            a = prev[s]
            b = prev[s - 1] if s >= 1 else ninf
            c = prev[s - 2] if skip[s] else ninf
            cur[s] = lse(a, b, c) + row[ext[s]]
    beta = [[ninf] * S for _ in range(n)]
    beta[n - 1][S - 1] = 0.0
    if S > 1:
        beta[n - 1][S - 2] = 0.0
    for t in range(n - 2, -1, -1):
        nxt, cur, row = beta[t + 1], beta[t], lp[t + 1]
        for s in range(S):
            a = nxt[s] + row[ext[s]]
            b = nxt[s + 1] + row[ext[s + 1]] if s + 1 < S else ninf
            c = nxt[s + 2] + row[ext[s + 2]] if s + 2 < S and skip[s + 2] else ninf
            cur[s] = lse(a, b, c)
    loglik = lse(alpha[n - 1][S - 1], alpha[n - 1][S - 2]) if S > 1 else alpha[n - 1][0]
    gamma = [[math.exp(a + b - loglik) if a + b > ninf else 0.0 for a, b in zip(ar, br)] for ar, br in zip(alpha, beta)]
    return loglik, gamma


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--loop-utts", type=int, default=1, help="utterances the Python-list loop runs in full per repeat")
    ap.add_argument("--loop-repeats", type=int, default=5)
    ap.add_argument("--out", default=str(ROOT / "bench/results/align.json"))
    args = ap.parse_args()
    threads0 = torch.get_num_threads()
    load_before = os.getloadavg()
    lp, tg = make_batch()
    in_len, tg_len = torch.full((B,), T), torch.full((B,), L)

    # Correctness of what is timed: float32 posteriors against a float64 log-space computation.
    torch.set_num_threads(1)
    ll32, g32 = ctc_posteriors(lp, tg, input_lengths=in_len, target_lengths=tg_len)
    la, lb, ll_ref, _, _ = core._forward_backward(lp.double(), tg, in_len, tg_len, 0)
    g_ref = (la + lb - ll_ref.view(-1, 1, 1)).exp()
    ctc_ll = -F.ctc_loss(lp.double().transpose(0, 1), tg, in_len, tg_len, reduction="none")
    fallback = core._scaled_forward_backward(lp, tg, in_len, tg_len, 0, torch.float64, torch.float32).fallback
    check = {
        "max_abs_posterior_error_float32_vs_float64_log_space": (g32.double() - g_ref).abs().max().item(),
        "max_rel_loglik_error_vs_ctc_loss_float64": ((ll32.double() - ctc_ll) / ctc_ll).abs().max().item(),
        "rows_in_log_space_fallback": int(fallback.sum()),
    }
    del la, lb, g_ref, g32
    print(json.dumps(check))

    def ours() -> None:
        ctc_posteriors(lp, tg, input_lengths=in_len, target_lengths=tg_len)

    def torch_ctc() -> None:
        x = lp.transpose(0, 1).detach().requires_grad_(True)
        F.ctc_loss(x, tg, in_len, tg_len, reduction="sum").backward()

    soft = {}
    for n_threads in (1, 2):
        torch.set_num_threads(n_threads)
        ours(), torch_ctc()  # warm-up
        a, b = [], []
        for _ in range(args.repeats):
            a.append(timed(ours))
            b.append(timed(torch_ctc))
        soft[f"{n_threads}_thread"] = {
            "asrkit_ctc_posteriors_s": statistics.median(a),
            "torch_ctc_loss_fwd_bwd_s": statistics.median(b),
            "ratio": statistics.median(a) / statistics.median(b),
            "asrkit_runs_s": a,
            "torch_runs_s": b,
        }
        print(n_threads, json.dumps({k: v for k, v in soft[f"{n_threads}_thread"].items() if not k.endswith("runs_s")}))

    # The plain-Python per-cell loop, on whole utterances, scaled to the batch.
    torch.set_num_threads(1)
    lists = [lp[i].double().tolist() for i in range(args.loop_utts)]
    tgl = [tg[i].tolist() for i in range(args.loop_utts)]
    loop_runs = []
    for _ in range(args.loop_repeats):
        loop_runs.append(timed(lambda: [python_list_posteriors(x, y) for x, y in zip(lists, tgl)]))
    ll_loop, g_loop = python_list_posteriors(lists[0], tgl[0])
    loop_err = (torch.tensor(g_loop, dtype=torch.float64) - ctc_posteriors(lp[0].double(), tg[0])[1]).abs().max().item()
    loop_batch_s = statistics.median(loop_runs) * B / args.loop_utts
    ours_1 = soft["1_thread"]["asrkit_ctc_posteriors_s"]
    loop = {
        "name": "python_list_log_space_per_cell_loop (bench/align_speed.py: python_list_posteriors)",
        "how": f"{args.loop_utts} full utterance(s) (T={T}, L={L}) per run, median of {args.loop_repeats} runs, "
        f"scaled by {B}/{args.loop_utts} to the batch",
        "per_utterance_s": statistics.median(loop_runs) / args.loop_utts,
        "batch_s_scaled": loop_batch_s,
        "speedup_of_asrkit_1_thread": loop_batch_s / ours_1,
        "max_abs_posterior_diff_vs_asrkit_float64": loop_err,
        "loglik_rel_diff_vs_ctc_loss": abs((ll_loop - ctc_ll[0].item()) / ctc_ll[0].item()),
    }
    print(json.dumps(loop))

    # Forced alignment per utterance, 1 thread.
    import torchaudio.functional as taf

    tg32 = tg.to(torch.int32)
    fa_a, fa_t = [], []
    for i in range(B):  # warm-up and agreement
        p, _ = forced_align(lp[i], tg[i])
        assert p.tolist() == taf.forced_align(lp[i : i + 1], tg32[i : i + 1], blank=0)[0][0].tolist()
    for _ in range(args.repeats):
        fa_a.append(timed(lambda: [forced_align(lp[i], tg[i]) for i in range(B)]) / B)
        fa_t.append(timed(lambda: [taf.forced_align(lp[i : i + 1], tg32[i : i + 1], blank=0) for i in range(B)]) / B)
    forced = {
        "asrkit_forced_align_ms_per_utt": statistics.median(fa_a) * 1e3,
        "torchaudio_forced_align_ms_per_utt": statistics.median(fa_t) * 1e3,
        "ratio": statistics.median(fa_a) / statistics.median(fa_t),
    }
    print(json.dumps(forced))
    torch.set_num_threads(threads0)

    ratios = {
        "soft_vs_ctc_loss_1_thread": soft["1_thread"]["ratio"],
        "soft_vs_ctc_loss_2_threads": soft["2_thread"]["ratio"],
        "python_loop_over_soft_1_thread": loop["speedup_of_asrkit_1_thread"],
        "forced_align_vs_torchaudio": forced["ratio"],
    }
    targets = {
        "soft_vs_ctc_loss_1_thread <= 0.6": ratios["soft_vs_ctc_loss_1_thread"] <= 0.6,
        "soft_vs_ctc_loss_2_threads <= 1.0": ratios["soft_vs_ctc_loss_2_threads"] <= 1.0,
        "python_loop_over_soft_1_thread >= 20": ratios["python_loop_over_soft_1_thread"] >= 20,
        "forced_align_vs_torchaudio <= 1.2": ratios["forced_align_vs_torchaudio"] <= 1.2,
        "posteriors_within_1e-5": check["max_abs_posterior_error_float32_vs_float64_log_space"] <= 1e-5,
    }
    out = {
        "input": {
            "B": B,
            "T": T,
            "L": L,
            "V": V,
            "dtype": "float32",
            "log_probs": "log_softmax(3 * N(0, 1))",
            "targets": "uniform random ids 1..V-1",
            "device": "cpu",
        },
        "check": check,
        "soft_alignment": soft,
        "python_loop": loop,
        "forced_alignment": forced,
        "ratios": ratios,
        "targets_met": targets,
        "repeats": args.repeats,
        "machine": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "cpus": os.cpu_count(),
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
        },
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(ratios), json.dumps(targets))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
