"""The training loop: bucketed batches, CTC loss, AdamW + schedule, clipping, validation WER, checkpoints."""

from __future__ import annotations

import json
import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from asrkit.config import Recipe, save_recipe
from asrkit.data.loader import BucketBatchSampler, FeatureDataset, collate
from asrkit.data.prepare import load_split
from asrkit.errors import InputError, WorkError
from asrkit.features import feature_settings
from asrkit.models import build_model, count_parameters
from asrkit.progress import Progress
from asrkit.text import CharTokenizer
from asrkit.train.checkpoint import load_checkpoint, save_checkpoint
from asrkit.train.schedule import make_optimizer, make_scheduler


@dataclass
class EpochStats:
    loss: float
    skipped: int
    audio_seconds: float
    seconds: float


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def ctc_feasible(target: list[int], frames: int) -> bool:
    """CTC needs one frame per label plus one blank between each pair of repeated labels."""
    repeats = sum(1 for a, b in zip(target, target[1:]) if a == b)
    return len(target) + repeats <= frames


def _filter(ds: FeatureDataset, model: torch.nn.Module, max_frames: int) -> tuple[FeatureDataset, dict[str, int]]:
    keep, too_long, infeasible = [], 0, 0
    for i in range(len(ds)):
        t = ds.frames(i)
        if t > max_frames:
            too_long += 1
        elif not ctc_feasible(ds.targets[i], int(model.output_lengths(torch.tensor([t]))[0])):
            infeasible += 1
        else:
            keep.append(i)
    ds.utts = [ds.utts[i] for i in keep]
    ds.targets = [ds.targets[i] for i in keep]
    return ds, {"too_long": too_long, "too_many_labels": infeasible}


def greedy_batch(log_probs: torch.Tensor, lengths: torch.Tensor, blank: int = 0) -> list[list[int]]:
    """Best-path decoding of a padded batch (used for validation)."""
    best = log_probs.argmax(-1).cpu()
    out = []
    for row, n in zip(best, lengths.tolist()):
        r = row[:n]
        keep = torch.ones_like(r, dtype=torch.bool)
        keep[1:] = r[1:] != r[:-1]
        r = r[keep]
        out.append(r[r != blank].tolist())
    return out


def evaluate(model: torch.nn.Module, ds: FeatureDataset, tok: CharTokenizer, device: torch.device, max_frames: int) -> dict:
    """Dev loss, WER and CER with greedy decoding."""
    from asrkit.score import score

    model.eval()
    sampler = BucketBatchSampler([ds.frames(i) for i in range(len(ds))], max_frames, shuffle=False)
    refs, hyps, total, n = {}, {}, 0.0, 0
    with torch.inference_mode():
        for idx in sampler:
            b = collate([ds[i] for i in idx]).to(device)
            lp, out_len = model(b.feats, b.lengths)
            loss = torch.nn.functional.ctc_loss(
                lp.transpose(0, 1), b.targets, out_len, b.target_lengths, blank=tok.blank, reduction="sum", zero_infinity=True
            )
            total += float(loss)
            n += len(idx)
            for uid, ids, t in zip(b.ids, greedy_batch(lp, out_len, tok.blank), idx):
                hyps[uid] = tok.decode(ids)
                refs[uid] = ds.utts[t].text or ""
    rep = score(refs, hyps)
    model.train()
    return {"loss": total / max(n, 1), "wer": rep.wer, "cer": rep.cer}


def _rng_state() -> dict:
    return {"torch": torch.random.get_rng_state(), "python": list(random.getstate()[1]), "python_pos": random.getstate()[2]}


def _set_rng_state(s: dict) -> None:
    torch.random.set_rng_state(s["torch"])
    random.setstate((3, tuple(s["python"]), s["python_pos"]))


