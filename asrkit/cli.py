"""The `asrkit` command: one thin function per subcommand over the library; errors become one line + exit code."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from asrkit.cli_help import install as _plain_help

_plain_help()
app = typer.Typer(
    name="asrkit",
    help="Speech recognition with recurrent CTC models: prepare → train → decode → align → score.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

Sets = Annotated[Optional[list[str]], typer.Option("--set", help="Override a recipe key, e.g. --set train.epochs=5 (repeatable).")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]
_DEBUG = {"on": False}


def _version(value: bool) -> None:
    if value:
        from asrkit.version import __version__

        typer.echo(f"asrkit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show the full traceback on errors.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")] = False,
) -> None:
    _DEBUG["on"] = debug or os.environ.get("ASRKIT_DEBUG") == "1"


@app.command()
def prepare(
    recipe: Annotated[Path, typer.Argument(help="Recipe YAML, e.g. recipes/digits.yaml.")],
    set_: Sets = None,
    download: Annotated[bool, typer.Option("--download", help="Download the corpus when data.root / $ASRKIT_DATA do not hold it.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Redo even if the data dir is up to date.")] = False,
    jobs: Annotated[Optional[int], typer.Option("--jobs", "-j", min=1, help="Processes computing features (default: the cores).")] = None,
    quiet: Quiet = False,
) -> None:
    """Corpus on disk → manifests, vocabulary, cached features (data/<recipe>/). A run that was stopped resumes where it was."""
    from asrkit.config import load_recipe
    from asrkit.data.prepare import prepare as run

    out = run(load_recipe(recipe, set_), download=download, force=force, quiet=quiet, jobs=jobs)
    typer.echo(f"prepared {out}", err=True)


@app.command()
def train(
    recipe: Annotated[Path, typer.Argument(help="Recipe YAML.")],
    set_: Sets = None,
    fresh: Annotated[bool, typer.Option("--fresh", help="Start over instead of resuming from exp/<recipe>/last.pt.")] = False,
    quiet: Quiet = False,
) -> None:
    """Train the recipe's model; resumes exactly from exp/<recipe>/last.pt. Many processes: torchrun --nproc-per-node N -m asrkit train RECIPE."""
    from asrkit.config import load_recipe
    from asrkit.train.trainer import train as run

    best = run(load_recipe(recipe, set_), quiet=quiet, fresh=fresh)
    if os.environ.get("RANK", "0") == "0":  # under torchrun only rank 0 speaks
        typer.echo(f"best checkpoint: {best}", err=True)


@app.command()
def models(
    recipe: Annotated[Optional[Path], typer.Argument(help="Recipe YAML whose sizes to use (default: the built-in defaults).")] = None,
    set_: Sets = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per zoo entry.")] = False,
) -> None:
    """List the model zoo with parameter counts for a recipe's sizes."""
    import json

    from asrkit.models.describe import describe_zoo

    rows, title = describe_zoo(recipe, set_)
    if as_json:
        for r in rows:
            typer.echo(json.dumps(r))
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title)
    for col in ("model", "parameters", "bidirectional", "streamable", "description"):
        t.add_column(col, justify="right" if col == "parameters" else "left")
    for r in rows:
        params = f"{r['parameters']:,}" if r["parameters"] is not None else r.get("error", "-")
        mark = " *" if r["selected"] else ""
        streams = "yes" if r["streamable"] else f"no ({r['stream_note']})" if r.get("stream_note") else "no"
        t.add_row(r["name"] + mark, params, "yes" if r["bidirectional"] else "no", streams, r["description"])
    Console().print(t)


@app.command()
def average(
    checkpoints: Annotated[list[Path], typer.Argument(help="Checkpoints of one run, e.g. exp/digits/checkpoints/*.pt.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the averaged checkpoint.")],
) -> None:
    """Average the weights of several checkpoints of one run into one decodable checkpoint."""
    from asrkit.models.checkpoint import average_checkpoints, save_checkpoint

    save_checkpoint(output, average_checkpoints(list(checkpoints)))
    n = len(checkpoints)
    typer.echo(f"averaged {n} checkpoint{'s' if n != 1 else ''} into {output}", err=True)


