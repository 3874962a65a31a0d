"""Self-contained checkpoints: weights plus everything needed to decode (config, vocabulary, features, CMVN)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from asrkit.errors import InputError
from asrkit.fsutil import atomic_write

FORMAT = 1


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write atomically, stamped with this asrkit's format version: a killed process leaves the previous checkpoint intact."""
    state = {**state, "format": FORMAT}
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def _load_error(p: Path, e: Exception) -> InputError:
    """A one-line InputError for a file torch.load (weights_only) refused: unsafe pickle, truncated, empty or foreign."""
    text = str(e)
    if isinstance(e, EOFError) or p.stat().st_size == 0:
        return InputError(
            f"checkpoint {p} is empty or cut short; use another checkpoint (e.g. last.pt or checkpoints/*.pt)"
        )
    if "GLOBAL" in text or "Unsupported global" in text:  # a pickle that names Python callables: never unpickled
        return InputError(
            f"checkpoint {p} is not an asrkit checkpoint: not a plain weights file, and asrkit refuses to unpickle "
            "other Python objects (loading them could run code)"
        )
    if (
        "Weights only load failed" in text or "invalid load key" in text or isinstance(e, KeyError)
    ):  # KeyError: an unknown pickle opcode (text)
        return InputError(
            f"checkpoint {p} is not a PyTorch checkpoint file (neither a zip archive nor a readable pickle)"
        )
    if "zip archive" in text or "central directory" in text or "PytorchStreamReader" in text:
        return InputError(
            f"checkpoint {p} is truncated or damaged (not a complete PyTorch file); use another checkpoint"
        )
    reason = text.splitlines()[0][:120] if text else type(e).__name__
    return InputError(f"checkpoint {p} is not a readable PyTorch checkpoint ({reason})")


_REQUIRED = ("model", "model_config", "tokenizer", "features")


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load with weights_only=True (a checkpoint cannot run code); foreign, damaged or newer files raise InputError."""
    p = Path(path)
    if p.is_dir():
        raise InputError(f"checkpoint {p} is a directory; give a .pt file, e.g. {p / 'best.pt'}")
    if not p.is_file():
        raise InputError(f"checkpoint {p} not found")
    try:
        state = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as e:  # pickle, zip and unpickler errors all mean "not a usable checkpoint"
        raise _load_error(p, e) from None
    if not isinstance(state, dict) or "model" not in state or "model_config" not in state:
        raise InputError(
            f"{p} is not an asrkit checkpoint (no model weights and model config); give a checkpoint written by asrkit train"
        )
    fmt = state.get("format", 0)
    if not isinstance(fmt, int) or isinstance(fmt, bool):
        raise InputError(f"{p} has an invalid checkpoint format version {fmt!r}")
    if fmt > FORMAT:
        raise InputError(
            f"{p} has checkpoint format {fmt}, but this asrkit reads formats up to {FORMAT}; upgrade asrkit to use it"
        )
    missing = [k for k in _REQUIRED if k not in state]
    if missing:
        raise InputError(f"{p} is not a complete asrkit checkpoint: it lacks {', '.join(missing)}")
    weights = state["model"]
    if not isinstance(weights, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in weights.items()
    ):
        raise InputError(f"{p} is not an asrkit checkpoint: 'model' is not a dict of named tensors")
    for key in ("model_config", "tokenizer", "features"):
        if not isinstance(state[key], dict):
            raise InputError(f"{p} is not an asrkit checkpoint: {key!r} is not a mapping")
    return state


def average_checkpoints(paths: list[str | Path]) -> dict[str, Any]:
    """The element-wise mean of several checkpoints' weights (same model and vocabulary), as a decodable checkpoint."""
    if not paths:
        raise InputError("nothing to average: give at least one checkpoint")
    states = [load_checkpoint(p) for p in paths]
    first = states[0]
    for p, s in zip(paths[1:], states[1:]):
        if s["model_config"] != first["model_config"] or s.get("tokenizer") != first.get("tokenizer"):
            raise InputError(
                f"{p} has another model or vocabulary than {paths[0]}; only checkpoints of one run can be averaged"
            )
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
