"""`asrkit align`: per-utterance CTC alignments from a trained model: .npz, CTM, Praat TextGrid and a heatmap .png."""

from __future__ import annotations

from pathlib import Path

from asrkit.align.core import extend_with_blanks, save_alignment
from asrkit.align.utt import UttAlignment, align_utterance, encode_transcript
from asrkit.data.inputs import InputItem, collect_inputs
from asrkit.errors import InputError
from asrkit.fsutil import atomic_write_text
from asrkit.progress import Progress


def utterance_spans(ua: UttAlignment, tok) -> tuple[list, list | None]:
    """(token spans, word spans or None) in seconds; words exist for models with a space token."""
    from asrkit.align.timing import spans_from_frames

    labels = [tok.label(i) for i in range(len(tok))]
    space = tok.index.get(" ") if getattr(tok, "kind", "") == "char" else None
    toks, words = spans_from_frames(ua.log_probs, ua.tokens, ua.token_frames(), labels, ua.frame_shift, space)
    return toks, (words if space is not None else None)


def write_utterance(out: Path, ua: UttAlignment, tok, plots: bool = True) -> list[str]:
    """Write <id>.npz, <id>.ctm, <id>.TextGrid (and <id>.png) for a feasible alignment; return its CTM lines."""
    from asrkit.align.textgrid import write_textgrid
    from asrkit.align.timing import ctm_lines

    states, _ = extend_with_blanks(ua.tokens, tok.blank)
    (out / ua.id).parent.mkdir(parents=True, exist_ok=True)  # an id from a path (one/x, seven/x) keeps its folders
    save_alignment(out / f"{ua.id}.npz", ua.posteriors, states, ua.path, ua.frame_shift, ua.loglik)
    toks, words = utterance_spans(ua, tok)
    lines = ctm_lines(ua.id, words if words is not None else toks)
    atomic_write_text(out / f"{ua.id}.ctm", "".join(line + "\n" for line in lines))
    write_textgrid(out / f"{ua.id}.TextGrid", ua.n_frames * ua.frame_shift, toks, words)
    if plots:
        from asrkit.align.plots import plot_utterance

        plot_utterance(out / f"{ua.id}.png", ua)
    return lines


def align(
    model: str | Path,
    inputs: list[str | Path],
    out_dir: str | Path,
    text: str | None = None,
    plots: bool = True,
    limit: int | None = None,
    quiet: bool = False,
) -> list[dict]:
    """Align a manifest with transcripts, or audio files with `text`; per utterance <id>.npz/.ctm/.TextGrid/.png, plus all.ctm."""
    from asrkit.models.runtime import load_acoustic_model

    am = load_acoustic_model(model)
    if am.task != "ctc":
        raise InputError(f"{model} is a {am.task} model; CTC alignments need a model with the ctc head")
    tok = am.tokenizer
    items: list[InputItem] = collect_inputs(inputs)
    if text is not None:
        for it in items:
            it.text = text
    missing = [it.id for it in items if it.text is None]
    if missing:
        more = " and others" if len(missing) > 1 else ""
        raise InputError(f"no transcript for {missing[0]!r}{more}: give a manifest with text or --text")
    if limit is not None:
        items = items[:limit]
    # every transcript is checked before any work: an unknown token is one line naming it
    targets = {it.id: encode_transcript(tok, it.text or "", it.id) for it in items}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary: list[dict] = []
    ctm: list[str] = []
    with Progress(quiet) as prog:
        task = prog.add("align", total=len(items), unit="utt")
        for it in items:
            norm, tokens = targets[it.id]
            ua = align_utterance(am, it.id, tokens, am.item_features(it.audio, it.features), norm)
            row = {"id": it.id, "frames": ua.n_frames, "states": 2 * len(tokens) + 1, "loglik": ua.loglik}
            if not ua.feasible:
                prog.log(f"skipped {it.id}: {ua.n_frames} frames cannot hold its {len(tokens)} labels")
                row["loglik"] = float("-inf")
            else:
                ctm += write_utterance(out, ua, tok, plots)
            summary.append(row)
            prog.advance(task)
    atomic_write_text(out / "all.ctm", "".join(line + "\n" for line in ctm))
    return summary
