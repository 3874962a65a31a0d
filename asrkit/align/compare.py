"""Compare the alignments of several CTC checkpoints over one manifest: statistics per model and a side-by-side figure.

Statistics, pooled over the frames (or tokens) of every utterance a model can align:
- blank_fraction: share of frames whose Viterbi state is a blank.
- peakiness: mean over frames whose Viterbi state is a token of max_s gamma(t, s), the largest state posterior.
- state_entropy: mean per-frame entropy (nats) of the state posteriors gamma(t, .) over the 2L+1 extended states.
- output_entropy: mean per-frame entropy (nats) of the model's output distribution over the vocabulary.
- delay_s / abs_delay_s: mean (signed / absolute) start-time difference in seconds of each token against the same
  token on the first model's Viterbi path (positive = later than the reference); frames become seconds through each
  model's own frame shift, so models with different frame shifts compare fairly.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.table import Table

from asrkit.align.plots import plot_comparison
from asrkit.align.utt import UttAlignment, align_utterance, encode_transcript
from asrkit.data.inputs import collect_inputs
from asrkit.errors import InputError
from asrkit.fsutil import atomic_write_text
from asrkit.models.runtime import load_acoustic_model
from asrkit.progress import Progress

COLUMNS = (
    "name",
    "checkpoint",
    "frame_shift",
    "utterances",
    "skipped",
    "frames",
    "blank_fraction",
    "peakiness",
    "state_entropy",
    "output_entropy",
    "delay_s",
    "abs_delay_s",
    "delay_tokens",
)


def _entropy(p: np.ndarray) -> np.ndarray:
    """Entropy (nats) of each row of a probability matrix, with 0 log 0 = 0."""
    p = np.asarray(p, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, -p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    return terms.sum(axis=1)


@dataclass
class AlignmentStats:
    """Running sums of the comparison statistics for one model."""

    utterances: int = 0
    skipped: int = 0
    frames: int = 0
    blank_frames: int = 0
    token_frames: int = 0
    peak_sum: float = 0.0
    entropy_sum: float = 0.0
    out_entropy_sum: float = 0.0
    out_frames: int = 0
    delay_sum: float = 0.0
    abs_delay_sum: float = 0.0
    delay_tokens: int = 0

    def add(self, ua: UttAlignment, ref_starts: np.ndarray | None = None) -> None:
        """Add one utterance; `ref_starts` are the reference model's token start times (seconds) for it."""
        if not ua.feasible:
            self.skipped += 1
            return
        path = np.asarray(ua.path)
        post = np.asarray(ua.posteriors, dtype=np.float64)
        blank = path % 2 == 0
        self.utterances += 1
        self.frames += path.size
        self.blank_frames += int(blank.sum())
        self.token_frames += int((~blank).sum())
        self.peak_sum += float(post[~blank].max(axis=1).sum()) if (~blank).any() else 0.0
        self.entropy_sum += float(_entropy(post).sum())
        if ua.log_probs is not None:
            self.out_entropy_sum += float(_entropy(ua.log_probs.double().exp().numpy()).sum())
            self.out_frames += int(ua.log_probs.shape[0])
        if ref_starts is not None and len(ref_starts) == len(ua.tokens) and len(ref_starts) > 0:
            d = ua.token_starts() - np.asarray(ref_starts, dtype=np.float64)
            self.delay_sum += float(d.sum())
            self.abs_delay_sum += float(np.abs(d).sum())
            self.delay_tokens += int(d.size)

    def summary(self) -> dict:
        """The statistics as a dict (None where nothing was counted)."""

        def div(a: float, b: int) -> float | None:
            return a / b if b else None

        return {
            "utterances": self.utterances,
            "skipped": self.skipped,
            "frames": self.frames,
            "blank_fraction": div(self.blank_frames, self.frames),
            "peakiness": div(self.peak_sum, self.token_frames),
            "state_entropy": div(self.entropy_sum, self.frames),
            "output_entropy": div(self.out_entropy_sum, self.out_frames),
            "delay_s": div(self.delay_sum, self.delay_tokens),
            "abs_delay_s": div(self.abs_delay_sum, self.delay_tokens),
            "delay_tokens": self.delay_tokens,
        }


def alignment_stats(alignments: Sequence[UttAlignment], reference: Sequence[UttAlignment] | None = None) -> dict:
    """Statistics of one model's alignments; delays against `reference` (matched by utterance id) when given."""
    ref = {r.id: r.token_starts() for r in reference or () if r.feasible}
    acc = AlignmentStats()
    for ua in alignments:
        acc.add(ua, ref.get(ua.id) if reference is not None else None)
    return acc.summary()


def model_names(models: Sequence[str | Path]) -> list[str]:
    """Short unique names: the checkpoint's stem, or its folder's name for best.pt / last.pt."""
    names = []
    for m in models:
        p = Path(m)
        base = p.parent.name if p.stem in ("best", "last") and p.parent.name else p.stem
        name, k = base, 2
        while name in names:
            name, k = f"{base}-{k}", k + 1
        names.append(name)
    return names


