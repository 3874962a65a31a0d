"""Optimisers and learning-rate schedules from the recipe."""

from __future__ import annotations

import math

import torch

from asrkit.config import TrainConfig


def make_optimizer(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay, nesterov=True)
    # fused: one kernel for all parameters (CPU and CUDA), instead of a Python loop over tensors
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)


def make_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int, higher_is_better: bool = False):
    """A per-optimizer-step schedule, or for `plateau` a ReduceLROnPlateau stepped once per epoch with the dev metric."""
    total_steps = max(total_steps, 1)
    if cfg.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt,
            mode="max" if higher_is_better else "min",
            factor=cfg.plateau_factor,
            patience=cfg.plateau_patience,
            eps=0.0,
        )
    if cfg.schedule == "onecycle" and total_steps >= 4:
        # OneCycleLR divides by the length of each phase: both must span at least one step
        pct = min(max(cfg.warmup, 2 / total_steps), 1 - 2 / total_steps)
        return torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=cfg.lr, total_steps=total_steps, pct_start=pct, anneal_strategy="cos"
        )
    if cfg.schedule == "cosine":
        warm = max(1, int(cfg.warmup * total_steps))

        def f(step: int) -> float:  # linear warm-up, then half a cosine down to 0
            if step < warm:
                return (step + 1) / warm
            return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total_steps - warm))))

        return torch.optim.lr_scheduler.LambdaLR(opt, f)
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)


def per_step(cfg: TrainConfig) -> bool:
    """Whether the schedule advances every optimizer step (all but plateau)."""
    return cfg.schedule != "plateau"
