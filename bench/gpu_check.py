"""What a GPU machine should show: the LibriSpeech recipe's training step in fp32, bf16 and fp16, and decoding and
alignment on the GPU against the CPU. Run by bench/gpu_check.sh, which runs the CUDA tests first.

Training: the recipe's model (recipes/librispeech.yaml: conv front-end + 4 × 512 BiLSTM, about 24 M parameters) on
one batch of the recipe's size (train.batch_seconds of 14.6 s utterances, 80 log-mels, random features and
LibriSpeech-length character targets), the trainer's own step (autocast, CTC loss, GradScaler for fp16, clipping,
AdamW): median step time over --steps after --warmup steps, peak GPU memory, and whether the loss is finite.
Decoding and alignment: the model's log-probabilities for the batch, computed on the GPU and on the CPU (fp32), then
greedy and beam-10 decoding (same transcripts?), CTC soft alignment (`ctc_posteriors`: largest difference of the
posteriors) and Viterbi forced alignment (same paths?), each timed on both devices.

Without CUDA it runs the CPU part at a small size (--cpu-batch utterances of --cpu-seconds s), so the script itself is
tested on any machine. Writes JSON to --out (default bench/results/gpu_check.json, or gpu_check_cpu.json on a CPU).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device, repeats: int = 3) -> tuple[float, object]:
    """The median of `repeats` timings of fn() (seconds), and its last result."""
    times, out = [], None
    for _ in range(repeats):
        sync(device)
        t = time.perf_counter()
        out = fn()
        sync(device)
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def make_batch(recipe, n: int, seconds: float, n_tokens: int, seed: int = 0):
    """`n` utterances of `seconds` s of random 80-dim features, with targets of LibriSpeech's ~15 characters per second."""
    from asrkit.data.loader import Batch

    g = torch.Generator().manual_seed(seed)
    frames = int(seconds / (recipe.features.hop_ms / 1000))
    lengths = torch.full((n,), frames, dtype=torch.long) - torch.randint(0, frames // 5, (n,), generator=g)
    feats = torch.randn(n, frames, recipe.features.n_mels, generator=g)
    tl = (lengths.float() * 0.15).long().clamp(min=1)
    targets = torch.randint(1, n_tokens, (n, int(tl.max())), generator=g)
    return Batch(feats, lengths, targets, tl, [f"u{i}" for i in range(n)])


def train_steps(recipe, batch, device: torch.device, precision: str, steps: int, warmup: int) -> dict:
    """The trainer's step on `batch`, `warmup` + `steps` times: the median step time, peak memory, the loss."""
    from asrkit.models import build_model
    from asrkit.train.schedule import make_optimizer
    from asrkit.train.trainer import _autocast, _loss, amp_dtype

    torch.manual_seed(0)
    cfg = {**recipe.to_dict()["model"], "n_feats": recipe.features.n_mels, "n_tokens": 29}
    model = build_model(cfg).to(device).train()
    opt = make_optimizer(model.parameters(), recipe.train)
    amp = amp_dtype(precision, device)
    if precision != "fp32" and amp is None:
        return {"skipped": f"{precision} autocast is not available on {device}"}
    scaler = torch.amp.GradScaler("cuda", enabled=amp == torch.float16)
    b = batch.to(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times, losses = [], []
    for i in range(warmup + steps):
        sync(device)
        t = time.perf_counter()
        with _autocast(amp, device):
            lp, out_len = model(b.feats, b.lengths)
        loss = _loss(lp, out_len, b, "ctc")
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.train.clip)
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)
        sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - t)
            losses.append(loss.item())
    audio = float(b.lengths.sum()) * recipe.features.hop_ms / 1000
    med = statistics.median(times)
    return {
        "step_seconds_median": round(med, 4),
        "step_seconds": [round(x, 4) for x in times],
        "audio_seconds_per_step": round(audio, 1),
        "audio_seconds_per_second": round(audio / med, 1),
        "loss_finite": all(map(lambda x: x == x and abs(x) != float("inf"), losses)),
        "loss_last": round(losses[-1], 3),
        "peak_memory_gb": round(torch.cuda.max_memory_allocated(device) / 2**30, 2) if device.type == "cuda" else None,
        "parameters": sum(p.numel() for p in model.parameters()),
    }


