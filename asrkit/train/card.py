"""MODEL_CARD.md: what a run trained, on what, how long, what it measured, and how to reproduce it.

Written by `train` beside the checkpoints (icefall's RESULTS.md habit): the recipe, the data (utterances
and hours per split), the model and its parameter count, the training time and machine, the per-epoch
dev results, and the exact commands, including the resolved recipe (config.yaml) that reproduces the run.
"""

from __future__ import annotations

import json
import platform
import shlex
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

from asrkit.config import Recipe
from asrkit.fsutil import atomic_write_text
from asrkit.train.report import read_metrics
from asrkit.version import __version__


def _git_commit() -> str | None:
    """The asrkit checkout's commit (with -dirty for local changes), when it is a git checkout."""
    root = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "describe", "--always", "--dirty"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _data_rows(data_dir: Path) -> list[tuple[str, int, float]]:
    """(split, utterances, hours) for each prepared manifest."""
    rows = []
    for m in sorted(data_dir.glob("*.jsonl")):
        n, secs = 0, 0.0
        for line in m.read_text(encoding="utf-8").splitlines():
            if line.strip():
                n += 1
                secs += float(json.loads(line).get("duration", 0.0))
        rows.append((m.stem, n, secs / 3600))
    return rows


def _pct(x: float | None) -> str:
    return "" if x is None else f"{100 * x:.2f} %"


def model_card(
    recipe: Recipe,
    exp: Path,
    n_params: int,
    device: str,
    metric: str,
    higher_is_better: bool,
    world: int = 1,
    command: list[str] | None = None,
) -> str:
    """The card's Markdown for the run in `exp` (its metrics.jsonl and config.yaml)."""
    rows = read_metrics(exp)
    m, t = recipe.model, recipe.train
    lines = [f"# Model card: {recipe.name}", ""]
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")

    commit = _git_commit()
    lines += [
        f"Trained with asrkit {__version__}" + (f" (commit {commit})" if commit else "") + f", written {when}.",
        "",
    ]
    lines += ["## Model", ""]
    lines += [
        f"- Zoo entry `{m.name}`, head `{m.head}`, front-end `{m.frontend}` (subsampling {m.subsample}), "
        f"{m.layers} × {m.hidden} hidden, dropout {m.dropout}"
        + (f", projection {m.projection}" if m.projection else "")
        + "."
    ]
    lines += [
        f"- **{n_params:,} parameters.**",
        f"- Features: {recipe.features.type}, {recipe.features.n_mels} dims, "
        f"{recipe.features.hop_ms:g} ms hop, CMVN {recipe.features.cmvn}"
        + (", SpecAugment" if recipe.features.specaugment else "")
        + ".",
    ]
    lines += [
        "",
        "## Data",
        "",
        f"Corpus `{recipe.data.corpus}`, prepared in `{recipe.data_dir}`.",
        "",
        "| split | utterances | hours |",
        "|---|---:|---:|",
    ]
    lines += [f"| {s} | {n:,} | {h:.2f} |" for s, n, h in _data_rows(recipe.data_dir)]
    total = sum(r["seconds"] for r in rows)
    lines += ["", "## Training", ""]
    lines += [
        f"- {t.optimizer} (lr {t.lr:g}, weight decay {t.weight_decay:g}), schedule {t.schedule}, batches of ≤ {t.batch_seconds:g} s of audio, "
        f"{len(rows)} of {t.epochs} epochs run, seed {t.seed}, precision {t.precision}."
    ]
    lines += [
        f"- **Training time {total / 60:.1f} min** on {device}"
        + (f" × {world} processes" if world > 1 else "")
        + f" ({platform.machine()}, Python {platform.python_version()})."
    ]
    lines += _results_table(rows, metric, higher_is_better)
    lines += _reproduce(recipe, exp, command)
    return "\n".join(lines)


def _results_table(rows: list[dict], metric: str, higher_is_better: bool) -> list[str]:
    """The dev results per epoch as a Markdown table, the best epoch in bold (nothing without epochs)."""
    lines: list[str] = []
    if rows:
        pick = max if higher_is_better else min
        ranked = all(f"dev_{metric}" in r for r in rows)
        best = pick(rows, key=lambda r: r[f"dev_{metric}"]) if ranked else None
        cols = [k for k in ("wer", "cer", "accuracy") if f"dev_{k}" in rows[0]]
        title = f"best by dev {metric}: epoch {best['epoch']}" if best else "no epoch ranked"
        lines += ["", f"## Results (dev set, per epoch; {title})", ""]
        head = [
            "epoch",
            "train loss",
            "dev loss",
            *(f"dev {k.upper() if k != 'accuracy' else k}" for k in cols),
            "seconds",
        ]
        lines += ["| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
        for r in rows:
            mark = "**" if r is best else ""
            cells = [
                f"{mark}{r['epoch']}{mark}",
                f"{r['train_loss']:.3f}",
                f"{r['dev_loss']:.3f}",
                *(_pct(r.get(f"dev_{k}")) for k in cols),
                f"{r['seconds']:.0f}",
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def _reproduce(recipe: Recipe, exp: Path, command: list[str] | None) -> list[str]:
    """The command the run was started with and the commands that repeat it from a fresh checkout."""
    lines: list[str] = []
    cmd = " ".join(shlex.quote(a) for a in command) if command else f"asrkit train {exp / 'config.yaml'}"
    lines += [
        "",
        "## Reproduce",
        "",
        "The run was started with:",
        "",
        "```",
        cmd,
        "```",
        "",
        f"`{exp / 'config.yaml'}` is the resolved recipe (every default and `--set` applied); from a fresh checkout:",
        "",
        "```",
        f"asrkit prepare {exp / 'config.yaml'}",
        f"asrkit train {exp / 'config.yaml'}",
        f"asrkit decode --model {exp / 'best.pt'} --output hyp.txt {recipe.data_dir / 'test.jsonl'}",
        f"asrkit score --ref {recipe.data_dir / 'test.jsonl'} --hyp hyp.txt",
        "```",
        "",
    ]
    lines += [
        "Test-set results are not measured by training: the commands above (or the recipe's `make` target) give them.",
        "",
    ]
    return lines


def write_model_card(
    recipe: Recipe, exp: Path, n_params: int, device: str, metric: str, higher_is_better: bool, world: int = 1
) -> Path:
    """Write exp/MODEL_CARD.md (atomically); the command is this process's own when it runs `asrkit train`."""
    argv = sys.argv
    command = (
        ["asrkit", *argv[1:]] if argv and Path(argv[0]).name in ("asrkit", "__main__.py") and "train" in argv else None
    )
    path = exp / "MODEL_CARD.md"
    atomic_write_text(path, model_card(recipe, exp, n_params, device, metric, higher_is_better, world, command))
    return path