def compare(
    models: Sequence[str | Path],
    inputs: Sequence[str | Path],
    out_dir: str | Path | None = None,
    utt: str | None = None,
    limit: int | None = None,
    text: str | None = None,
    names: Sequence[str] | None = None,
    quiet: bool = True,
) -> dict:
    """Align `inputs` with every model; return {"utterance", "rows", "definitions"}; write compare.{png,json,csv} to out_dir."""
    if len(models) < 1:
        raise InputError("--compare needs at least one checkpoint")
    names = list(names) if names is not None else model_names(models)
    if len(names) != len(models):
        raise InputError(f"{len(names)} names for {len(models)} checkpoints: give one --name per checkpoint")
    items = collect_inputs(list(inputs))
    if text is not None:
        for it in items:
            it.text = text
    missing = [it.id for it in items if it.text is None]
    if missing:
        raise InputError(f"no transcript for {missing[0]!r}: give a manifest with text or --text")
    every = [it.id for it in items]
    if limit is not None:
        items = items[:limit]
    if not items:
        raise InputError("no utterances to align")
    ids = [it.id for it in items]
    if utt is not None and utt not in ids:
        if utt in every:
            raise InputError(
                f"utterance {utt!r} is input number {every.index(utt) + 1}, beyond --limit {limit}: raise the limit"
            )
        raise InputError(f"utterance {utt!r} is not among the inputs")
    shown = utt or ids[0]

    ams = []
    for m in models:
        am = load_acoustic_model(m)
        if am.task != "ctc":
            raise InputError(f"{m} is a {am.task} model; CTC alignments need a model with the ctc head")
        ams.append(am)
    # every transcript must be known to every model before any work starts
    targets = [{it.id: encode_transcript(am.tokenizer, it.text or "", it.id) for it in items} for am in ams]

    rows: list[dict] = []
    panels: list[tuple[str, UttAlignment]] = []
    ref_starts: dict[str, np.ndarray] = {}
    with Progress(quiet) as prog:
        for k, (name, path, am) in enumerate(zip(names, models, ams)):
            task = prog.add(f"align {name}", total=len(items), unit="utt")
            acc = AlignmentStats()
            for it in items:
                norm, tokens = targets[k][it.id]
                ua = align_utterance(am, it.id, tokens, am.item_features(it.audio, it.features), norm)
                if k == 0 and ua.feasible:
                    ref_starts[it.id] = ua.token_starts()
                acc.add(ua, ref_starts.get(it.id))
                if it.id == shown:
                    panels.append((name, ua))
                prog.advance(task)
            rows.append({"name": name, "checkpoint": str(path), "frame_shift": am.frame_shift, **acc.summary()})
    result = {"utterance": shown, "rows": rows, "definitions": definitions()}
    if out_dir is not None:
        write_outputs(Path(out_dir), result, panels)
    return result


def definitions() -> dict[str, str]:
    """One line per statistic, as written into compare.json."""
    return {
        "blank_fraction": "share of frames whose Viterbi state is blank",
        "peakiness": "mean over frames whose Viterbi state is a token of the largest state posterior max_s gamma(t,s)",
        "state_entropy": "mean per-frame entropy (nats) of the state posteriors gamma(t,.)",
        "output_entropy": "mean per-frame entropy (nats) of the model's output distribution over the vocabulary",
        "delay_s": "mean start time of each token minus its start on the first model's Viterbi path (seconds)",
        "abs_delay_s": "mean absolute value of that difference (seconds)",
    }


def _panel_title(row: dict) -> str:
    def f(x: float | None, spec: str) -> str:
        return "-" if x is None else format(x, spec)

    delay = "-" if row["delay_s"] is None else f"{1000 * row['delay_s']:+.0f} ms"
    return (
        f"{row['name']}: blank {f(row['blank_fraction'], '.0%')}, peakiness {f(row['peakiness'], '.2f')}, "
        f"state entropy {f(row['state_entropy'], '.3f')} nats, delay {delay}"
    )


def csv_text(rows: Sequence[dict]) -> str:
    """The rows as CSV with the COLUMNS header."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({c: ("" if r.get(c) is None else r.get(c)) for c in COLUMNS})
    return buf.getvalue()


def write_outputs(out: Path, result: dict, panels: Sequence[tuple[str, UttAlignment]]) -> None:
    """compare.json, compare.csv and compare.png (one panel per model for the chosen utterance) in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "compare.json", json.dumps(result, indent=2) + "\n")
    atomic_write_text(out / "compare.csv", csv_text(result["rows"]))
    by_name = {r["name"]: r for r in result["rows"]}
    titled = [(_panel_title(by_name[name]), ua) for name, ua in panels]
    text = panels[0][1].text if panels else ""
    plot_comparison(out / "compare.png", titled, title=f"{result['utterance']}: {text}")


def stats_table(rows: Sequence[dict], title: str = "alignment statistics"):
    """A rich Table of the rows."""
    t = Table(title=title)
    cols = [
        ("model", "name", None),
        ("shift ms", "frame_shift", lambda x: f"{1000 * x:.0f}"),
        ("utts", "utterances", str),
        ("blank", "blank_fraction", lambda x: f"{x:.1%}"),
        ("peakiness", "peakiness", lambda x: f"{x:.3f}"),
        ("H(γ) nats", "state_entropy", lambda x: f"{x:.3f}"),
        ("H(out) nats", "output_entropy", lambda x: f"{x:.3f}"),
        ("delay ms", "delay_s", lambda x: f"{1000 * x:+.1f}"),
        ("|delay| ms", "abs_delay_s", lambda x: f"{1000 * x:.1f}"),
    ]
    for head, _, _ in cols:
        t.add_column(head, justify="left" if head == "model" else "right")
    for r in rows:
        t.add_row(*[str(r[k]) if fmt is None else ("-" if r.get(k) is None else fmt(r[k])) for _, k, fmt in cols])
    return t
