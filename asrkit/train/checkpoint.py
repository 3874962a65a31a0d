"""Self-contained checkpoints: weights plus everything needed to decode (config, vocabulary, features, CMVN)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from asrkit.errors import InputError
from asrkit.fsutil import atomic_write

FORMAT = 1


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write atomically: a killed process leaves the previous checkpoint intact."""
    state = {"format": FORMAT, **state}
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load with weights_only=True (a checkpoint cannot run code); foreign or damaged files raise InputError."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"checkpoint {p} not found")
    try:
        state = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as e:  # pickle, zip and unpickler errors all mean "not a usable checkpoint"
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise InputError(f"cannot load checkpoint {p}: {reason[:200]}") from None
    if not isinstance(state, dict) or "model" not in state or "model_config" not in state:
        raise InputError(f"{p} is not an asrkit checkpoint")
    if state.get("format", 0) > FORMAT:
        raise InputError(f"{p} was written by a newer asrkit (format {state['format']} > {FORMAT}); upgrade asrkit")
    return state


def average_checkpoints(paths: list[str | Path]) -> dict[str, Any]:
    """The element-wise mean of several checkpoints' weights (same model and vocabulary), as a decodable checkpoint."""
    if not paths:
        raise InputError("nothing to average: give at least one checkpoint")
    states = [load_checkpoint(p) for p in paths]
    first = states[0]
    for p, s in zip(paths[1:], states[1:]):
        if s["model_config"] != first["model_config"] or s.get("tokenizer") != first.get("tokenizer"):
            raise InputError(f"{p} has another model or vocabulary than {paths[0]}; only checkpoints of one run can be averaged")
        if s["model"].keys() != first["model"].keys():
            raise InputError(f"{p} holds other weights than {paths[0]}")
    avg = {}
    for k, v in first["model"].items():
        if v.is_floating_point():
            acc = torch.zeros_like(v, dtype=torch.float64)
            for s in states:
                acc += s["model"][k].double()
            avg[k] = (acc / len(states)).to(v.dtype)
        else:  # integer buffers (counters) are not averaged
            avg[k] = v.clone()
    keep = {k: first[k] for k in ("model_config", "tokenizer", "features", "cmvn", "recipe") if k in first}
    return {**keep, "model": avg, "averaged_from": [str(p) for p in paths]}
