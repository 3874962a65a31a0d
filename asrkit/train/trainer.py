"""The training engine: bucketed batches, CTC loss, accumulation, mixed precision, DDP, exact resume, best-N checkpoints."""

from __future__ import annotations

import contextlib
import math
import random
import shutil
import signal
import threading
import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any
from pathlib import Path

import torch
import torch.distributed as dist

from asrkit.config import Recipe, TrainConfig, save_recipe
from asrkit.data.loader import BucketBatchSampler, FeatureDataset
from asrkit.data.prepared import load_split, load_tokenizer
from asrkit.errors import InputError, Interrupted, WorkError
from asrkit.features import CMVN_WITH_STATS, VTLP, ChannelResponse, feature_settings
from asrkit.fsutil import TRAIN_LOCK, RunLock, atomic_write
from asrkit.models import build_model, count_parameters
from asrkit.train.card import write_model_card
from asrkit.progress import Progress
from asrkit.train import distributed
from asrkit.models.checkpoint import average_checkpoints, load_checkpoint, save_checkpoint
from asrkit.train.evaluate import HIGHER_IS_BETTER, better, evaluate, frame_loss, resolve_metric
from asrkit.train.report import plot_curves, print_summary, write_metrics
from asrkit.train.schedule import make_optimizer, make_scheduler, per_step


@dataclass
class RunState:
    """Where a run stands; saved in last.pt so a killed run continues exactly where it was."""

    epoch: int = 0  # epochs completed
    batch: int = 0  # batches of the current epoch already consumed (this rank's shard)
    step: int = 0  # optimizer steps taken
    loss_sum: float = 0.0  # this epoch so far, summed over utterances
    n_utts: int = 0
    skipped: int = 0  # batches whose loss was NaN/inf, this epoch
    epoch_seconds: float = 0.0  # wall time already spent in this epoch before a restart
    loop_seconds: float = 0.0  # of which in the batch loop (no validation, no checkpoints)
    best: list[dict] = field(default_factory=list)  # [{"epoch", "value", "path"}], best first
    bad_epochs: int = 0  # epochs since the dev metric last improved
    done: bool = False  # stopped early
    history: list[dict] = field(default_factory=list)  # the metrics.jsonl rows


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def ctc_feasible(target: list[int], frames: int) -> bool:
    """CTC needs one frame per label plus one blank between each pair of repeated labels."""
    repeats = sum(1 for a, b in zip(target, target[1:]) if a == b)
    return len(target) + repeats <= frames


def filter_utterances(
    ds: FeatureDataset, model: torch.nn.Module, max_frames: int
) -> tuple[FeatureDataset, dict[str, int]]:
    """Drop utterances over the recipe's length limit and those with more labels than CTC frames; count both."""
    keep, too_long, infeasible = [], 0, 0
    frames = ds.frame_counts()
    outs = (
        model.output_lengths(torch.tensor(frames, dtype=torch.long)).tolist() if frames else []
    )  # one call, not one per utterance
    for i, (t, out) in enumerate(zip(frames, outs)):
        if t > max_frames:
            too_long += 1
        elif model.task == "frame" and len(ds.targets[i]) != out:
            raise InputError(
                f"utterance {ds.utts[i].id!r} has {len(ds.targets[i])} frame labels for {out} model frames"
            )
        elif model.task == "ctc" and not ctc_feasible(ds.targets[i], out):
            infeasible += 1
        else:
            keep.append(i)
    ds.keep(keep)
    return ds, {"too_long": too_long, "too_many_labels": infeasible}


def _rng_state(device: torch.device) -> dict:
    s = {
        "torch": torch.random.get_rng_state(),
        "python": list(random.getstate()[1]),
        "python_pos": random.getstate()[2],
    }
    if device.type == "cuda":
        s["cuda"] = torch.cuda.get_rng_state(device)
    return s


def _set_rng_state(s: dict, device: torch.device) -> None:
    torch.random.set_rng_state(s["torch"])
    random.setstate((3, tuple(s["python"]), s["python_pos"]))
    if device.type == "cuda" and "cuda" in s:
        torch.cuda.set_rng_state(s["cuda"], device)


