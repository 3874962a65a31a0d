"""Whole-process real-time factor of `asrkit decode` on 1,000 isolated FSDD recordings (beam 10; optionally with an LM).

Writes bench/results/decode.json. Needs a trained model (default exp/digits/best.pt: run `make digits`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]


def _describe(path: str) -> str:
    from asrkit.models import build_model, count_parameters
    from asrkit.models.checkpoint import load_checkpoint

    cfg = load_checkpoint(path)["model_config"]
    return f"{cfg['name']}, {count_parameters(build_model(cfg)):,} parameters ({path})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default=str(ROOT / "exp/digits/best.pt"))
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--beam", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--lexicon", default=None, help="also time lexicon-constrained decoding with this word list or manifest"
    )
    ap.add_argument("--lm", default=None, help="also time decoding with this word LM (ARPA or KenLM binary)")
    ap.add_argument("--alpha", type=float, default=1.0)
    ap.add_argument("--out", default=str(ROOT / "bench/results/decode.json"))
    args = ap.parse_args()
    if not Path(args.model).is_file():
        print(f"bench: {args.model} not found; run `make digits` first", file=sys.stderr)
        return 2
    from asrkit.assets import fsdd_root

    files = sorted((Path(fsdd_root()) / "recordings").glob("*.flac"))[: args.n]
    audio_s = sum(sf.info(str(f)).duration for f in files)
    exe = str(Path(sys.executable).parent / "asrkit")
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp) / "audio"
        d.mkdir()
        for f in files:
            os.symlink(f, d / f.name)
        base = [
            exe,
            "decode",
            "--model",
            args.model,
            "--beam",
            str(args.beam),
            "--quiet",
            "-o",
            f"{tmp}/hyp.txt",
            str(d),
        ]
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            subprocess.run(base, check=True)
            times.append(time.perf_counter() - t0)
        n_lines = len(Path(f"{tmp}/hyp.txt").read_text().splitlines())
        lm_times = []
        if args.lm:
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                subprocess.run([*base, "--lm", args.lm, "--alpha", str(args.alpha)], check=True)
                lm_times.append(time.perf_counter() - t0)
        lex_times = []
        if args.lexicon:
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                subprocess.run([*base, "--lexicon", args.lexicon], check=True)
                lex_times.append(time.perf_counter() - t0)
    best = min(times)
    result = {
        "benchmark": "asrkit decode, whole process (start-up, model load, audio read, resample, features, model, beam search, output)",
        "model": _describe(args.model),
        "files": len(files),
        "hypotheses": n_lines,
        "audio_seconds": round(audio_s, 2),
        "beam": args.beam,
        "wall_seconds": [round(t, 3) for t in times],
        "rtf_best": round(best / audio_s, 4),
        "rtf_median": round(sorted(times)[len(times) // 2] / audio_s, 4),
        "target_rtf": 0.05,
        "lm": args.lm,
        "lm_alpha": args.alpha if args.lm else None,
        "lm_wall_seconds": [round(t, 3) for t in lm_times],
        "lm_rtf_best": round(min(lm_times) / audio_s, 4) if lm_times else None,
        "lm_target_rtf": 0.1,
        "lexicon": args.lexicon,
        "lexicon_wall_seconds": [round(t, 3) for t in lex_times],
        "lexicon_rtf_best": round(min(lex_times) / audio_s, 4) if lex_times else None,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