def decode_and_align(recipe, batch, gpu: torch.device | None, n_utts: int) -> dict:
    """Log-probs of the first `n_utts` utterances on each device, then decoding and alignment from each."""
    from asrkit.align.core import ctc_posteriors
    from asrkit.align.viterbi import forced_align
    from asrkit.decode.beam import prefix_beam_search
    from asrkit.decode.ctc import greedy_decode
    from asrkit.models import build_model

    torch.manual_seed(0)
    cfg = {**recipe.to_dict()["model"], "n_feats": recipe.features.n_mels, "n_tokens": 29}
    model = build_model(cfg).eval()
    feats, lengths = batch.feats[:n_utts], batch.lengths[:n_utts]
    devices = [torch.device("cpu")] + ([gpu] if gpu is not None else [])
    out: dict = {}
    logp = {}
    for dev in devices:
        m = model.to(dev)
        with torch.inference_mode():
            secs, (lp, ol) = timed(lambda: m(feats.to(dev), lengths.to(dev)), dev)
        logp[dev.type] = (lp.float(), ol)
        out[f"forward_seconds_{dev.type}"] = round(secs, 4)
    lp_cpu, ol_cpu = logp["cpu"]
    # targets the model can explain: its own greedy transcripts (never empty), so alignment has a path
    hyps = [greedy_decode(lp_cpu[i, : int(ol_cpu[i])].numpy()) for i in range(n_utts)]
    tg = [h.tokens or [1] for h in hyps]
    tl = torch.tensor([len(t) for t in tg])
    tgt = torch.zeros(n_utts, int(tl.max()), dtype=torch.long)
    for i, t in enumerate(tg):
        tgt[i, : len(t)] = torch.tensor(t)
    for dev in devices:
        lp, ol = logp[dev.type]
        secs, (ll, gamma) = timed(
            lambda: ctc_posteriors(lp, tgt.to(dev), input_lengths=ol, target_lengths=tl.to(dev)), dev
        )
        out[f"soft_alignment_seconds_{dev.type}"] = round(secs, 4)
        logp[dev.type] = (lp, ol, ll.cpu(), gamma.cpu())
        secs, paths = timed(
            lambda: [forced_align(lp[i, : int(ol[i])], tgt[i, : int(tl[i])].to(dev))[0].cpu() for i in range(n_utts)],
            dev,
        )
        out[f"forced_alignment_seconds_{dev.type}"] = round(secs, 4)
        logp[dev.type] += (paths,)
        host = lp.cpu().numpy()
        lens = ol.cpu().tolist()
        secs, beams = timed(
            lambda: [prefix_beam_search(host[i, : lens[i]], beam_size=10)[0].tokens for i in range(n_utts)],
            dev,
            repeats=1,
        )
        out[f"beam10_seconds_{dev.type}"] = round(secs, 4)
        logp[dev.type] += ([greedy_decode(host[i, : lens[i]]).tokens for i in range(n_utts)], beams)
    if gpu is not None:
        c, g = logp["cpu"], logp["cuda"]
        out["max_logprob_difference"] = float((c[0] - g[0].cpu()).abs().max())
        out["max_posterior_difference"] = float((c[3] - g[3]).abs().max())
        out["max_loglik_difference"] = float((c[2] - g[2]).abs().max())
        out["same_viterbi_paths"] = sum(torch.equal(a, b) for a, b in zip(c[4], g[4]))
        out["same_greedy_transcripts"] = sum(a == b for a, b in zip(c[5], g[5]))
        out["same_beam10_transcripts"] = sum(a == b for a, b in zip(c[6], g[6]))
        out["utterances"] = n_utts
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", default=str(ROOT / "recipes/librispeech.yaml"))
    ap.add_argument("--utt-seconds", type=float, default=14.6, help="utterance length (LibriSpeech's mean)")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--decode-utts", type=int, default=16)
    ap.add_argument("--cpu-batch", type=int, default=2, help="without CUDA: utterances in the CPU-only batch")
    ap.add_argument("--cpu-seconds", type=float, default=3.0, help="without CUDA: their length")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    from asrkit.config import load_recipe

    recipe = load_recipe(args.recipe)
    cuda = torch.cuda.is_available()
    t0 = time.time()
    if cuda:
        gpu = torch.device("cuda")
        n = max(1, int(recipe.train.batch_seconds / args.utt_seconds))
        batch = make_batch(recipe, n, args.utt_seconds, 29)
        train = {p: train_steps(recipe, batch, gpu, p, args.steps, args.warmup) for p in ("fp32", "bf16", "fp16")}
        decoding = decode_and_align(recipe, batch, gpu, min(args.decode_utts, n))
        device = torch.cuda.get_device_name(0)
    else:
        n = args.cpu_batch
        batch = make_batch(recipe, n, args.cpu_seconds, 29)
        train = {"fp32": train_steps(recipe, batch, torch.device("cpu"), "fp32", 2, 1)}
        decoding = decode_and_align(recipe, batch, None, n)
        device = f"CPU only ({platform.processor() or platform.machine()}): the GPU rows need CUDA"
    result = {
        "benchmark": "the LibriSpeech recipe's training step per precision, and decoding and alignment on the GPU against the CPU",
        "device": device,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "batch": {
            "utterances": n,
            "seconds_each": args.utt_seconds if cuda else args.cpu_seconds,
            "n_mels": recipe.features.n_mels,
        },
        "train_step": train,
        "decode_align": decoding,
        "wall_seconds": round(time.time() - t0, 1),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    out = Path(args.out or ROOT / "bench/results" / ("gpu_check.json" if cuda else "gpu_check_cpu.json"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