def cpu_bf16_supported() -> bool:
    """True when this CPU computes bfloat16 natively (AVX512-BF16 / AMX), the only CPUs where bf16 autocast pays."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def amp_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for `train.precision` on `device`, or None for fp32: CUDA bf16/fp16, CPU bf16 where native."""
    if precision == "fp32":
        return None
    if device.type == "cuda":
        return torch.bfloat16 if precision == "bf16" else torch.float16
    if device.type == "cpu" and precision == "bf16" and cpu_bf16_supported():
        return torch.bfloat16
    return None


def _autocast(dtype: torch.dtype | None, device: torch.device):
    return contextlib.nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


class StopRequest:
    """Ctrl-C (SIGINT) asks the loop to stop at the next batch boundary after saving last.pt.

    A second Ctrl-C stops at once (the atomic writes keep every file whole), except during a save, which it lets finish.
    The handler is installed only where SIGINT has Python's default handler (not when the shell ignores it).
    """

    def __init__(self) -> None:
        self.requested = False
        self.saving = False
        self._old = None

    def __enter__(self) -> StopRequest:
        if (
            threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is signal.default_int_handler
        ):
            self._old = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
            self._old = None

    def _handle(self, signum, frame) -> None:
        if self.requested and not self.saving:
            raise KeyboardInterrupt
        self.requested = True


def train(recipe: Recipe, quiet: bool = False, fresh: bool = False) -> Path:
    """Train the recipe's model; an experiment dir with a last.pt resumes from it. Under torchrun, one rank per process."""
    d = distributed.setup()
    ok = False
    with contextlib.ExitStack() as held:
        try:
            best = _train(recipe, quiet or not d.main, fresh, d, held)
            ok = True
            return best
        finally:
            d.close(clean=ok)


@dataclass
class TrainData:
    """The training and dev sets of a run and how its batches are drawn."""

    tok: Any
    train_ds: FeatureDataset
    dev_ds: FeatureDataset
    sampler: BucketBatchSampler
    frames: list[int]  # per training utterance, after filtering
    counts: list[int]  # this rank's batches per epoch
    dropped: dict[str, int]
    hop: float  # seconds per feature frame
    batch_frames: int
    views: int  # 2 with CR-CTC: two augmented views of every batch

    def epoch_batches(self, epoch: int, sortagrad: bool) -> list[list[int]]:
        """Every rank's batches of `epoch`, drawn when it starts (kept for every epoch they would grow with the corpus)."""
        self.sampler.set_epoch(epoch)
        # SortaGrad: the first epoch runs short to long, which gets CTC past its all-blank plateau sooner
        self.sampler.shuffle = not (sortagrad and epoch == 0)
        return self.sampler.batches()


@dataclass
class Run:
    """What a training run works with, built once by `setup`; the changing part is its `RunState`."""

    recipe: Recipe
    d: distributed.Dist
    data: TrainData
    model: torch.nn.Module
    net: torch.nn.Module  # the model, or its DistributedDataParallel wrapper
    opt: torch.optim.Optimizer
    sched: Any
    scaler: torch.amp.GradScaler
    amp: torch.dtype | None
    model_cfg: dict
    meta: dict  # what every checkpoint carries besides the weights
    metric: str
    stop: StopRequest = field(default_factory=StopRequest)

    @property
    def cfg(self) -> TrainConfig:
        return self.recipe.train

    @property
    def last_path(self) -> Path:
        return self.recipe.exp_dir / "last.pt"


@dataclass
class EpochClock:
    """One epoch's batches and the time spent on it, across a restart in the middle of it."""

    batches: list[list[int]]
    audio: list[float]  # seconds of audio per batch
    t0: float  # when the epoch started, less the time an earlier run spent on it
    loop_seconds: float  # time in the batch loop alone


def _train(recipe: Recipe, quiet: bool, fresh: bool, d: distributed.Dist, held: contextlib.ExitStack) -> Path:
    open_exp_dir(recipe, d, held, fresh)
    run = setup(recipe, d)
    st = resume(run)
    if d.enabled:
        device = d.device
        run.net = torch.nn.parallel.DistributedDataParallel(
            run.model, device_ids=[device.index] if device.type == "cuda" else None
        )
    run.stop = held.enter_context(StopRequest())
    with Progress(quiet) as prog:
        _log_start(run, st, prog)
        for epoch in range(st.epoch, run.cfg.epochs):
            if st.done:
                break
            clock = train_one_epoch(run, st, epoch, prog)
            end_of_epoch(run, st, epoch, clock, prog)
    finish(run, st, quiet)
    return recipe.exp_dir / "best.pt"


