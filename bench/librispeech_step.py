"""Per-batch training cost of the LibriSpeech recipe model, and the training time it projects for train-clean-100.

The model, features and CTC loss are the recipe's (`recipes/librispeech.yaml`); the batch is made of the real
LibriSpeech sample utterances (../shared/data/librispeech) repeated to `--batch-seconds` of audio, so the frame and
label counts are real. One step = forward, CTC loss, backward, AdamW step (with the recipe's mixed precision on CUDA).
Projection: train-clean-100 holds 100.6 h of audio; an epoch costs (100.6 h / batch audio) × step time.
Writes bench/results/librispeech_step.json. Run it on a GPU machine to get that machine's figure.
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
TRAIN_CLEAN_100_HOURS = 100.6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", default=str(ROOT / "recipes/librispeech.yaml"))
    ap.add_argument(
        "--corpus", default=str(ROOT.parent / "shared/data/librispeech"), help="folder holding LibriSpeech/"
    )
    ap.add_argument(
        "--batch-seconds", type=float, default=None, help="audio per batch (default: the recipe's train.batch_seconds)"
    )
    ap.add_argument("--steps", type=int, default=5, help="timed steps (after one warm-up step)")
    ap.add_argument("--precision", default=None, help="fp32 | bf16 | fp16 (default: the recipe's; CPU runs fp32)")
    ap.add_argument("--out", default=str(ROOT / "bench/results/librispeech_step.json"))
    args = ap.parse_args()

    from asrkit.audio import load_audio
    from asrkit.config import load_recipe
    from asrkit.data.corpora.librispeech import scan_subset
    from asrkit.features import feature_settings, make_extractor, normalize
    from asrkit.models import build_model, count_parameters
    from asrkit.text import CharTokenizer, normalize_text

    recipe = load_recipe(args.recipe)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    precision = args.precision or recipe.train.precision
    if device.type == "cpu":
        precision = "fp32"
    corpus = Path(args.corpus) / "LibriSpeech"
    utts = [u for sub in sorted(p for p in corpus.iterdir() if p.is_dir()) for u in scan_subset(sub)]
    tok = CharTokenizer(sorted(set(recipe.data.alphabet or "abcdefghijklmnopqrstuvwxyz'") | {" "}))
    extract = make_extractor(feature_settings(recipe.features, recipe.data.sample_rate))
    items = []
    for u in utts:
        f = normalize(extract(load_audio(u.audio, recipe.data.sample_rate)), recipe.features.cmvn, None)
        items.append((f, tok.encode(normalize_text(u.text or ""))))
    batch_seconds = args.batch_seconds or recipe.train.batch_seconds
    hop = recipe.features.hop_ms / 1000
    chosen, total = [], 0.0
    while total < batch_seconds:
        f, t = items[len(chosen) % len(items)]
        chosen.append((f, t))
        total += f.shape[0] * hop
    x = torch.nn.utils.rnn.pad_sequence([f for f, _ in chosen], batch_first=True).to(device)
    lengths = torch.tensor([f.shape[0] for f, _ in chosen], device=device)
    targets = torch.nn.utils.rnn.pad_sequence([torch.tensor(t) for _, t in chosen], batch_first=True).to(device)
    tl = torch.tensor([len(t) for _, t in chosen], device=device)

    model = build_model({**recipe.to_dict()["model"], "n_feats": recipe.features.n_mels, "n_tokens": len(tok)}).to(
        device
    )
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.train.lr, fused=device.type == "cuda")
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    scaler = torch.amp.GradScaler("cuda", enabled=precision == "fp16")

    def step() -> None:
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            lp, out_len = model(x, lengths)
        loss = torch.nn.functional.ctc_loss(lp.float().transpose(0, 1), targets, out_len, tl, zero_infinity=True)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    step()
    sync()
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t0)
    per_step = statistics.median(times)
    steps_per_epoch = TRAIN_CLEAN_100_HOURS * 3600 / total
    epoch_hours = steps_per_epoch * per_step / 3600
    result = {
        "benchmark": "LibriSpeech recipe: one training step (forward, CTC, backward, AdamW) on a batch of real utterances",
        "date": date.today().isoformat(),
        "command": "python bench/librispeech_step.py " + " ".join(sys.argv[1:]),
        "device": torch.cuda.get_device_name(0)
        if device.type == "cuda"
        else f"CPU, {torch.get_num_threads()} threads, {platform.machine()}",
        "torch": torch.__version__,
        "precision": precision,
        "model": f"{recipe.model.name}, {recipe.model.frontend} front-end, hidden {recipe.model.hidden} x {recipe.model.layers}, {count_parameters(model):,} parameters",
        "batch": {
            "utterances": len(chosen),
            "audio_seconds": round(total, 1),
            "padded_frames": int(x.shape[0] * x.shape[1]),
        },
        "step_seconds_median": round(per_step, 3),
        "step_seconds": [round(t, 3) for t in times],
        "audio_seconds_per_second": round(total / per_step, 1),
        "projection": {
            "train_clean_100_hours": TRAIN_CLEAN_100_HOURS,
            "steps_per_epoch": round(steps_per_epoch),
            "hours_per_epoch": round(epoch_hours, 2),
            "epochs": recipe.train.epochs,
            "hours_total": round(epoch_hours * recipe.train.epochs, 1),
        },
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
