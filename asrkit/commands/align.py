"""`asrkit align`: per-utterance CTC alignments from a trained model (.npz, CTM, Praat TextGrid and a heatmap .png),
or several checkpoints compared (a statistics table per model and one figure)."""

from __future__ import annotations

import sys
from pathlib import Path

from rich.console import Console

from asrkit.align.compare import compare as compare_models
from asrkit.align.compare import stats_table
from asrkit.align.core import extend_with_blanks, save_alignment
from asrkit.align.plots import plot_utterance
from asrkit.align.textgrid import write_textgrid
from asrkit.align.timing import ctm_lines, spans_from_frames
from asrkit.align.utt import UttAlignment, align_utterance, encode_transcript
from asrkit.data.inputs import InputItem, collect_inputs
from asrkit.errors import InputError
from asrkit.fsutil import atomic_write_text
from asrkit.models.runtime import load_acoustic_model
from asrkit.progress import Progress


def utterance_spans(ua: UttAlignment, tok) -> tuple[list, list | None]:
    """(token spans, word spans or None) in seconds; words exist for models with a space token."""
    labels = [tok.label(i) for i in range(len(tok))]
    space = tok.space
    toks, words = spans_from_frames(ua.log_probs, ua.tokens, ua.token_frames(), labels, ua.frame_shift, space)
    return toks, (words if space is not None else None)


def write_utterance(out: Path, ua: UttAlignment, tok, plots: bool = True) -> list[str]:
    """Write <id>.npz, <id>.ctm, <id>.TextGrid (and <id>.png) for a feasible alignment; return its CTM lines."""
    states, _ = extend_with_blanks(ua.tokens, tok.blank)
    (out / ua.id).parent.mkdir(parents=True, exist_ok=True)  # an id from a path (one/x, seven/x) keeps its folders
    save_alignment(out / f"{ua.id}.npz", ua.posteriors, states, ua.path, ua.frame_shift, ua.loglik)
    toks, words = utterance_spans(ua, tok)
    lines = ctm_lines(ua.id, words if words is not None else toks)
    atomic_write_text(out / f"{ua.id}.ctm", "".join(line + "\n" for line in lines))
    write_textgrid(out / f"{ua.id}.TextGrid", ua.n_frames * ua.frame_shift, toks, words)
    if plots:
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


def align_command(
    inputs: list[str],
    models: list[str | Path],
    out: Path,
    text: str | None = None,
    limit: int | None = None,
    plots: bool = True,
    compare: bool = False,
    utt: str | None = None,
    names: list[str] | None = None,
    quiet: bool = False,
) -> None:
    """`asrkit align`: with `compare`, checkpoints among `inputs` join `models`; says what it wrote on stderr."""
    ckpts = [str(m) for m in models]
    rest = list(inputs)
    if compare:
        ckpts += [a for a in rest if a.endswith(".pt")]
        rest = [a for a in rest if not a.endswith(".pt")]
    elif any(a.endswith(".pt") for a in rest):
        raise InputError("a checkpoint among the inputs: give it with --model, or compare checkpoints with --compare")
    if not ckpts:
        raise InputError("no checkpoint: give --model (or checkpoints with --compare)")
    if not rest:
        raise InputError("no inputs: give a manifest with transcripts, or audio files with --text")
    if compare:
        res = compare_models(ckpts, rest, out, utt=utt, limit=limit, text=text, names=names or None, quiet=quiet)
        console = Console() if sys.stdout.isatty() else Console(width=160)  # a pipe or file gets the whole table
        console.print(stats_table(res["rows"], title=f"alignment statistics (delays against {res['rows'][0]['name']})"))
        print(f"wrote compare.png, compare.json, compare.csv into {out} (figure: {res['utterance']})", file=sys.stderr)
        return
    if len(ckpts) > 1:
        raise InputError(f"{len(ckpts)} checkpoints: align with one, or compare them with --compare")
    if utt is not None or names:
        raise InputError("--utt and --name go with --compare")
    rows = align(ckpts[0], rest, out, text=text, plots=plots, limit=limit, quiet=quiet)
    print(
        f"aligned {sum(r['loglik'] > float('-inf') for r in rows)} of {len(rows)} utterances into {out}",
        file=sys.stderr,
    )