def open_exp_dir(recipe: Recipe, d: distributed.Dist, held: contextlib.ExitStack, fresh: bool) -> None:
    """Set the thread count, take the experiment dir's lock, clear what a kill or --fresh leaves, save the recipe."""
    cfg = recipe.train
    if cfg.threads:
        before = torch.get_num_threads()
        if before != cfg.threads:  # a caller in the same process gets its own back (untouched when it was the same)
            held.callback(torch.set_num_threads, before)
        torch.set_num_threads(cfg.threads)
    data_dir = recipe.data_dir
    if not (data_dir / "prepare.json").is_file():
        raise InputError(f"{data_dir} is not prepared; run `asrkit prepare` on the recipe first")
    exp = recipe.exp_dir
    ckpt_dir = exp / "checkpoints"
    if d.main:
        # one run per experiment dir, taken before anything in it is touched (the kernel drops it if this process dies)
        held.callback(RunLock(exp / TRAIN_LOCK, "experiment dir").release)
        for tmp in [*exp.glob(".*.tmp"), *ckpt_dir.glob(".*.tmp")]:
            tmp.unlink()  # left by a write that a kill interrupted; the file it was replacing is intact
        if fresh:
            for name in ("last.pt", "best.pt", "averaged.pt", "metrics.jsonl", "curves.png", "MODEL_CARD.md"):
                (exp / name).unlink(missing_ok=True)
            shutil.rmtree(ckpt_dir, ignore_errors=True)
        save_recipe(recipe, exp / "config.yaml")
    d.barrier()


def setup(recipe: Recipe, d: distributed.Dist) -> Run:
    """Seed, read the prepared data, build the model, the optimiser and its schedule (in this order: the seeds see it)."""
    cfg = recipe.train
    device = d.device
    seed_everything(cfg.seed)
    feats_cfg = feature_settings(recipe.features, recipe.data.sample_rate)
    # decoding may read with another normalisation than training's (decode.cmvn): the checkpoint keeps the statistics
    # either one needs
    needs_stats = recipe.features.cmvn in CMVN_WITH_STATS or recipe.decode.cmvn in CMVN_WITH_STATS
    cmvn_stats = torch.load(recipe.data_dir / "cmvn.pt", weights_only=True) if needs_stats else None
    train_utts, train_feats = load_split(recipe.data_dir, "train")
    dev_utts, dev_feats = load_split(recipe.data_dir, "dev")
    tok = load_tokenizer(recipe, train_utts)
    model_cfg = {**recipe.to_dict()["model"], "n_feats": recipe.features.n_mels, "n_tokens": len(tok)}
    model = build_model(model_cfg).to(device)
    if d.rank:
        torch.manual_seed(cfg.seed + d.rank)  # other dropout masks on each rank; DDP copies rank 0's initial weights
    metric = resolve_metric(cfg.metric, model_cfg["head"])
    data = _setup_data(recipe, d, model, tok, (train_utts, train_feats), (dev_utts, dev_feats), cmvn_stats)
    total_steps = sum(math.ceil(n / cfg.accum_steps) for n in data.counts)
    opt = make_optimizer(model.parameters(), cfg)
    sched = make_scheduler(opt, cfg, total_steps, higher_is_better=HIGHER_IS_BETTER[metric])
    amp = amp_dtype(cfg.precision, device)
    scaler = torch.amp.GradScaler("cuda", enabled=amp == torch.float16)
    meta = {
        "model_config": model_cfg,
        "tokenizer": tok.to_dict(),
        "features": feats_cfg,
        "cmvn": cmvn_stats,
        "recipe": recipe.to_dict(),
    }
    return Run(recipe, d, data, model, model, opt, sched, scaler, amp, model_cfg, meta, metric)