@app.command()
def decode(
    inputs: Annotated[list[str], typer.Argument(help="Audio files (wav/flac, any rate), directories, or .jsonl manifests.")],
    model: Annotated[
        Optional[Path], typer.Option("--model", "-m", help="Checkpoint, e.g. exp/digits/best.pt (default: $ASRKIT_MODEL, else the newest exp/*/best.pt of a finished run that can read the input).")
    ] = None,
    beam: Annotated[int, typer.Option("--beam", min=1, help="Beam width; 1 is greedy (with --lexicon: a beam of 2).")] = 10,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write here instead of stdout.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines: text, score, n-best, token and word timestamps in seconds.")] = False,
    ctm: Annotated[Optional[Path], typer.Option("--ctm", metavar="PATH", help="Also write the words with their times as NIST CTM.")] = None,
    chunk_seconds: Annotated[
        float, typer.Option("--chunk-seconds", min=1.0, help="Longer inputs run through the model in overlapping windows of this length.")
    ] = 20.0,
    lm: Annotated[
        Optional[Path], typer.Option("--lm", metavar="MODEL", help="Word n-gram LM (ARPA or KenLM binary; `asrkit lm build` makes one).")
    ] = None,
    alpha: Annotated[Optional[float], typer.Option("--alpha", help="LM weight (with --lm). [default: 0.5]")] = None,
    beta: Annotated[Optional[float], typer.Option("--beta", help="Word insertion bonus (with --lm). [default: 1.0]")] = None,
    hotword: Annotated[Optional[list[str]], typer.Option("--hotword", help="A word to favour in the LM search (repeatable).")] = None,
    hotword_weight: Annotated[float, typer.Option("--hotword-weight", help="Score bonus of a hotword.")] = 10.0,
    workers: Annotated[int, typer.Option("--workers", min=0, help="Processes for the LM beam search (0: in this process).")] = 0,
    vtln: Annotated[
        bool, typer.Option("--vtln", help="Read each input under its most probable of 7 frequency warps: voices never heard (7x the model's time).")
    ] = False,
    lexicon: Annotated[
        Optional[Path],
        typer.Option(
            "--lexicon",
            metavar="PATH",
            help="Constrain the beam search to the words in PATH: a word list or a manifest (e.g. data/digits/train.jsonl).",
        ),
    ] = None,
    submission: Annotated[
        Optional[Path],
        typer.Option("--submission", metavar="CSV", help="Phoneme models: also write a Kaggle submission (index,label; one character per phoneme)."),
    ] = None,
    stream: Annotated[
        bool,
        typer.Option("--stream", help="Unidirectional models: read one input ('-' = stdin, WAV or raw 16-bit PCM at any rate) in chunks, print greedy partials; the final line takes --lm/--lexicon, and -o/--ctm get it too."),
    ] = False,
    chunk_ms: Annotated[float, typer.Option("--chunk-ms", min=1.0, help="With --stream: milliseconds of audio per chunk.")] = 100.0,
    raw_rate: Annotated[
        Optional[int], typer.Option("--raw-rate", min=1, help="With --stream: the sample rate of raw PCM on stdin (default: the model's).")
    ] = None,
    quiet: Quiet = False,
) -> None:
    """Transcribe audio: lines `id<TAB>text` (id = manifest id or file stem).

    With --stream: lines `partial<TAB>seconds<TAB>text` as the transcript changes, then `final<TAB>seconds<TAB>text`.
    """
    from asrkit.errors import InputError

    if lm is None and (alpha is not None or beta is not None):
        raise InputError("--alpha and --beta weigh the LM in the beam search: give an --lm too")
    alpha, beta = 0.5 if alpha is None else alpha, 1.0 if beta is None else beta
    if "-" in inputs and not stream:
        raise InputError("- reads audio from stdin, which needs --stream (asrkit decode --stream -)")
    if stream:
        from asrkit.stream.run import stream_decode

        if len(inputs) != 1:
            raise InputError(f"--stream reads one input (a file, or - for stdin), got {len(inputs)}")
        if submission or vtln:
            raise InputError("--stream decodes without --submission and --vtln (a whole-recording warp)")
        search = {"lm": lm, "alpha": alpha, "beta": beta, "lexicon": lexicon, "hotwords": hotword, "hotword_weight": hotword_weight}
        stream_decode(model, inputs[0], chunk_ms=chunk_ms, beam=beam, raw_rate=raw_rate, as_json=as_json,
                      search={k: v for k, v in search.items() if v is not None}, output=output, ctm=ctm)
        return
    from asrkit.decode.run import decode as run

    run(
        model, inputs, beam=beam, output=output, as_json=as_json, quiet=quiet, lexicon=lexicon, submission=submission, ctm=ctm,
        chunk_seconds=chunk_seconds, lm=lm, alpha=alpha, beta=beta, hotwords=hotword, hotword_weight=hotword_weight, workers=workers,
        vtln=vtln,
    )


@app.command()
def export(
    model: Annotated[Path, typer.Option("--model", "-m", help="Checkpoint to export, e.g. exp/digits/best.pt.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the model, e.g. digits.onnx.")],
    fmt: Annotated[Optional[str], typer.Option("--format", "-f", help="onnx or torchscript (default: by the output's suffix, .onnx or .pt; onnx needs onnx and onnxruntime: pip install asrkit with the export extra).")] = None,
) -> None:
    """Export a checkpoint to ONNX or TorchScript with everything decoding needs; decode it with --model FILE."""
    from asrkit.export.cli import export_command

    export_command(model, fmt, output)


