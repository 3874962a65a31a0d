"""Every zoo entry trained on the digits recipe with the same budget: parameters, epoch time, test WER, peak memory.

Each entry trains `recipes/digits.yaml` with only `model.name` changed (the DNN also gets ±`--dnn-context`
spliced frames, without which a frame-wise MLP cannot see a phone), under `/usr/bin/time -v` for the
peak resident memory; then decodes the connected-digit and isolated-digit test sets (beam 10, open vocabulary).
Writes bench/results/zoo.json. About 25 minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import shutil
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", default=str(ROOT / "recipes/digits.yaml"))
    ap.add_argument("--models", default="dnn,rnn,lstm,bilstm,gru,bigru")
    ap.add_argument("--epochs", type=int, default=None, help="override train.epochs for every entry")
    ap.add_argument("--dnn-context", type=int, default=5)
    ap.add_argument("--exp", default=str(ROOT / "exp/zoo"))
    ap.add_argument("--out", default=str(ROOT / "bench/results/zoo.json"))
    args = ap.parse_args()

    import torch

    from asrkit.config import load_recipe
    from asrkit.data.prepare import prepare
    from asrkit.commands.decode import decode
    from asrkit.models import build_model, count_parameters
    from asrkit.score import read_transcripts, score
    from asrkit.models.checkpoint import load_checkpoint

    recipe = load_recipe(args.recipe)
    prepare(recipe, quiet=True)
    data = recipe.data_dir
    exe = str(Path(sys.executable).parent / "asrkit")
    timer = shutil.which("time") or "/usr/bin/time"
    rows = []
    for name in args.models.split(","):
        exp = Path(args.exp) / name
        shutil.rmtree(exp, ignore_errors=True)
        sets = [f"model.name={name}", f"train.exp_dir={exp}"]
        if name == "dnn":
            sets.append(f"model.context={args.dnn_context}")
        if args.epochs:
            sets.append(f"train.epochs={args.epochs}")
        cmd = [timer, "-v", exe, "train", args.recipe, "--quiet", *(x for s in sets for x in ("--set", s))]
        t0 = time.time()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.time() - t0
        if proc.returncode != 0:
            print(proc.stderr[-2000:], file=sys.stderr)
            rows.append(
                {
                    "model": name,
                    "error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}",
                }
            )
            continue
        rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
        metrics = [json.loads(x) for x in (exp / "metrics.jsonl").read_text().splitlines()]
        ckpt = load_checkpoint(exp / "best.pt")
        params = count_parameters(build_model(ckpt["model_config"]))
        result = {
            "model": name,
            "parameters": params,
            "epochs": len(metrics),
            "best_epoch": ckpt["epoch"],
            "epoch_seconds": round(sum(m["seconds"] for m in metrics) / len(metrics), 1),
            "train_audio_seconds_per_second": round(
                sum(m["train_audio_seconds_per_second"] for m in metrics) / len(metrics), 1
            ),
            "train_wall_seconds": round(wall, 1),
            "peak_rss_mb": round(rss_kb / 1024, 1),
            "best_dev_wer": ckpt["metric"]["dev_wer"],
            "overrides": sets[2:] if len(sets) > 2 else [],
        }
        for split in ("test", "test_isolated"):
            hyp = exp / f"{split}.hyp"
            decode(exp / "best.pt", [str(data / f"{split}.jsonl")], {"beam": 10}, output=hyp, quiet=True)
            rep = score(read_transcripts(data / f"{split}.jsonl"), read_transcripts(hyp))
            result[f"{split}_wer"] = round(rep.wer, 4)
            result[f"{split}_cer"] = round(rep.cer, 4)
        rows.append(result)
        print(json.dumps(result), flush=True)

    if Path(args.out).is_file():  # a partial rerun (--models x,y) replaces those rows and keeps the others
        done = {r["model"]: r for r in json.loads(Path(args.out).read_text()).get("results", [])}
        done.update({r["model"]: r for r in rows})
        rows = [done[m] for m in ("dnn", "rnn", "lstm", "bilstm", "gru", "bigru") if m in done]
    out = {
        "benchmark": "model zoo on the digits recipe, same data, features, sizes and epochs; test WER with beam 10, no lexicon",
        "date": date.today().isoformat(),
        "command": "python bench/zoo.py" + (f" --epochs {args.epochs}" if args.epochs else ""),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}, no GPU",
        "recipe": str(Path(args.recipe).relative_to(ROOT)) if Path(args.recipe).is_relative_to(ROOT) else args.recipe,
        "results": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    return 0 if all("error" not in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
