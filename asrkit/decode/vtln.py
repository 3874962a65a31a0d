"""Test-time vocal-tract-length normalisation: read each input under a few frequency warps, keep the surest.

A voice the model never heard often has its formants where the training voices did not. Each input is warped
(the same piecewise-linear mel-axis warp as training's VTLP, `asrkit.features.VTLP`) by each factor in turn, and
the warp whose best path (the frame-wise arg-max, CTC's greedy path) is most probable is kept: the maximum-
likelihood choice of classic VTLN, made per input and without a transcript. It costs one pass of the acoustic
model per factor.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from asrkit.errors import InputError
from asrkit.features import VTLP

VTLN_FACTORS = (0.85, 0.9, 0.95, 1.0, 1.05, 1.1, 1.15)


def check_warpable(feature_settings: dict) -> None:
    """One-line refusal for a model whose features are not log-mel bands."""
    if feature_settings.get("type", "logmel") != "logmel":
        raise InputError("--vtln warps log-mel bands; this model reads precomputed features")


def warpers(feature_settings: dict, factors: Sequence[float] = VTLN_FACTORS) -> list[tuple[float, torch.Tensor]]:
    """(factor, (n_mels, n_mels) matrix) per factor, for a log-mel model's feature settings."""
    check_warpable(feature_settings)
    s = feature_settings
    v = VTLP(
        min(factors),
        max(factors),
        int(s["n_mels"]),
        int(s["sample_rate"]),
        float(s.get("f_min") or 0.0),
        s.get("f_max"),
    )
    return list(zip(map(float, factors), v.matrices(torch.tensor([float(a) for a in factors]))))


def best_path_score(log_probs: torch.Tensor) -> float:
    """Log-probability of the frame-wise arg-max path."""
    return float(log_probs.max(-1).values.sum())


def vtln_log_probs(
    log_probs: Callable[[list[torch.Tensor]], list[torch.Tensor]],
    feats: Sequence[torch.Tensor],
    feature_settings: dict,
    factors: Sequence[float] = VTLN_FACTORS,
) -> tuple[list[torch.Tensor], list[float]]:
    """Per input, the log-probabilities under its most probable warp, and that warp's factor.

    `log_probs` maps normalised features to per-input log-probabilities (the model, chunked where long)."""
    best: list[torch.Tensor | None] = [None] * len(feats)
    score = [float("-inf")] * len(feats)
    chosen = [1.0] * len(feats)
    for a, m in warpers(feature_settings, factors):
        warped = [f @ m.T.to(f) for f in feats]
        for i, lp in enumerate(log_probs(warped)):
            s = best_path_score(lp)
            if s > score[i]:
                best[i], score[i], chosen[i] = lp, s, a
    return best, chosen  # type: ignore[return-value]
