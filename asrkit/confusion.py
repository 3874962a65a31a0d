"""Confusion matrices of label tasks (one label per utterance): counts and a PNG picture.

>>> confusion_matrix({"a": "yes", "b": "no"}, {"a": "yes", "b": "yes"}, ["no", "yes"]).tolist()
[[0, 1], [0, 1]]
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from asrkit.errors import InputError
from asrkit.fsutil import atomic_save_png

MAX_LABELS = 200  # beyond this the references are transcripts, not class labels


def labels_of(refs: dict[str, str], hyps: dict[str, str]) -> list[str]:
    """The sorted labels met in the references and in the hypotheses of the referenced ids."""
    return sorted(set(refs.values()) | {hyps[k] for k in refs if k in hyps})


def confusion_matrix(refs: dict[str, str], hyps: dict[str, str], labels: Sequence[str]) -> np.ndarray:
    """Counts (len(labels) × len(labels)): row = reference label, column = hypothesis; ids without a hypothesis are left out."""
    index = {lab: i for i, lab in enumerate(labels)}
    m = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for uid, ref in refs.items():
        if uid not in hyps:
            continue
        for lab in (ref, hyps[uid]):
            if lab not in index:
                raise InputError(f"utterance {uid!r}: label {lab!r} is not one of the {len(labels)} labels of the confusion matrix")
        m[index[ref], index[hyps[uid]]] += 1
    return m


def plot_confusion(matrix: np.ndarray, labels: Sequence[str], path: str | Path, title: str = "") -> None:
    """A PNG of the row-normalised matrix (share of each reference class), with the counts written in the cells."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] != len(labels):
        raise ValueError(f"a {len(labels)}-label confusion matrix must be {len(labels)} × {len(labels)}, got {m.shape}")
    rows = m.sum(1, keepdims=True)
    share = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
    k = len(labels)
    side = min(max(4.0, 0.38 * k + 2.0), 24.0)
    fig = Figure(figsize=(side + 1.2, side), dpi=100)
    FigureCanvasAgg(fig)  # Agg canvas without touching pyplot's global state
    ax = fig.subplots()
    im = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    fig.colorbar(im, ax=ax, label="share of the reference class", fraction=0.046, pad=0.04)
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    ax.set_xticklabels(labels, rotation=90, fontsize=8)
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_xlabel("hypothesis")
    ax.set_ylabel("reference")
    if k <= 40:
        for i in range(k):
            for j in range(k):
                if m[i, j]:
                    ax.text(j, i, str(int(m[i, j])), ha="center", va="center", fontsize=7, color="white" if share[i, j] > 0.5 else "black")
    total = m.sum()
    acc = np.trace(m) / total if total else 0.0
    ax.set_title(title or f"accuracy {acc:.2%} ({int(np.trace(m))}/{int(total)})")
    fig.tight_layout()

    try:
        atomic_save_png(fig, path)
    finally:
        fig.clear()


def write_confusion(refs: dict[str, str], hyps: dict[str, str], path: str | Path) -> tuple[np.ndarray, list[str]]:
    """Compute the confusion matrix of a label task and save its picture at `path`; returns (matrix, labels)."""
    labels = labels_of(refs, hyps)
    if len(labels) > MAX_LABELS:
        raise InputError(f"--confusion is for label tasks: the references and hypotheses hold {len(labels)} distinct texts")
    if not str(path).lower().endswith(".png"):
        raise InputError(f"--confusion {path}: the picture is written as PNG; give a path ending in .png")
    m = confusion_matrix(refs, hyps, labels)
    plot_confusion(m, labels, path)
    return m, labels
