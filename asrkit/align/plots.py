"""Alignment pictures (matplotlib Agg): per-utterance posterior heatmaps and a side-by-side model comparison."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from asrkit.align.utt import UttAlignment
from asrkit.errors import InputError
from asrkit.fsutil import atomic_save_png

FLOOR = 1e-6  # the log-scale panels clip posteriors here
SPACE = "␣"  # how the tokenizers print the word-boundary token
# at tick size "␣" reads as "u" and "|" as "l"; two letters in grey cannot pass for one letter of the transcript
SPACE_TICKS = ("sp", "<sp>", "<space>")
SPACE_COLOR = "0.45"


def space_tick(labels: Sequence[str]) -> str:
    """The tick label of the space token: the first of SPACE_TICKS that no other token of `labels` uses."""
    return next((t for t in SPACE_TICKS if t not in labels), "<space token>")


def tick_labels(labels: Sequence[str]) -> list[str]:
    """Token labels as the plots print them: the space token as `space_tick`, the others as they are."""
    sp = space_tick(labels)
    return [sp if lab == SPACE else lab for lab in labels]


def _figure(width: float, height: float):
    """A matplotlib Figure on an Agg canvas, without touching pyplot's global state."""
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: str | Path, dpi: int = 100) -> None:
    """Save atomically and free the figure."""
    try:
        atomic_save_png(fig, path, dpi=dpi)
    finally:
        fig.clear()


def draw_alignment(ax, ua: UttAlignment, log: bool = False, colorbar: bool = True):
    """Draw gamma (states x seconds) on `ax`, linear or log colour scale, the Viterbi path in red, token labels on y."""
    post = np.asarray(ua.posteriors, dtype=np.float64)
    n_frames, n_states = post.shape
    extent = (0.0, n_frames * ua.frame_shift, -0.5, n_states - 0.5)
    if log:
        data, scale, name = np.clip(post, FLOOR, 1.0), {"norm": LogNorm(vmin=FLOOR, vmax=1.0)}, "posterior (log)"
    else:
        data, scale, name = post, {"vmin": 0.0, "vmax": 1.0}, "posterior"
    im = ax.imshow(data.T, origin="lower", aspect="auto", interpolation="nearest", extent=extent, cmap="magma", **scale)
    if colorbar:
        ax.figure.colorbar(im, ax=ax, label=name, pad=0.01)
    # token states (odd) get their labels; blank states (even) are minor ticks
    step = max(1, int(np.ceil((n_states // 2) / 40)))
    major = np.arange(1, n_states, 2)[::step]
    ax.set_yticks(major)
    labels = tick_labels(ua.state_labels)
    ticks = ax.set_yticklabels([labels[i] for i in major], fontsize=7)
    for i, tick in zip(major, ticks):
        if ua.state_labels[i] == SPACE:
            tick.set_color(SPACE_COLOR)
    ax.set_yticks(np.arange(0, n_states, 2), minor=True)
    ax.set_ylabel("state (token; blanks between)")
    if ua.path is not None:
        t = (np.arange(ua.path.size) + 0.5) * ua.frame_shift
        ax.plot(t, ua.path, color="#00e5ff", lw=0.8, alpha=0.85, drawstyle="steps-mid", label="Viterbi path")
    return im


def plot_utterance(path: str | Path, ua: UttAlignment, title: str = "") -> None:
    """PNG of one utterance: gamma on a linear and a log scale (two panels), the Viterbi path, time in seconds."""
    n_frames, n_states = ua.posteriors.shape
    width = min(max(7.0, 0.025 * n_frames), 18.0)
    panel_h = min(max(2.2, 0.12 * n_states), 7.0)
    fig = _figure(width, 2 * panel_h + 1.0)
    axes = fig.subplots(2, 1, sharex=True)
    draw_alignment(axes[0], ua, log=False)
    draw_alignment(axes[1], ua, log=True)
    axes[0].set_title(title or f"{ua.id}: {ua.text}", fontsize=10)
    axes[1].set_xlabel("time (s)")
    fig.tight_layout()
    _save(fig, path)


def plot_comparison(
    path: str | Path, panels: Sequence[tuple[str, UttAlignment]], title: str = "", log: bool = True
) -> None:
    """PNG with one gamma panel per model for the same utterance, stacked on a shared time axis in seconds."""
    if not panels:
        raise InputError("nothing to plot")
    dur = max(ua.n_frames * ua.frame_shift for _, ua in panels)
    n_states = max(ua.posteriors.shape[1] for _, ua in panels)
    width = min(max(7.0, 2.5 * dur), 14.0)
    panel_h = min(max(1.8, 0.1 * n_states), 4.0)
    fig = _figure(width, panel_h * len(panels) + 0.8)
    axes = np.atleast_1d(fig.subplots(len(panels), 1, sharex=True))
    for ax, (name, ua) in zip(axes, panels):
        draw_alignment(ax, ua, log=log)
        ax.set_title(name, fontsize=9, loc="left")
        ax.set_ylabel("")
    axes[-1].set_xlabel("time (s)")
    axes[-1].set_xlim(0.0, dur)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    _save(fig, path)
