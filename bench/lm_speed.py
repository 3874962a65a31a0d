"""LM decoding speed: asrkit's LMDecoder against pyctcdecode alone, same LM, alpha, beta and beam.

Issue target: with an LM, decoding stays within 1.2x of the time of pyctcdecode alone. Input: the digits test set's
posteriors from the trained model (exp/digits/best.pt, LM built from the training texts), or without a model the
40 x 500-frame CTC-like utterances of bench/beam_speed.py with a word LM built from their hidden transcripts.
(a) pyctcdecode: `build_ctcdecoder(...).decode_beams` over every utterance in one process;
(b) `LMDecoder.decode_batch` with workers 0 and 2 (a forked pool, started inside each pass).
Medians over `--repeats` rounds (contenders in turn); construction (LM load) timed apart. Writes bench/results/lm.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def rel(p: str | Path) -> str:
    """A path as written in the results: relative to the repository when inside it."""
    q = Path(p).resolve()
    return str(q.relative_to(ROOT)) if q.is_relative_to(ROOT) else str(p)


sys.path.insert(0, str(Path(__file__).resolve().parent))


def medians_s(fns: dict, repeats: int) -> dict[str, float]:
    """Median wall time of each fn() over `repeats` rounds, in seconds; the contenders take turns within a
    round, so a change in the machine's load reaches all of them alike."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def inputs(args, tmp: str) -> tuple[object, list[np.ndarray], str, dict]:
    """(tokenizer, posteriors, ARPA path, description) from the digits model, else synthetic."""
    from asrkit.decode.lm_build import build_lm

    if not args.synthetic and Path(args.model).is_file() and Path(args.test).is_file():
        from lm_wer import model_posteriors

        am, _, _, lps = model_posteriors(args.model, args.test)
        lm = args.lm if Path(args.lm).is_file() else f"{tmp}/digits.arpa"
        if not Path(args.lm).is_file():
            build_lm(Path(args.test).with_name("train.jsonl"), lm, 3)
        desc = {"kind": "digits test set posteriors", "model": rel(args.model), "test": rel(args.test), "lm": rel(lm)}
        return am.tokenizer, lps, lm, desc
    from beam_speed import LABELS, ctc_like

    from asrkit.text import CharTokenizer

    lp, texts = ctc_like(40, 500, len(LABELS))
    Path(f"{tmp}/text.txt").write_text("\n".join(" ".join(t.split()) for t in texts) + "\n")
    build_lm(f"{tmp}/text.txt", f"{tmp}/synthetic.arpa", 3)
    desc = {"kind": "CTC-like synthetic (bench/beam_speed.py), word LM from its hidden transcripts"}
    return CharTokenizer(LABELS[1:]), list(lp), f"{tmp}/synthetic.arpa", desc


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(ROOT / "exp/digits/best.pt"))
    ap.add_argument("--test", default=str(ROOT / "data/digits/test.jsonl"))
    ap.add_argument("--lm", default=str(ROOT / "exp/digits/lm.arpa"))
    ap.add_argument("--alpha", type=float, default=0.5)
    ap.add_argument("--beta", type=float, default=1.0)
    ap.add_argument("--beam", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--synthetic", action="store_true", help="use the synthetic input even when a model exists")
    ap.add_argument("--out", default=str(ROOT / "bench/results/lm.json"))
    args = ap.parse_args()

    from pyctcdecode import build_ctcdecoder

    from asrkit.decode.lm import LMDecoder, _quiet_build

    with tempfile.TemporaryDirectory() as tmp:
        tok, lps, lm, desc = inputs(args, tmp)
        n, R, K = len(lps), args.repeats, args.beam
        desc.update(
            utterances=n, frames=int(sum(len(x) for x in lps)), vocab=len(tok), alpha=args.alpha, beta=args.beta, beam=K
        )
        labels = ["" if i == tok.blank else s for i, s in enumerate(tok.symbols)]

        t0 = time.perf_counter()
        with _quiet_build():
            raw = build_ctcdecoder(labels, lm, alpha=args.alpha, beta=args.beta)
        raw_build = time.perf_counter() - t0
        t0 = time.perf_counter()
        ours = LMDecoder(tok, lm, alpha=args.alpha, beta=args.beta, beam_size=K)
        our_build = time.perf_counter() - t0

        lps = [np.ascontiguousarray(x, dtype=np.float32) for x in lps]
        raw_best = [raw.decode_beams(x, beam_width=K)[0][0] for x in lps]
        our_best = [h[0].text for h in ours.decode_batch(lps, workers=2)]
        same = sum(a == b for a, b in zip(raw_best, our_best)) / n

        secs = medians_s(
            {
                "pyctcdecode": lambda: [raw.decode_beams(x, beam_width=K) for x in lps],
                "asrkit_workers0": lambda: ours.decode_batch(lps, workers=0),
                "asrkit_workers2": lambda: ours.decode_batch(lps, workers=2),
            },
            R,
        )
        res = {k: {"s_per_pass": v, "build_s": raw_build if k == "pyctcdecode" else our_build} for k, v in secs.items()}
        a = res["pyctcdecode"]["s_per_pass"]
        for r in res.values():
            r["ms_per_utt"] = round(r["s_per_pass"] * 1e3 / n, 3)
            r["s_per_pass"] = round(r["s_per_pass"], 4)
            r["build_s"] = round(r["build_s"], 4)
        ratios = {f"{k}_over_pyctcdecode": round(res[k]["s_per_pass"] / a, 3) for k in res if k != "pyctcdecode"}
        whole = {
            f"{k}_over_pyctcdecode_with_build": round((res[k]["s_per_pass"] + our_build) / (a + raw_build), 3)
            for k in res
            if k != "pyctcdecode"
        }
        out = {
            "input": desc,
            "repeats": R,
            "results": res,
            "same_best_as_pyctcdecode": same,
            "ratios": {**ratios, **whole},
            "targets_met": {"asrkit_workers0 <= 1.2x pyctcdecode": ratios["asrkit_workers0_over_pyctcdecode"] <= 1.2},
            "machine": {
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
                "load_avg_1min": round(os.getloadavg()[0], 2),
            },
        }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    for k, v in res.items():
        print(f"{k:18s} {v['ms_per_utt']:8.3f} ms/utt  build {v['build_s']:.3f} s")
    print(json.dumps(out["ratios"]), "same best:", same)
    return 0


if __name__ == "__main__":
    sys.exit(main())
