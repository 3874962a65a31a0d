"""`asrkit align`: per-utterance CTC soft alignments (.npz) and heatmaps (.png) from a trained model."""

from __future__ import annotations

from pathlib import Path

from asrkit.align.core import best_state_path, ctc_posteriors, extend_with_blanks, plot_alignment, save_alignment
from asrkit.data.inputs import InputItem, collect_inputs
from asrkit.errors import InputError
from asrkit.progress import Progress


def align(
    model: str | Path,
    inputs: list[str | Path],
    out_dir: str | Path,
    text: str | None = None,
    plots: bool = True,
    limit: int | None = None,
    quiet: bool = False,
) -> list[dict]:
    """Align a manifest with transcripts, or audio files with `text`; writes <id>.npz and <id>.png per utterance."""
    from asrkit.audio import load_audio
    from asrkit.models.acoustic import AcousticModel
    from asrkit.text import normalize_text

    am = AcousticModel.load(model)
    if am.task != "ctc":
        raise InputError(f"{model} is a {am.task} model; CTC alignments need a model with the ctc head")
    tok = am.tokenizer
    items: list[InputItem] = collect_inputs(inputs)
    if text is not None:
        for it in items:
            it.text = text
    missing = [it.id for it in items if it.text is None]
    if missing:
        raise InputError(f"no transcript for {missing[0]!r}{' and others' if len(missing) > 1 else ''}: give a manifest with text or --text")
    if limit is not None:
        items = items[:limit]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = []
    with Progress(quiet) as prog:
        task = prog.add("align", total=len(items), unit="utt")
        for it in items:
            norm = normalize_text(it.text or "")
            unknown = sorted({c for c in norm if c not in tok.index})
            if unknown:
                raise InputError(f"utterance {it.id!r}: the model does not know the token(s) {unknown}")
            targets = tok.encode(norm, it.id)
            (lp,) = am.log_probs([am.features(load_audio(it.audio, am.sample_rate))])
            loglik, post = ctc_posteriors(lp, targets, blank=tok.blank)
            states, _ = extend_with_blanks(targets, tok.blank)
            if not loglik.isfinite():
                prog.log(f"skipped {it.id}: {lp.shape[0]} frames cannot hold its {len(targets)} labels")
                summary.append({"id": it.id, "frames": lp.shape[0], "states": len(states), "loglik": float("-inf")})
                prog.advance(task)
                continue
            path = best_state_path(lp, targets, blank=tok.blank)
            save_alignment(out / f"{it.id}.npz", post, states, path, am.frame_shift, float(loglik))
            if plots:
                labels = [tok.label(int(s)) for s in states]
                plot_alignment(out / f"{it.id}.png", post, labels, path, am.frame_shift, title=f"{it.id}: {norm}")
            summary.append({"id": it.id, "frames": lp.shape[0], "states": len(states), "loglik": float(loglik)})
            prog.advance(task)
    return summary
