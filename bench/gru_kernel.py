"""The fused CPU GRU layer (asrkit/models/gru_kernel.py) against torch.nn.GRU, forward + backward, same run.

Shapes: the echo_variable recipe's two layers (B = 128 strings of 20 frames, 36 → 96 and 96 → 96), a BiGRU
speech layer like the digits recipe's (B = 32, T = 150, 80 → 256) and a long single utterance (B = 1, T = 500:
decoding). Each shape runs `--repeats` alternating rounds of both layers (so drift in the machine's speed hits
both alike); each round times `--iters` forward + backward passes. Reported: the median time per pass of each
and the median of the paired ratios. Also checks the outputs agree (max abs difference). Writes
bench/results/gru_kernel.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from datetime import date
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from asrkit.models import gru_kernel  # noqa: E402

SHAPES = {
    "echo_variable layer 1 (B=128, T=20, 36→96)": (128, 20, 36, 96),
    "echo_variable layer 2 (B=128, T=20, 96→96)": (128, 20, 96, 96),
    "speech layer (B=32, T=150, 80→256)": (32, 150, 80, 256),
    "one long utterance (B=1, T=500, 80→256)": (1, 500, 80, 256),
}


def time_pass(fn, iters: int) -> float:
    t0 = time.perf_counter()
    for _ in range(iters):
        y, h = fn()
        (y.sum() + h.sum()).backward()
    return (time.perf_counter() - t0) / iters * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "gru_kernel.json")
    args = ap.parse_args()
    gru_kernel.compile_kernels()
    rows = []
    for name, (batch, steps, n_in, hid) in SHAPES.items():
        torch.manual_seed(0)
        gru = torch.nn.GRU(n_in, hid, batch_first=True)
        x = torch.randn(batch, steps, n_in, requires_grad=True)
        plain = lambda: gru(x)  # noqa: E731
        fused = lambda: gru_kernel.fused_gru(gru, x)  # noqa: E731
        diff = (plain()[0] - fused()[0]).abs().max().item()
        iters = max(1, args.iters * 20 // steps) if batch > 1 else args.iters
        for fn in (plain, fused):  # warm-up
            time_pass(fn, 1)
        t_plain, t_fused = [], []
        for _ in range(args.repeats):
            t_plain.append(time_pass(plain, iters))
            t_fused.append(time_pass(fused, iters))
        ratios = [a / b for a, b in zip(t_plain, t_fused)]
        row = {
            "shape": name,
            "batch": batch,
            "frames": steps,
            "inputs": n_in,
            "hidden": hid,
            "nn_gru_ms": round(statistics.median(t_plain), 3),
            "fused_ms": round(statistics.median(t_fused), 3),
            "speedup": round(statistics.median(ratios), 2),
            "speedup_range": [round(min(ratios), 2), round(max(ratios), 2)],
            "max_abs_output_difference": diff,
        }
        rows.append(row)
        print(
            f"{name}: nn.GRU {row['nn_gru_ms']} ms, fused {row['fused_ms']} ms per forward+backward, {row['speedup']}x"
        )
    out = {
        "date": date.today().isoformat(),
        "machine": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "repeats": args.repeats,
        "statistic": "medians over alternating rounds; speedup = median of the paired ratios",
        "shapes": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
