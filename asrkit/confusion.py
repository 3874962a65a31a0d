"""Confusion matrices of label tasks (one label per utterance): counts and a PNG picture.

Rows are the reference classes; the columns are the same classes in the same order (so the diagonal holds the
correct answers) plus one last "other" column for every hypothesis that is not a reference class (a misspelling of
open-vocabulary output, an empty transcript). Classes are ordered by `class_order`: digit words and numbers by value
(zero, one, ..., nine), then the rest alphabetically, so the layout does not depend on the order of the input files.

>>> confusion_matrix({"a": "yes", "b": "no", "c": "no"}, {"a": "yes", "b": "yes", "c": "noo"}, ["no", "yes"]).tolist()
[[0, 1, 1], [0, 1, 0]]
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from asrkit.errors import InputError
from asrkit.fsutil import atomic_save_png

MAX_LABELS = 200  # beyond this the references are transcripts, not class labels
OTHER = "other"
DIGIT_WORDS = {w: i for i, w in enumerate("zero one two three four five six seven eight nine".split())} | {"oh": 0}


def _number(label: str) -> float | None:
    """The value of a digit word or a number, else None."""
    if label in DIGIT_WORDS:
        return float(DIGIT_WORDS[label])
    try:
        value = float(label)
    except ValueError:
        return None
    return value if np.isfinite(value) else None


def class_order(labels: Iterable[str]) -> list[str]:
    """Distinct labels: digit words and numbers by value first (zero, one, ..., nine), then the rest alphabetically."""

    def key(label: str) -> tuple[int, float, str]:
        value = _number(label)
        return (1, 0.0, label) if value is None else (0, value, label)

    return sorted(set(labels), key=key)


def classes_of(refs: dict[str, str]) -> list[str]:
    """The reference classes (rows of the matrix) in `class_order`."""
    return class_order(refs.values())


def other_label(labels: Sequence[str]) -> str:
    """Name of the last column: "other", bracketed when a class is itself called "other"."""
    return OTHER if OTHER not in labels else f"({OTHER})"


def confusion_matrix(refs: dict[str, str], hyps: dict[str, str], labels: Sequence[str]) -> np.ndarray:
    """Counts (len(labels) × len(labels) + 1): row = reference class, column = hypothesis, the last column any
    hypothesis that is not one of `labels`; ids without a hypothesis are left out."""
    index = {lab: i for i, lab in enumerate(labels)}
    other = len(labels)
    m = np.zeros((len(labels), len(labels) + 1), dtype=np.int64)
    for uid, ref in refs.items():
        if uid not in hyps:
            continue
        if ref not in index:
            raise InputError(
                f"utterance {uid!r}: reference {ref!r} is not one of the {len(labels)} classes of the confusion matrix"
            )
        m[index[ref], index.get(hyps[uid], other)] += 1
    return m


def plot_confusion(matrix: np.ndarray, labels: Sequence[str], path: str | Path, title: str = "") -> None:
    """A PNG of the row-normalised matrix (share of each reference class), with the counts written in the cells."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # lazy: matplotlib would triple asrkit score's start-up
    from matplotlib.figure import Figure  # lazy: as above; only --confusion draws

    m = np.asarray(matrix, dtype=np.float64)
    k = len(labels)
    if m.shape != (k, k + 1):
        raise ValueError(f"a {k}-class confusion matrix must be {k} × {k + 1} (the classes and 'other'), got {m.shape}")
    columns = [*labels, other_label(labels)]
    rows = m.sum(1, keepdims=True)
    share = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
    side = min(max(4.0, 0.38 * k + 2.0), 24.0)
    fig = Figure(figsize=(side + 1.6, side), dpi=100)
    FigureCanvasAgg(fig)  # Agg canvas without touching pyplot's global state
    ax = fig.subplots()
    im = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    fig.colorbar(im, ax=ax, label="share of the reference class", fraction=0.046, pad=0.04)
    ax.axvline(k - 0.5, color="0.4", lw=1.0)  # sets the "other" column apart from the square of classes
    ax.set_xticks(range(k + 1))
    ax.set_yticks(range(k))
    ax.set_xticklabels(columns, rotation=90, fontsize=8)
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_xlabel("hypothesis")
    ax.set_ylabel("reference")
    if k <= 40:
        for i in range(k):
            for j in range(k + 1):
                if m[i, j]:
                    ax.text(
                        j,
                        i,
                        str(int(m[i, j])),
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="white" if share[i, j] > 0.5 else "black",
                    )
    total = m.sum()
    right = np.trace(m[:, :k])
    acc = right / total if total else 0.0
    ax.set_title(title or f"accuracy {acc:.2%} ({int(right)}/{int(total)})")
    fig.tight_layout()

    try:
        atomic_save_png(fig, path)
    finally:
        fig.clear()


def write_confusion(refs: dict[str, str], hyps: dict[str, str], path: str | Path) -> tuple[np.ndarray, list[str]]:
    """Compute the confusion matrix of a label task and save its picture at `path`; returns (matrix, classes), the
    columns being the classes and then "other"."""
    labels = classes_of(refs)
    if len(labels) > MAX_LABELS:
        raise InputError(f"--confusion is for label tasks: the references hold {len(labels)} distinct texts")
    if not str(path).lower().endswith(".png"):
        raise InputError(f"--confusion {path}: the picture is written as PNG; give a path ending in .png")
    m = confusion_matrix(refs, hyps, labels)
    plot_confusion(m, labels, path)
    return m, labels
