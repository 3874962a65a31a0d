"""Model zoo: build a model by name from a config dict (stored in every checkpoint).

>>> m = build_model({"name": "bigru", "head": "ctc", "frontend": "resnet", "hidden": 64, "layers": 2, "n_feats": 80, "n_tokens": 30})
>>> m.task, m.bidirectional
('ctc', True)
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import torch

from asrkit.config import MODEL_NAMES, ZOO, ModelConfig
from asrkit.errors import InputError
from asrkit.models.dnn import DNNModel
from asrkit.models.recurrent import RecurrentModel

# oneDNN keeps a compiled primitive, with its scratch memory, for every input shape it meets (1,024 by default):
# utterances of every length made training's private memory grow with the corpus (2.4 GB after 30 s on 2 h of
# LibriSpeech-length audio with a 32-unit BiLSTM; 0.8 GB with 16 kept, and no slower). Set before the first
# model runs; a value in the environment wins.
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "16")

MODELS = MODEL_NAMES  # the zoo's names, from the recipe schema (asrkit.config.ZOO)

# ModelConfig defaults, for checkpoints written before a key existed (old configs: frontend conv)
_DEFAULTS: dict[str, Any] = {f.name: f.default for f in dataclasses.fields(ModelConfig) if f.name != "name"}


def build_model(cfg: dict[str, Any]) -> torch.nn.Module:
    """Build a zoo entry from its config (ModelConfig fields + n_feats + n_tokens); missing keys take the defaults."""
    name = cfg.get("name")
    if name not in ZOO:
        raise InputError(f"unknown model {name!r}; the zoo has: {', '.join(MODELS)}")
    c = {**_DEFAULTS, **{k: v for k, v in cfg.items() if v is not None}}
    common = {
        "n_feats": c["n_feats"],
        "n_outputs": c["n_tokens"],
        "head": c["head"],
        "pool": c["pool"],
        "frontend": c["frontend"],
        "conv_channels": c["conv_channels"],
        "cnn_blocks": c["cnn_blocks"],
        "subsample": c["subsample"],
        "hidden": c["hidden"],
        "layers": c["layers"],
        "dropout": c["dropout"],
    }
    entry = ZOO[name]
    if entry.cell is None:
        return DNNModel(**common, context=c["context"])
    return RecurrentModel(
        **common,
        cell=entry.cell,
        bidirectional=entry.bidirectional,
        projection=c["projection"],
        nonlinearity=c["nonlinearity"],
    )


def count_parameters(model: torch.nn.Module) -> int:
    """Number of parameters (trainable or not)."""
    return sum(p.numel() for p in model.parameters())


def zoo_table(model_cfg: dict[str, Any], n_feats: int, n_tokens: int) -> list[dict[str, Any]]:
    """One row per zoo entry built with `model_cfg`'s sizes: name, description, parameters, bidirectional, streamable.

    An entry the sizes do not fit (e.g. an LSTM projection >= hidden) gets parameters None and an `error`.
    """
    rows = []
    for name, entry in ZOO.items():
        row: dict[str, Any] = {"name": name, "description": entry.description, "parameters": None}
        row.update(bidirectional=entry.bidirectional, streamable=not entry.bidirectional)
        try:
            row["parameters"] = count_parameters(
                build_model({**model_cfg, "name": name, "n_feats": n_feats, "n_tokens": n_tokens})
            )
        except InputError as e:
            row["error"] = str(e)
        rows.append(row)
    return rows