def train(recipe: Recipe, quiet: bool = False, fresh: bool = False) -> Path:
    """Train the recipe's model; an existing experiment dir resumes from its last checkpoint."""
    if recipe.train.threads:
        torch.set_num_threads(recipe.train.threads)
    device = pick_device()
    data_dir = recipe.data_dir
    if not (data_dir / "prepare.json").is_file():
        raise InputError(f"{data_dir} is not prepared; run `asrkit prepare` on the recipe first")
    exp = recipe.exp_dir
    exp.mkdir(parents=True, exist_ok=True)
    last_path, best_path = exp / "last.pt", exp / "best.pt"
    if fresh:
        for p in (last_path, best_path, exp / "metrics.jsonl"):
            p.unlink(missing_ok=True)
    save_recipe(recipe, exp / "config.yaml")

    seed_everything(recipe.train.seed)
    tok = CharTokenizer.load(data_dir / "vocab.txt")
    feats_cfg = feature_settings(recipe.features, recipe.data.sample_rate)
    cmvn_stats = torch.load(data_dir / "cmvn.pt", weights_only=True) if recipe.features.cmvn == "global" else None
    train_utts, train_feats = load_split(data_dir, "train")
    dev_utts, dev_feats = load_split(data_dir, "dev")
    model_cfg = {**recipe.to_dict()["model"], "n_feats": recipe.features.n_mels, "n_tokens": len(tok)}
    model = build_model(model_cfg).to(device)

    hop = recipe.features.hop_ms / 1000
    max_frames = int(recipe.data.max_duration / hop)
    batch_frames = int(recipe.train.batch_seconds / hop)
    train_ds = FeatureDataset(train_utts, train_feats, tok, recipe.features.cmvn, cmvn_stats, recipe.features.specaugment, recipe.train.seed)
    dev_ds = FeatureDataset(dev_utts, dev_feats, tok, recipe.features.cmvn, cmvn_stats)
    train_ds, dropped = _filter(train_ds, model, max_frames)
    if not len(train_ds):
        raise InputError("no training utterance is left after filtering by length")
    sampler = BucketBatchSampler([train_ds.frames(i) for i in range(len(train_ds))], batch_frames, seed=recipe.train.seed)
    steps_per_epoch = len(sampler)
    opt = make_optimizer(model.parameters(), recipe.train)
    sched = make_scheduler(opt, recipe.train, steps_per_epoch * recipe.train.epochs)

    meta = {
        "model_config": model_cfg,
        "tokenizer": tok.to_dict(),
        "features": feats_cfg,
        "cmvn": cmvn_stats,
        "recipe": recipe.to_dict(),
    }
    start_epoch, step, best_wer = 0, 0, math.inf
    if last_path.is_file():
        state = load_checkpoint(last_path, device)
        if state["model_config"] != model_cfg or state["tokenizer"] != tok.to_dict():
            raise InputError(f"{last_path} was trained with another model or vocabulary; use --fresh or another train.exp_dir")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        _set_rng_state(state["rng"])
        start_epoch, step, best_wer = state["epoch"], state["step"], state["best_wer"]
        train_ds.generator.set_state(state["augment_rng"])

    with Progress(quiet) as prog:
        prog.log(
            f"{recipe.name}: {len(train_ds)} train utts ({sum(u.duration for u in train_ds.utts) / 3600:.2f} h), "
            f"{len(dev_ds)} dev; model {model_cfg['name']} with {count_parameters(model):,} parameters on {device}; "
            f"filtered: {dropped['too_long']} too long, {dropped['too_many_labels']} with more labels than frames"
            + (f"; resuming after epoch {start_epoch}" if start_epoch else "")
        )
        for epoch in range(start_epoch, recipe.train.epochs):
            t0 = time.time()
            sampler.set_epoch(epoch)
            # SortaGrad: the first epoch runs short to long, which gets CTC past its all-blank plateau sooner
            sampler.shuffle = not (recipe.train.sortagrad and epoch == 0)
            batches = sampler.batches()
            total_audio = sum(train_ds.frames(i) for b in batches for i in b) * hop
            task = prog.add(f"epoch {epoch + 1}/{recipe.train.epochs}", total=round(total_audio), unit="audio-s")
            model.train()
            loss_sum, n_utts, skipped = 0.0, 0, 0
            for idx in batches:
                b = collate([train_ds[i] for i in idx]).to(device)
                lp, out_len = model(b.feats, b.lengths)
                loss = torch.nn.functional.ctc_loss(
                    lp.transpose(0, 1), b.targets, out_len, b.target_lengths, blank=tok.blank, reduction="mean"
                )
                opt.zero_grad(set_to_none=True)
                if not torch.isfinite(loss):
                    skipped += 1  # never let a NaN/inf reach the weights
                else:
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.train.clip)
                    opt.step()
                    loss_sum += loss.item() * len(idx)
                    n_utts += len(idx)
                sched.step()
                step += 1
                prog.advance(task, float(b.lengths.sum()) * hop)
            dev = evaluate(model, dev_ds, tok, device, batch_frames)
            epoch_time = time.time() - t0
            record = {
                "epoch": epoch + 1,
                "step": step,
                "train_loss": loss_sum / max(n_utts, 1),
                "dev_loss": dev["loss"],
                "dev_wer": dev["wer"],
                "dev_cer": dev["cer"],
                "lr": opt.param_groups[0]["lr"],
                "skipped_batches": skipped,
                "seconds": round(epoch_time, 2),
                "audio_seconds_per_second": round(total_audio / max(epoch_time, 1e-9), 1),
            }
            with open(exp / "metrics.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
            prog.log(
                f"epoch {epoch + 1}: train loss {record['train_loss']:.3f}, dev loss {dev['loss']:.3f}, "
                f"dev WER {dev['wer']:.2%}, CER {dev['cer']:.2%} ({epoch_time:.0f} s, {record['audio_seconds_per_second']} audio-s/s)"
            )
            if not math.isfinite(record["train_loss"]) or (n_utts == 0 and skipped):
                raise WorkError(f"training diverged at epoch {epoch + 1}: every batch had a non-finite loss")
            if dev["wer"] < best_wer:
                best_wer = dev["wer"]
                save_checkpoint(best_path, {**meta, "model": model.state_dict(), "epoch": epoch + 1, "metric": record})
            save_checkpoint(
                last_path,
                {
                    **meta,
                    "model": model.state_dict(),
                    "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(),
                    "rng": _rng_state(),
                    "augment_rng": train_ds.generator.get_state(),
                    "epoch": epoch + 1,
                    "step": step,
                    "best_wer": best_wer,
                    "metric": record,
                },
            )
    plot_curves(exp)
    if not quiet:
        print_summary(exp)
    return best_path


def read_metrics(exp: Path) -> list[dict]:
    p = exp / "metrics.jsonl"
    if not p.is_file():
        return []
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


def plot_curves(exp: Path) -> None:
    """curves.png: losses and dev WER per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from asrkit.fsutil import atomic_write

    rows = read_metrics(exp)
    if not rows:
        return
    ep = [r["epoch"] for r in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.5))
    a.plot(ep, [r["train_loss"] for r in rows], "o-", label="train")
    a.plot(ep, [r["dev_loss"] for r in rows], "s-", label="dev")
    a.set_xlabel("epoch")
    a.set_ylabel("CTC loss")
    a.legend()
    b.plot(ep, [100 * r["dev_wer"] for r in rows], "o-", label="WER")
    b.plot(ep, [100 * r["dev_cer"] for r in rows], "s-", label="CER")
    b.set_xlabel("epoch")
    b.set_ylabel("dev error (%)")
    b.legend()
    fig.tight_layout()
    atomic_write(exp / "curves.png", lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)


def print_summary(exp: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    rows = read_metrics(exp)
    if not rows:
        return
    best = min(rows, key=lambda r: r["dev_wer"])
    t = Table(title=f"training summary: {exp}")
    for col in ("epochs", "best epoch", "best dev WER", "dev CER", "train time", "audio-s/s"):
        t.add_column(col)
    t.add_row(
        str(rows[-1]["epoch"]),
        str(best["epoch"]),
        f"{best['dev_wer']:.2%}",
        f"{best['dev_cer']:.2%}",
        f"{sum(r['seconds'] for r in rows):.0f} s",
        f"{rows[-1]['audio_seconds_per_second']}",
    )
    Console(stderr=True).print(t)
