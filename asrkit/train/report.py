"""What a run leaves to read: metrics.jsonl, curves.png and the summary table."""

from __future__ import annotations

import json
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from rich.console import Console
from rich.table import Table

from asrkit.fsutil import atomic_save_png, atomic_write_text


def read_metrics(exp: Path) -> list[dict]:
    p = exp / "metrics.jsonl"
    if not p.is_file():
        return []
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


def write_metrics(exp: Path, rows: list[dict]) -> None:
    """Rewrite metrics.jsonl from the run's history (kept in last.pt), so a restart never duplicates or loses a line."""
    atomic_write_text(exp / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in rows))


def plot_curves(exp: Path, metric: str = "wer") -> None:
    """curves.png: train/dev loss and the dev metrics per epoch."""
    rows = read_metrics(exp)
    if not rows:
        return
    ep = [r["epoch"] for r in rows]
    fig = Figure(figsize=(10, 3.5))
    FigureCanvasAgg(fig)  # Agg canvas without touching pyplot's global state
    a, b = fig.subplots(1, 2)
    a.plot(ep, [r["train_loss"] for r in rows], "o-", label="train")
    a.plot(ep, [r["dev_loss"] for r in rows], "s-", label="dev")
    a.set_xlabel("epoch")
    a.set_ylabel("loss")
    a.legend()
    names = [k for k in ("wer", "cer") if f"dev_{k}" in rows[0]] or ["accuracy"]
    for name, style in zip(names, ("o-", "s-")):
        b.plot(
            ep, [100 * r[f"dev_{name}"] for r in rows], style, label=name.upper() if name != "accuracy" else "accuracy"
        )
    b.set_xlabel("epoch")
    b.set_ylabel("dev (%)")
    b.legend()
    fig.tight_layout()
    atomic_save_png(fig, exp / "curves.png")


def print_summary(exp: Path, metric: str = "wer", higher_is_better: bool = False, note: str = "") -> None:
    """A rich table of the run: epochs, best epoch and its dev figures, time and throughput."""
    rows = read_metrics(exp)
    if not rows:
        return
    pick = max if higher_is_better else min
    best = pick(rows, key=lambda r: r[f"dev_{metric}"])
    t = Table(title=f"training summary: {exp}" + (f" ({note})" if note else ""))
    shown = [k for k in ("wer", "cer", "accuracy") if f"dev_{k}" in best and (k != "accuracy" or "dev_wer" not in best)]
    for col in (
        "epochs",
        f"best epoch (dev {metric})",
        *(f"dev {k.upper() if k != 'accuracy' else k}" for k in shown),
        "train time",
        "audio-s/s",
        "skipped batches",
    ):
        t.add_column(col)
    t.add_row(
        str(rows[-1]["epoch"]),
        str(best["epoch"]),
        *(f"{best[f'dev_{k}']:.2%}" for k in shown),
        f"{sum(r['seconds'] for r in rows):.0f} s",
        f"{rows[-1]['audio_seconds_per_second']}",
        str(sum(r.get("skipped_batches", 0) for r in rows)),
    )
    Console(stderr=True).print(t)