@app.command()
def align(
    inputs: Annotated[list[str], typer.Argument(help="A manifest with transcripts, or audio with --text; --compare: *.pt first.")],
    model: Annotated[Optional[list[Path]], typer.Option("--model", "-m", help="Checkpoint (repeatable with --compare).")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (<id>.npz/.ctm/.TextGrid/.png; compare.*).")] = Path("alignments"),
    text: Annotated[Optional[str], typer.Option("--text", help="Transcript for audio-file inputs.")] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", min=1, help="Align only the first N utterances.")] = None,
    no_plots: Annotated[bool, typer.Option("--no-plots", help="No per-utterance heatmaps.")] = False,
    compare: Annotated[bool, typer.Option("--compare", help="Compare checkpoints: a statistics table per model and one figure.")] = False,
    utt: Annotated[Optional[str], typer.Option("--utt", help="With --compare: the utterance to draw (default: the first).")] = None,
    name: Annotated[Optional[list[str]], typer.Option("--name", help="With --compare: a display name per checkpoint, in order.")] = None,
    quiet: Quiet = False,
) -> None:
    """CTC alignments: posteriors over the blank-extended labels and the Viterbi path; or --compare several models.

    asrkit align -m exp/digits/best.pt data/digits/test.jsonl
    asrkit align --compare exp/dnn/best.pt exp/gru/best.pt exp/digits/best.pt data/digits/test.jsonl --limit 100
    """
    from asrkit.errors import InputError

    ckpts = [str(m) for m in model or []]
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
        from rich.console import Console

        from asrkit.align.compare import compare as run_compare
        from asrkit.align.compare import stats_table

        res = run_compare(ckpts, rest, out, utt=utt, limit=limit, text=text, names=name or None, quiet=quiet)
        console = Console() if sys.stdout.isatty() else Console(width=160)  # a pipe or file gets the whole table
        console.print(stats_table(res["rows"], title=f"alignment statistics (delays against {res['rows'][0]['name']})"))
        typer.echo(f"wrote compare.png, compare.json, compare.csv into {out} (figure: {res['utterance']})", err=True)
        return
    if len(ckpts) > 1:
        raise InputError(f"{len(ckpts)} checkpoints: align with one, or compare them with --compare")
    if utt is not None or name:
        raise InputError("--utt and --name go with --compare")
    from asrkit.align.run import align as run

    rows = run(ckpts[0], rest, out, text=text, plots=not no_plots, limit=limit, quiet=quiet)
    typer.echo(f"aligned {sum(r['loglik'] > float('-inf') for r in rows)} of {len(rows)} utterances into {out}", err=True)


@app.command()
def score(
    ref: Annotated[Path, typer.Option("--ref", help="Reference transcripts, id<TAB>text.")],
    hyp: Annotated[list[Path], typer.Option("--hyp", help="Hypotheses, id<TAB>text; several (repeat --hyp): one comparison table.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object (wer, cer as fractions, counts, per-utterance detail).")] = False,
    details: Annotated[int, typer.Option("--details", min=0, help="Show the N worst utterances with their alignment.")] = 0,
    frames: Annotated[bool, typer.Option("--frames", help="One label per frame (echo): also report the position-wise frame accuracy.")] = False,
    normalize: Annotated[
        bool, typer.Option("--normalize", help="Score both sides lower-cased with punctuation dropped, as prepare and lm build read text.")
    ] = False,
    confusion: Annotated[
        Optional[Path], typer.Option("--confusion", metavar="PATH.png", help="Label tasks: save the confusion matrix picture here.")
    ] = None,
) -> None:
    """WER/CER with substitutions, deletions, insertions, and accuracy (exact match); missing and extra ids are reported."""
    import json

    from asrkit.score import format_details, format_report, listed, normalized, read_transcripts, score_warnings
    from asrkit.score import score as run

    from asrkit.errors import InputError

    refs = read_transcripts(ref)
    if not refs:
        raise InputError(f"--ref {ref} holds no transcripts: nothing to score against")
    if len(hyp) > 1:
        if details or frames or confusion is not None:
            raise InputError("--details, --frames and --confusion score one --hyp; several make a comparison table")
        from asrkit.score import compare_hypotheses, format_comparison

        rows = compare_hypotheses(refs, {str(h): read_transcripts(h) for h in hyp}, normalize=normalize)
        for name, _, warnings in rows:
            for warning in warnings:
                typer.echo(f"warning: {name}: {warning}", err=True)
        if as_json:
            for name, rep, _ in rows:
                typer.echo(json.dumps({"hyp": name, **rep.to_dict()}))
            return
        from rich.console import Console

        Console().print(format_comparison(rows, title=f"Scores against {ref}"))
        return
    (hyp,) = hyp
    hyps = read_transcripts(hyp)
    if normalize:
        refs, hyps = normalized(refs), normalized(hyps)
    rep = run(refs, hyps, frames=frames)
    for warning in score_warnings(refs, hyps, rep, already_normalized=normalize):
        typer.echo(f"warning: {warning}", err=True)
    if confusion is not None:
        from asrkit.confusion import write_confusion

        write_confusion(refs, hyps, confusion)
        typer.echo(f"confusion matrix: {confusion}", err=True)
    if as_json:
        typer.echo(json.dumps(rep.to_dict()))
        return
    from rich.console import Console

    con = Console()
    con.print(format_report(rep))
    if rep.missing:
        con.print(f"[yellow]{len(rep.missing)} reference id(s) have no hypothesis (scored as deletions): {listed(rep.missing)}")
    if rep.extra:
        con.print(f"[yellow]{len(rep.extra)} hypothesis id(s) are not in the reference (not scored): {listed(rep.extra)}")
    if details:
        con.print(format_details(rep, details))


lm_app = typer.Typer(help="Word n-gram language models.", no_args_is_help=True)
app.add_typer(lm_app, name="lm")


@lm_app.command("build")
def lm_build(
    corpus: Annotated[Path, typer.Argument(help="Text, one sentence per line (or a JSONL manifest: its texts).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The ARPA file to write.")],
    order: Annotated[int, typer.Option("--order", min=1, help="n-gram order.")] = 3,
    keep_text: Annotated[
        bool, typer.Option("--keep-text", help="Take the words as they are (default: lower-cased, punctuation dropped, as decode reads them).")
    ] = False,
) -> None:
    """An ARPA n-gram with interpolated modified Kneser-Ney smoothing (as KenLM's lmplz), no KenLM tools needed."""
    from asrkit.decode.lm_build import build_lm

    summary = build_lm(corpus, output, order, normalize=not keep_text)
    if summary["order"] < summary["order_asked"]:
        typer.echo(f"note: the corpus's longest sentence fills n-grams up to order {summary['order']} only; "
                   f"the model has order {summary['order']}, not {summary['order_asked']}", err=True)
    typer.echo(f"wrote {output}: order {summary['order']}, {summary['sentences']} sentences, vocabulary {summary['vocabulary']}, n-grams {summary['ngrams']}")


def _click_exception_class() -> type[Exception]:
    """Typer >= 0.17 vendors click as typer._click; older releases raise click's own exceptions."""
    try:
        from typer._click.exceptions import ClickException
    except ImportError:  # pragma: no cover - depends on the installed typer
        from click.exceptions import ClickException
    return ClickException


def _usage_line(e: Exception, args: list[str]) -> str:
    """A click usage error as one line: `asrkit lm build: error: <message> (see asrkit lm build --help)`."""
    ctx = getattr(e, "ctx", None)
    path = ctx.command_path if ctx is not None and ctx.command_path else "asrkit"
    if path == "asrkit":  # an option parse error can surface in the root context: name the subcommand from argv
        words = [a for a in args if not a.startswith("-")]
        if words and words[0] in _subcommands():
            path = f"asrkit {words[0]}"
    message = " ".join(e.format_message().split())  # click may wrap or add newlines: keep one line
    return f"{path}: error: {message} (see {path} --help)"


def _subcommands() -> set[str]:
    """Names of the top-level subcommands and groups."""
    names = {c.name for c in app.registered_commands if c.name} | {g.name for g in app.registered_groups if g.name}
    return names | {c.callback.__name__ for c in app.registered_commands if c.name is None and c.callback}


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app; known errors print one line on stderr; exit 0 ok, 1 failure during work, 2 bad usage or input."""
    from asrkit.errors import AsrkitError

    click_error = _click_exception_class()

    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args or os.environ.get("ASRKIT_DEBUG") == "1"
    try:
        rc = app(args=args, prog_name="asrkit", standalone_mode=False)
    except typer.Exit as e:
        return e.exit_code
    except typer.Abort:
        print("asrkit: aborted", file=sys.stderr)
        return 130
    except click_error as e:
        if debug:
            raise
        if type(e).__name__ == "NoArgsIsHelpError":
            e.show()  # prints the help
            return 2
        print(_usage_line(e, args), file=sys.stderr)
        return 2
    except AsrkitError as e:
        if debug:
            raise
        print(f"asrkit: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("asrkit: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # an unexpected failure: still one line, the traceback behind --debug
        if debug:
            raise
        print(f"asrkit: error: {type(e).__name__}: {e} (run with --debug for the traceback)", file=sys.stderr)
        return 1
    if rc == 130:  # typer turns a KeyboardInterrupt into this return value, silently
        print("asrkit: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