def _setup_data(
    recipe: Recipe, d: distributed.Dist, model: torch.nn.Module, tok, train: tuple, dev: tuple, cmvn_stats
) -> TrainData:
    """The training set (augmented, filtered to what the model can learn) and the dev set, and the epochs' batch counts."""
    cfg, fc = recipe.train, recipe.features
    hop = fc.hop_ms / 1000
    max_frames = int(recipe.data.max_duration / hop)
    batch_frames = int(cfg.batch_seconds / hop)
    aug_seed = cfg.seed + 1000 * d.rank
    warp = VTLP(*fc.vtlp, fc.n_mels, recipe.data.sample_rate, fc.f_min, fc.f_max) if fc.vtlp else None
    channel = ChannelResponse(fc.channel, fc.n_mels) if fc.channel > 0 else None
    train_ds = FeatureDataset(*train, tok, fc.cmvn, cmvn_stats, fc.specaugment, aug_seed, warp, channel)
    dev_ds = FeatureDataset(*dev, tok, fc.cmvn, cmvn_stats)
    del train, dev  # the datasets read their own normalised features
    train_ds, dropped = filter_utterances(train_ds, model, max_frames)
    if not len(train_ds):
        raise InputError("no training utterance is left after filtering by length")
    frames = train_ds.frame_counts()
    sampler = BucketBatchSampler(frames, batch_frames, seed=cfg.seed)
    views = 2 if cfg.consistency > 0 and recipe.model.head == "ctc" else 1  # CR-CTC: two augmented views of every batch
    data = TrainData(tok, train_ds, dev_ds, sampler, frames, [], dropped, hop, batch_frames, views)
    data.counts = [len(d.shard(data.epoch_batches(e, cfg.sortagrad))) for e in range(cfg.epochs)]
    if not all(data.counts):
        raise InputError(f"too few batches for {d.world} ranks: lower train.batch_seconds or use fewer processes")
    return data


def resume(run: Run) -> RunState:
    """The run's state from last.pt, with the weights, optimiser, schedule and random generators as they were; a new
    state when there is none. Refuses a last.pt whose model, vocabulary, settings or process count differ."""
    last_path, d, recipe = run.last_path, run.d, run.recipe
    if not last_path.is_file():
        return RunState()
    saved = load_checkpoint(last_path, d.device)
    if saved["model_config"] != run.model_cfg or saved["tokenizer"] != run.data.tok.to_dict():
        raise InputError(
            f"{last_path} was trained with another model or vocabulary; use --fresh or another train.exp_dir"
        )
    changed = _changed_train_keys(saved.get("recipe", {}).get("train", {}), recipe.to_dict()["train"])
    if changed:
        raise InputError(
            f"{last_path} was trained with other settings ({', '.join(changed)}); an exact resume needs the same ones: "
            "restore them, or use --fresh or another train.exp_dir"
        )
    if "run" not in saved:
        raise InputError(f"{last_path} comes from an older asrkit without exact resume; use --fresh")
    if saved.get("world", 1) != d.world:
        raise InputError(
            f"{last_path} was written by {saved.get('world', 1)} processes, this run has {d.world}; resume with the same count"
        )
    run.model.load_state_dict(saved["model"])
    run.opt.load_state_dict(saved["optimizer"])
    run.sched.load_state_dict(saved["scheduler"])
    run.scaler.load_state_dict(saved["scaler"])
    st = RunState(**saved["run"])
    _set_rng_state(saved["rng"][d.rank], d.device)
    run.data.train_ds.generator.set_state(saved["augment_rng"][d.rank])
    if d.main:
        write_metrics(recipe.exp_dir, st.history)
    return st


def save_last(run: Run, st: RunState) -> None:
    """Write last.pt (a collective: every rank calls it); a second Ctrl-C lets the save finish."""
    run.stop.saving = True
    try:
        d = run.d
        rng = d.gather(_rng_state(d.device))
        aug = d.gather(run.data.train_ds.generator.get_state())
        if d.main:
            state = {
                **run.meta,
                "model": run.model.state_dict(),
                "optimizer": run.opt.state_dict(),
                "scheduler": run.sched.state_dict(),
                "scaler": run.scaler.state_dict(),
                "rng": rng,
                "augment_rng": aug,
                "world": d.world,
                "run": asdict(st),
            }
            save_checkpoint(run.last_path, state)
    finally:
        run.stop.saving = False


