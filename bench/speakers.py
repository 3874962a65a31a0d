"""Speaker robustness of the digits recipe: leave one speaker out, train on the other three, test on the unseen one.

Runs the real CLI per fold and writes bench/results/speakers.json (WER on connected and isolated digits per held-out speaker).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPEAKERS = ("george", "jackson", "nicolas", "yweweler")


def run(*args: str) -> str:
    exe = str(Path(sys.executable).parent / "asrkit")
    return subprocess.run([exe, *args], check=True, capture_output=True, text=True).stdout


def fold(recipe: str, speaker: str, extra: list[str]) -> dict:
    data, exp = f"data/digits-without-{speaker}", f"exp/digits-without-{speaker}"
    sets = [
        "--set", "data.split=speakers", "--set", f"data.test_speakers=[{speaker}]",
        "--set", f"data.out_dir={data}", "--set", f"train.exp_dir={exp}",
    ]
    for e in extra:
        sets += ["--set", e]
    t0 = time.time()
    run("prepare", recipe, "--quiet", *sets)
    run("train", recipe, "--quiet", *sets)
    train_s = time.time() - t0
    out = {"held_out": speaker, "train_and_prepare_seconds": round(train_s, 1)}
    for split in ("test", "test_isolated"):
        hyp = f"{exp}/{split}.hyp"
        run("decode", "--model", f"{exp}/best.pt", "--beam", "10", "--quiet", "-o", hyp, f"{data}/{split}.jsonl")
        rep = json.loads(run("score", "--ref", f"{data}/{split}.jsonl", "--hyp", hyp, "--json"))
        out[split] = {"wer": rep["wer"], "cer": rep["cer"], "utterances": rep["n_utterances"]}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--recipe", default="recipes/digits.yaml")
    ap.add_argument("--speakers", nargs="*", default=list(SPEAKERS))
    ap.add_argument("--set", dest="sets", action="append", default=[], help="extra recipe overrides for every fold")
    ap.add_argument("--out", default=str(ROOT / "bench/results/speakers.json"))
    args = ap.parse_args()
    folds = []
    for spk in args.speakers:
        folds.append(fold(args.recipe, spk, args.sets))
        print(json.dumps(folds[-1]), flush=True)
    mean = {s: sum(f[s]["wer"] for f in folds) / len(folds) for s in ("test", "test_isolated")}
    result = {
        "benchmark": "digits recipe, leave-one-speaker-out (train on 3 speakers, test on the 4th)",
        "recipe": args.recipe,
        "overrides": args.sets,
        "folds": folds,
        "mean_wer": mean,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
