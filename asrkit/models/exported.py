"""What an exported file carries besides the network: every setting decoding needs, as JSON strings."""

from __future__ import annotations

import json
from typing import Any

import torch

from asrkit.errors import InputError
from asrkit.version import __version__

EXPORT_FORMAT = 1  # bump when the metadata or the graph's inputs/outputs change incompatibly
PREFIX = "asrkit."
REQUIRED = (
    "export_format",
    "asrkit_version",
    "model_config",
    "tokenizer",
    "features",
    "task",
    "subsample",
    "frame_shift",
)
ALL_FIELDS = (*REQUIRED, "checkpoint_format", "cmvn", "recipe")


def _cmvn_to_json(cmvn: dict | None) -> dict | None:
    """Global CMVN statistics with their tensors as lists (float32 values survive the JSON round trip exactly)."""
    if cmvn is None:
        return None
    return {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in cmvn.items()}


def _cmvn_from_json(cmvn: dict | None) -> dict | None:
    """Lists back to the float32 tensors `asrkit.features.normalize` expects."""
    if cmvn is None:
        return None

    return {k: (torch.tensor(v, dtype=torch.float32) if isinstance(v, list) else v) for k, v in cmvn.items()}


def build_metadata(state: dict[str, Any], task: str, subsample: int) -> dict[str, Any]:
    """The decoding settings of a loaded checkpoint `state` (plus the built model's task and subsampling)."""
    feats = state["features"]
    meta: dict[str, Any] = {
        "export_format": EXPORT_FORMAT,
        "asrkit_version": __version__,
        "checkpoint_format": state.get("format", 0),
        "model_config": state["model_config"],
        "tokenizer": state["tokenizer"],
        "features": feats,
        "cmvn": _cmvn_to_json(state.get("cmvn")),
        "task": task,
        "subsample": subsample,
        "frame_shift": feats["hop_ms"] / 1000 * subsample,
    }
    try:  # the recipe is informative only: kept when it is plain JSON
        json.dumps(state.get("recipe"))
        meta["recipe"] = state.get("recipe")
    except (TypeError, ValueError):
        pass
    return meta


def pack(meta: dict[str, Any]) -> dict[str, str]:
    """One `asrkit.<field>` → JSON string entry per field (ONNX metadata_props, TorchScript extra files)."""
    return {PREFIX + k: json.dumps(v, sort_keys=True) for k, v in meta.items()}


def unpack(props: dict[str, str], where: str) -> dict[str, Any]:
    """The fields `pack` wrote, checked: a file without them or from a newer asrkit raises InputError."""
    try:
        meta = {k[len(PREFIX) :]: json.loads(v) for k, v in props.items() if k.startswith(PREFIX) and v}
    except ValueError as e:
        raise InputError(f"{where} has damaged asrkit metadata: {e}") from None
    missing = [k for k in REQUIRED if k not in meta]
    if missing:
        raise InputError(f"{where} is not an asrkit export (no {', '.join(missing)} in its metadata)")
    if int(meta["export_format"]) > EXPORT_FORMAT:
        raise InputError(
            f"{where} was exported by a newer asrkit (export format {meta['export_format']} > {EXPORT_FORMAT}); upgrade asrkit"
        )
    meta["cmvn"] = _cmvn_from_json(meta.get("cmvn"))
    return meta