def _interrupted(run: Run, st: RunState, epoch: int, n_batches: int) -> Interrupted:
    epochs = run.cfg.epochs
    at = (
        f"at epoch {epoch + 1} of {epochs}, batch {st.batch} of {n_batches}"
        if st.batch
        else f"before epoch {epoch + 1} of {epochs}"
    )
    return Interrupted(f"interrupted {at}; saved {run.last_path}: run the same command again to resume")


def _log_start(run: Run, st: RunState, prog: Progress) -> None:
    cfg, d, data = run.cfg, run.d, run.data
    if cfg.precision != "fp32" and run.amp is None:
        need = "CUDA or a CPU with native bf16 (AVX512-BF16/AMX)" if cfg.precision == "bf16" else "CUDA"
        prog.log(f"train.precision {cfg.precision} needs {need}; training in fp32 on {d.device}")
    prog.log(
        f"{run.recipe.name}: {len(data.train_ds)} train utts ({sum(u.duration for u in data.train_ds.utts) / 3600:.2f} h), "
        f"{len(data.dev_ds)} dev; model {run.model_cfg['name']} with {count_parameters(run.model):,} parameters on {d.device}"
        + (f" × {d.world} processes" if d.enabled else "")
        + f"; filtered: {data.dropped['too_long']} longer than data.max_duration, "
        f"{data.dropped['too_many_labels']} with more labels than frames"
        + (f"; resuming at epoch {st.epoch + 1}, batch {st.batch}" if st.epoch or st.batch else "")
    )
    if st.done:
        prog.log(f"the run stopped early at epoch {st.epoch}; nothing to do (use --fresh to start over)")


def train_one_epoch(run: Run, st: RunState, epoch: int, prog: Progress) -> EpochClock:
    """The batch loop of one epoch from where `st` stands; saves last.pt every train.save_every steps and on Ctrl-C
    (then raises Interrupted)."""
    cfg, d, data, net, device = run.cfg, run.d, run.data, run.net, run.d.device
    batches = d.shard(data.epoch_batches(epoch, cfg.sortagrad))
    audio = [sum(data.frames[i] for i in b) * data.hop for b in batches]
    clock = EpochClock(batches, audio, time.time() - st.epoch_seconds, st.loop_seconds)
    task = prog.add(
        f"epoch {epoch + 1}/{cfg.epochs}", total=round(sum(audio)), unit="audio-s", completed=sum(audio[: st.batch])
    )
    net.train()
    for bi in range(st.batch, len(batches)):
        tb = time.time()
        group_start = bi - bi % cfg.accum_steps
        group = min(cfg.accum_steps, len(batches) - group_start)
        last_in_group = bi == group_start + group - 1
        b = data.train_ds.batch(batches[bi], views=data.views).to(device)
        sync = contextlib.nullcontext() if (last_in_group or not d.enabled) else net.no_sync()
        with sync:
            with _autocast(run.amp, device):
                lp, out_len = net(b.feats, b.lengths)
            loss = _loss(lp, out_len, b, run.recipe.model.head)
            if data.views > 1:
                loss = loss + cfg.consistency * consistency_loss(lp, out_len, b.target_lengths)
            finite = d.all_true(bool(torch.isfinite(loss)))
            if finite:
                run.scaler.scale(loss / group).backward()
                st.loss_sum += loss.item() * len(batches[bi])
                st.n_utts += len(batches[bi])
            else:
                st.skipped += 1  # never let a NaN/inf reach the weights
        prog.advance(task, audio[bi])
        if not last_in_group:
            clock.loop_seconds += time.time() - tb
            continue
        if d.enabled and not finite and group > 1:
            _average_gradients(run.model, d.world)  # the skipped last micro-batch would have synced them
        _optimizer_step(run)
        st.step += 1
        st.batch = bi + 1
        clock.loop_seconds += time.time() - tb
        saved = bool(cfg.save_every and st.step % cfg.save_every == 0 and st.batch < len(batches))
        if saved:
            st.epoch_seconds, st.loop_seconds = time.time() - clock.t0, clock.loop_seconds
            save_last(run, st)
        if st.batch < len(batches) and d.any_true(run.stop.requested):  # the epoch's last batch: stop after its end
            if not saved:
                st.epoch_seconds, st.loop_seconds = time.time() - clock.t0, clock.loop_seconds
                save_last(run, st)
            raise _interrupted(run, st, epoch, len(batches))
    return clock


