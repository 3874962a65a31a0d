"""NumPy reference CTC forward-backward speed (target: T = 1000, L = 100 in under 50 ms).

Writes bench/results/reference_ctc.json: medians of `--repeats` runs of alpha + beta + gamma, probability space
(`asrkit.reference.CTC`) and log space (`LogCTC`), on random normalised posteriors.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--frames", type=int, default=1000)
    ap.add_argument("--labels", type=int, default=100)
    ap.add_argument("--vocab", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--out", default=str(ROOT / "bench/results/reference_ctc.json"))
    args = ap.parse_args()
    from asrkit.reference import CTC, LogCTC

    rng = np.random.default_rng(0)
    y = rng.random((args.frames, args.vocab)) + 0.05
    y /= y.sum(1, keepdims=True)
    target = rng.integers(1, args.vocab, args.labels)
    res = {}
    for name, ctc, inp in (("probability_space", CTC(), y), ("log_space", LogCTC(), np.log(y))):
        ext, skip = ctc.extend_target_with_blank(target)
        times = []
        with np.errstate(all="ignore"):  # the probability space underflows at this length: that is its lesson
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                a = ctc.get_forward_probs(inp, ext, skip)
                b = ctc.get_backward_probs(inp, ext, skip)
                ctc.get_posterior_probs(a, b)
                times.append(time.perf_counter() - t0)
        res[name] = {"ms": round(statistics.median(times) * 1e3, 2)}
    out = {
        "frames": args.frames,
        "labels": args.labels,
        "vocab": args.vocab,
        "repeats": args.repeats,
        "results": res,
        "target_ms": 50,
        "met": all(v["ms"] < 50 for v in res.values()),
    }
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
