"""Model zoo: build a model by name from a config dict (stored in every checkpoint)."""

from __future__ import annotations

from typing import Any

import torch

from asrkit.errors import InputError

MODELS = ("bilstm", "lstm")


def build_model(cfg: dict[str, Any]) -> torch.nn.Module:
    """Build a zoo entry from its config (name, sizes, n_feats, n_tokens)."""
    from asrkit.models.recurrent import RecurrentCTC

    name = cfg.get("name")
    if name not in MODELS:
        raise InputError(f"unknown model {name!r}; the zoo has: {', '.join(MODELS)}")
    return RecurrentCTC(
        n_feats=cfg["n_feats"],
        n_tokens=cfg["n_tokens"],
        conv_channels=cfg.get("conv_channels", 32),
        subsample=cfg.get("subsample", 2),
        hidden=cfg["hidden"],
        layers=cfg["layers"],
        dropout=cfg.get("dropout", 0.0),
        bidirectional=name.startswith("bi"),
        frontend=cfg.get("frontend", "conv"),
    )


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