def _optimizer_step(run: Run) -> None:
    """Unscale, clip and apply the accumulated gradients (none: every micro-batch was skipped); step a per-step schedule."""
    cfg, model, opt, scaler = run.cfg, run.model, run.opt, run.scaler
    if any(p.grad is not None for p in model.parameters()):
        scaler.unscale_(opt)
        if cfg.clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
        scaler.step(opt)
        scaler.update()
    opt.zero_grad(set_to_none=True)
    if per_step(cfg):
        with warnings.catch_warnings():  # the schedule keeps time even when a skipped batch left no optimizer step
            warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step\\(\\)` before")
            run.sched.step()


def end_of_epoch(run: Run, st: RunState, epoch: int, clock: EpochClock, prog: Progress) -> None:
    """Validate, step a per-epoch schedule, keep the best checkpoints, save last.pt and metrics.jsonl, log the epoch;
    raises Interrupted on a Ctrl-C that came during the epoch."""
    cfg, d, metric, exp = run.cfg, run.d, run.metric, run.recipe.exp_dir
    if d.enabled:  # the epoch's loss over every rank's batches
        sums = d.gather((st.loss_sum, st.n_utts, st.skipped))
        st.loss_sum, st.n_utts, st.skipped = (sum(x) for x in zip(*sums))
    data = run.data
    dev = d.broadcast(evaluate(run.model, data.dev_ds, data.tok, d.device, data.batch_frames) if d.main else None)
    epoch_time = time.time() - clock.t0
    epoch_audio = sum(clock.audio) * d.world
    record = {
        "epoch": epoch + 1,
        "step": st.step,
        "train_loss": st.loss_sum / max(st.n_utts, 1),
        **{f"dev_{k}": v for k, v in dev.items()},
        "lr": run.opt.param_groups[0]["lr"],
        "skipped_batches": st.skipped,
        "seconds": round(epoch_time, 2),
        "audio_seconds_per_second": round(epoch_audio / max(epoch_time, 1e-9), 1),
        "train_audio_seconds_per_second": round(epoch_audio / max(clock.loop_seconds, 1e-9), 1),  # batch loop only
    }
    if st.n_utts == 0:
        raise WorkError(f"training diverged at epoch {epoch + 1}: every batch had a non-finite loss")
    if not per_step(cfg):
        run.sched.step(dev[metric])
    improved = not st.best or better(dev[metric], st.best[0]["value"], metric)
    st.bad_epochs = 0 if improved else st.bad_epochs + 1
    if d.main:
        _keep_best(
            st,
            exp,
            cfg.keep_best,
            metric,
            epoch + 1,
            dev[metric],
            {**run.meta, "model": run.model.state_dict(), "metric": record},
        )
    st.history.append(record)
    st.epoch, st.batch, st.loss_sum, st.n_utts, st.skipped, st.epoch_seconds, st.loop_seconds = (
        epoch + 1,
        0,
        0.0,
        0,
        0,
        0.0,
        0.0,
    )
    if cfg.early_stop and st.bad_epochs >= cfg.early_stop and epoch + 1 < cfg.epochs:
        st.done = True
    save_last(run, st)
    if d.main:
        write_metrics(exp, st.history)
    _log_epoch(prog, epoch, record, dev, epoch_time)
    if st.done:
        prog.log(f"early stop: dev {metric} has not improved for {st.bad_epochs} epochs")
    d.barrier()
    if epoch + 1 < cfg.epochs and not st.done and d.any_true(run.stop.requested):
        raise _interrupted(run, st, epoch + 1, data.counts[epoch + 1])


def _log_epoch(prog: Progress, epoch: int, record: dict, dev: dict, epoch_time: float) -> None:
    shown = ", ".join(
        f"{k.upper() if k != 'accuracy' else k} {dev[k]:.2%}" for k in ("wer", "cer", "accuracy") if k in dev
    )
    prog.log(
        f"epoch {epoch + 1}: train loss {record['train_loss']:.3f}, dev loss {dev['loss']:.3f}, "
        f"dev {shown} ({epoch_time:.0f} s, {record['audio_seconds_per_second']} audio-s/s"
        + (f", {record['skipped_batches']} batches skipped for a non-finite loss" if record["skipped_batches"] else "")
        + ")"
    )


def finish(run: Run, st: RunState, quiet: bool) -> None:
    """Check that the ranks agree, average the best checkpoints, draw the curves, write the model card and summary."""
    d, cfg, exp, model = run.d, run.cfg, run.recipe.exp_dir, run.model
    if d.enabled:
        sums = d.gather(distributed.weights_checksum(model))
        if len(set(sums)) != 1:
            raise WorkError(f"ranks ended with different weights: {sums}")
        if d.main:
            print(f"weights identical on all {d.world} ranks (checksum {sums[0]})", flush=True)
    if d.main:
        if cfg.average and st.best:
            paths = [exp / b["path"] for b in st.best[: cfg.average]]
            save_checkpoint(exp / "averaged.pt", average_checkpoints(paths))
        hib = HIGHER_IS_BETTER[run.metric]
        plot_curves(exp, run.metric)
        write_model_card(run.recipe, exp, count_parameters(model), str(d.device), run.metric, hib, d.world)
        if not quiet:
            print_summary(exp, run.metric, hib, note="stopped early" if st.done else "")


# settings that change nothing a resumed run computes; every other train key must match last.pt's
_RESUMABLE_CHANGES = {"exp_dir", "threads", "save_every", "keep_best", "average", "early_stop"}


def _changed_train_keys(saved: dict, now: dict) -> list[str]:
    return [
        f"train.{k}: {saved[k]!r} → {now.get(k)!r}"
        for k in sorted(saved)
        if k not in _RESUMABLE_CHANGES and saved[k] != now.get(k)
    ]


def consistency_loss(lp: torch.Tensor, out_len: torch.Tensor, target_lengths: torch.Tensor) -> torch.Tensor:
    """CR-CTC's regulariser (Yao et al. 2024): a batch holds two augmented views of the same utterances (first half,
    second half); each view's frame posteriors are pulled towards the other's, held fixed (symmetric KL with stop-
    gradient), summed over an utterance's frames and divided by its label count like the CTC loss."""
    a, b = lp.float().chunk(2)
    n = a.shape[0]
    mask = (torch.arange(a.shape[1], device=a.device)[None, :] < out_len[:n, None]).to(a.dtype)
    kl = lambda p, q: (p.exp() * (p - q)).sum(-1)  # noqa: E731  KL(p ‖ q) per frame, from log-probabilities
    per_frame = 0.5 * (kl(a.detach(), b) + kl(b.detach(), a))
    return ((per_frame * mask).sum(1) / target_lengths[:n].clamp_min(1)).mean()


def _loss(out: torch.Tensor, out_len: torch.Tensor, b, head: str) -> torch.Tensor:
    """The training loss of a batch: CTC (mean over utterances of the per-label loss) or cross-entropy."""
    if head == "classifier":
        return torch.nn.functional.nll_loss(out.float(), b.targets[:, 0])
    if head == "frame":
        return frame_loss(out, out_len, b.targets)
    return torch.nn.functional.ctc_loss(
        out.float().transpose(0, 1), b.targets, out_len, b.target_lengths, blank=0, reduction="mean"
    )


def _keep_best(st: RunState, exp: Path, keep: int, metric: str, epoch: int, value: float, state: dict) -> None:
    """Keep the `keep` best epoch checkpoints in checkpoints/ and the very best as best.pt."""
    if len(st.best) >= keep and not better(value, st.best[-1]["value"], metric):
        return
    path = f"checkpoints/epoch-{epoch}.pt"
    save_checkpoint(exp / path, {**state, "epoch": epoch})
    st.best.append({"epoch": epoch, "value": value, "path": path})
    # stable sort: on a tie the earlier epoch stays ahead
    st.best.sort(key=lambda b: -b["value"] if HIGHER_IS_BETTER[metric] else b["value"])
    for old in st.best[keep:]:
        (exp / old["path"]).unlink(missing_ok=True)
    del st.best[keep:]
    if st.best[0]["epoch"] == epoch:
        atomic_write(exp / "best.pt", lambda tmp: shutil.copyfile(exp / path, tmp))


def _average_gradients(model: torch.nn.Module, world: int) -> None:
    for p in model.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad /= world
