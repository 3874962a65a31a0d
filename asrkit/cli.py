"""The `asrkit` command: one thin function per subcommand, parsing its options and calling `asrkit.commands` (or the
library); errors become one line + exit code.

The subcommands import their work inside their functions (each import marked `# lazy:`), the boundary below which
modules import at the top: `asrkit --help` and the start of every command must not pay for torch and the rest of the package.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from asrkit.cli_help import install as _plain_help
from asrkit.config import DecodeOptions, load_recipe
from asrkit.errors import AsrkitError, InputError
from asrkit.version import __version__

try:  # typer >= 0.17 vendors click as typer._click; older releases raise click's own exceptions
    from typer._click.exceptions import ClickException
except ImportError:  # pragma: no cover - depends on the installed typer
    from click.exceptions import ClickException

_plain_help()
app = typer.Typer(
    name="asrkit",
    help="Speech recognition with recurrent CTC models: prepare → train → decode → align → score.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

Sets = Annotated[
    Optional[list[str]], typer.Option("--set", help="Override a recipe key, e.g. --set train.epochs=5 (repeatable).")
]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]
_DEBUG = {"on": False}
_DECODE_SETTINGS = {f.name for f in dataclasses.fields(DecodeOptions)}


def _dflt(setting: str) -> str:
    """The help's note of a decoding setting's default, which a recipe's decode: section overrides."""
    return f"(default: the recipe's, else {getattr(DecodeOptions, setting)})"


def _version(value: bool) -> None:
    if value:
        typer.echo(f"asrkit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show the full traceback on errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    _DEBUG["on"] = debug or os.environ.get("ASRKIT_DEBUG") == "1"


@app.command()
def prepare(
    recipe: Annotated[Path, typer.Argument(help="Recipe YAML, e.g. recipes/digits.yaml.")],
    set_: Sets = None,
    download: Annotated[
        bool, typer.Option("--download", help="Download the corpus when data.root / $ASRKIT_DATA do not hold it.")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Redo even if the data dir is up to date.")] = False,
    jobs: Annotated[
        Optional[int], typer.Option("--jobs", "-j", min=1, help="Processes computing features (default: the cores).")
    ] = None,
    quiet: Quiet = False,
) -> None:
    """Corpus on disk → manifests, vocabulary, cached features (data/<recipe>/). A run that was stopped resumes where it was."""
    from asrkit.data.prepare import prepare as run  # lazy: keeps asrkit --help fast

    out = run(load_recipe(recipe, set_), download=download, force=force, quiet=quiet, jobs=jobs)
    typer.echo(f"prepared {out}", err=True)


@app.command()
def train(
    recipe: Annotated[Path, typer.Argument(help="Recipe YAML.")],
    set_: Sets = None,
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Start over instead of resuming from exp/<recipe>/last.pt.")
    ] = False,
    quiet: Quiet = False,
) -> None:
    """Train the recipe's model; resumes exactly from exp/<recipe>/last.pt. Many processes: torchrun --nproc-per-node N -m asrkit train RECIPE."""
    from asrkit.train.trainer import train as run  # lazy: keeps asrkit --help fast

    best = run(load_recipe(recipe, set_), quiet=quiet, fresh=fresh)
    if os.environ.get("RANK", "0") == "0":  # under torchrun only rank 0 speaks
        typer.echo(f"best checkpoint: {best}", err=True)


@app.command()
def models(
    recipe: Annotated[
        Optional[Path], typer.Argument(help="Recipe YAML whose sizes to use (default: the built-in defaults).")
    ] = None,
    set_: Sets = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per zoo entry.")] = False,
) -> None:
    """List the model zoo with parameter counts for a recipe's sizes."""
    from asrkit.commands.models import models_command  # lazy: keeps asrkit --help fast

    models_command(recipe, set_, as_json)


@app.command()
def average(
    checkpoints: Annotated[
        list[Path], typer.Argument(help="Checkpoints of one run, e.g. exp/digits/checkpoints/*.pt.")
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the averaged checkpoint.")],
) -> None:
    """Average the weights of several checkpoints of one run into one decodable checkpoint."""
    from asrkit.models.checkpoint import average_checkpoints, save_checkpoint  # lazy: keeps asrkit --help fast

    save_checkpoint(output, average_checkpoints(list(checkpoints)))
    n = len(checkpoints)
    typer.echo(f"averaged {n} checkpoint{'s' if n != 1 else ''} into {output}", err=True)


# decode's longer options, named here so that the command's signature stays readable
DecodeRecipe = Annotated[
    Optional[Path],
    typer.Option(
        "--recipe",
        help="Take the decoding settings not given here from this recipe's decode: section (default: the recipe the model was trained with).",
    ),
]
ChunkSeconds = Annotated[
    Optional[float],
    typer.Option(
        "--chunk-seconds",
        min=1.0,
        help=f"Longer inputs run through the model in overlapping windows of this length. {_dflt('chunk_seconds')}",
    ),
]
LMPath = Annotated[
    Optional[Path],
    typer.Option("--lm", metavar="MODEL", help="Word n-gram LM (ARPA or KenLM binary; `asrkit lm build` makes one)."),
]
Workers = Annotated[
    Optional[int],
    typer.Option("--workers", min=0, help=f"Processes for the LM beam search (0: in this process). {_dflt('workers')}"),
]
VTLN = Annotated[
    Optional[bool],
    typer.Option(
        "--vtln",
        help="Read each input under its most probable of 7 frequency warps: voices never heard (7x the model's time).",
    ),
]
CMVN = Annotated[
    Optional[str],
    typer.Option(
        "--cmvn",
        metavar="MODE",
        help="Normalise the inputs this way (a features.cmvn mode, e.g. prior_speech) instead of the model's own.",
    ),
]
LexiconPath = Annotated[
    Optional[Path],
    typer.Option(
        "--lexicon",
        metavar="PATH",
        help="Constrain the beam search to the words in PATH: a word list or a manifest (e.g. data/digits/train.jsonl).",
    ),
]
Submission = Annotated[
    Optional[Path],
    typer.Option(
        "--submission",
        metavar="CSV",
        help="Phoneme models: also write a Kaggle submission (index,label; one character per phoneme).",
    ),
]
Stream = Annotated[
    bool,
    typer.Option(
        "--stream",
        help="Unidirectional models: read one input ('-' = stdin, WAV or raw 16-bit PCM at any rate) in chunks, print greedy partials; the final line takes --lm/--lexicon, and -o/--ctm get it too.",
    ),
]
RawRate = Annotated[
    Optional[int],
    typer.Option(
        "--raw-rate", min=1, help="With --stream: the sample rate of raw PCM on stdin (default: the model's)."
    ),
]


@app.command()
def decode(
    ctx: typer.Context,
    inputs: Annotated[
        list[str], typer.Argument(help="Audio files (wav/flac, any rate), directories, or .jsonl manifests.")
    ],
    model: Annotated[
        Optional[Path],
        typer.Option(
            "--model",
            "-m",
            help="Checkpoint, e.g. exp/digits/best.pt (default: $ASRKIT_MODEL, else the newest exp/*/best.pt of a finished run that can read the input).",
        ),
    ] = None,
    recipe: DecodeRecipe = None,
    beam: Annotated[
        Optional[int],
        typer.Option("--beam", min=1, help=f"Beam width; 1 is greedy (with --lexicon: a beam of 2). {_dflt('beam')}"),
    ] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write here instead of stdout.")] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="JSON lines: text, score, n-best, token and word timestamps in seconds.")
    ] = False,
    ctm: Annotated[
        Optional[Path], typer.Option("--ctm", metavar="PATH", help="Also write the words with their times as NIST CTM.")
    ] = None,
    chunk_seconds: ChunkSeconds = None,
    lm: LMPath = None,
    alpha: Annotated[Optional[float], typer.Option("--alpha", help=f"LM weight (with --lm). {_dflt('alpha')}")] = None,
    beta: Annotated[
        Optional[float], typer.Option("--beta", help=f"Word insertion bonus (with --lm). {_dflt('beta')}")
    ] = None,
    hotwords: Annotated[
        Optional[list[str]], typer.Option("--hotword", help="A word to favour in the LM search (repeatable).")
    ] = None,
    hotword_weight: Annotated[
        Optional[float], typer.Option("--hotword-weight", help=f"Score bonus of a hotword. {_dflt('hotword_weight')}")
    ] = None,
    workers: Workers = None,
    vtln: VTLN = None,
    cmvn: CMVN = None,
    lexicon: LexiconPath = None,
    submission: Submission = None,
    stream: Stream = False,
    chunk_ms: Annotated[
        float, typer.Option("--chunk-ms", min=1.0, help="With --stream: milliseconds of audio per chunk.")
    ] = 100.0,
    raw_rate: RawRate = None,
    quiet: Quiet = False,
) -> None:
    """Transcribe audio: lines `id<TAB>text` (id = manifest id or file stem).

    With --stream: lines `partial<TAB>seconds<TAB>text` as the transcript changes, then `final<TAB>seconds<TAB>text`.
    """
    # the options named as DecodeOptions' fields are the decoding settings: a new setting is a field and an option here
    settings = {k: v for k, v in ctx.params.items() if k in _DECODE_SETTINGS}
    if "-" in inputs and not stream:
        raise InputError("- reads audio from stdin, which needs --stream (asrkit decode --stream -)")
    if stream:
        from asrkit.commands.stream import stream_decode  # lazy: keeps asrkit --help fast

        if len(inputs) != 1:
            raise InputError(f"--stream reads one input (a file, or - for stdin), got {len(inputs)}")
        if submission or vtln or cmvn:
            raise InputError(
                "--stream decodes without --submission, --vtln (a whole-recording warp) and --cmvn (the model's own)"
            )
        stream_decode(
            model,
            inputs[0],
            settings,
            recipe,
            chunk_ms=chunk_ms,
            raw_rate=raw_rate,
            as_json=as_json,
            output=output,
            ctm=ctm,
        )
        return
    from asrkit.commands.decode import decode as run  # lazy: keeps asrkit --help fast

    run(model, inputs, settings, recipe, output=output, as_json=as_json, ctm=ctm, submission=submission, quiet=quiet)


@app.command()
def export(
    model: Annotated[Path, typer.Option("--model", "-m", help="Checkpoint to export, e.g. exp/digits/best.pt.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the model, e.g. digits.onnx.")],
    fmt: Annotated[
        Optional[str],
        typer.Option(
            "--format",
            "-f",
            help="onnx or torchscript (default: by the output's suffix, .onnx or .pt; onnx needs onnx and onnxruntime: pip install asrkit with the export extra).",
        ),
    ] = None,
) -> None:
    """Export a checkpoint to ONNX or TorchScript with everything decoding needs; decode it with --model FILE."""
    from asrkit.commands.export import export_command  # lazy: keeps asrkit --help fast

    export_command(model, fmt, output)


@app.command()
def align(
    inputs: Annotated[
        list[str], typer.Argument(help="A manifest with transcripts, or audio with --text; --compare: *.pt first.")
    ],
    model: Annotated[
        Optional[list[Path]], typer.Option("--model", "-m", help="Checkpoint (repeatable with --compare).")
    ] = None,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Output folder (<id>.npz/.ctm/.TextGrid/.png; compare.*).")
    ] = Path("alignments"),
    text: Annotated[Optional[str], typer.Option("--text", help="Transcript for audio-file inputs.")] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", min=1, help="Align only the first N utterances.")] = None,
    no_plots: Annotated[bool, typer.Option("--no-plots", help="No per-utterance heatmaps.")] = False,
    compare: Annotated[
        bool, typer.Option("--compare", help="Compare checkpoints: a statistics table per model and one figure.")
    ] = False,
    utt: Annotated[
        Optional[str], typer.Option("--utt", help="With --compare: the utterance to draw (default: the first).")
    ] = None,
    name: Annotated[
        Optional[list[str]], typer.Option("--name", help="With --compare: a display name per checkpoint, in order.")
    ] = None,
    quiet: Quiet = False,
) -> None:
    """CTC alignments: posteriors over the blank-extended labels and the Viterbi path; or --compare several models.

    asrkit align -m exp/digits/best.pt data/digits/test.jsonl
    asrkit align --compare exp/dnn/best.pt exp/gru/best.pt exp/digits/best.pt data/digits/test.jsonl --limit 100
    """
    from asrkit.commands.align import align_command  # lazy: keeps asrkit --help fast

    align_command(
        inputs,
        list(model or []),
        out,
        text=text,
        limit=limit,
        plots=not no_plots,
        compare=compare,
        utt=utt,
        names=name,
        quiet=quiet,
    )


@app.command()
def score(
    ref: Annotated[Path, typer.Option("--ref", help="Reference transcripts, id<TAB>text.")],
    hyp: Annotated[
        list[Path], typer.Option("--hyp", help="Hypotheses, id<TAB>text; several (repeat --hyp): one comparison table.")
    ],
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print one JSON object (wer, cer as fractions, counts, per-utterance detail)."),
    ] = False,
    details: Annotated[
        int, typer.Option("--details", min=0, help="Show the N worst utterances with their alignment.")
    ] = 0,
    frames: Annotated[
        bool, typer.Option("--frames", help="One label per frame (echo): also report the position-wise frame accuracy.")
    ] = False,
    normalize: Annotated[
        bool,
        typer.Option(
            "--normalize",
            help="Score both sides lower-cased with punctuation dropped, as prepare and lm build read text.",
        ),
    ] = False,
    confusion: Annotated[
        Optional[Path],
        typer.Option("--confusion", metavar="PATH.png", help="Label tasks: save the confusion matrix picture here."),
    ] = None,
) -> None:
    """WER/CER with substitutions, deletions, insertions, and accuracy (exact match); missing and extra ids are reported."""
    from asrkit.commands.score import score_command  # lazy: keeps asrkit --help fast

    score_command(ref, hyp, as_json=as_json, details=details, frames=frames, normalize=normalize, confusion=confusion)


lm_app = typer.Typer(help="Word n-gram language models.", no_args_is_help=True)
app.add_typer(lm_app, name="lm")


@lm_app.command("build")
def lm_build(
    corpus: Annotated[Path, typer.Argument(help="Text, one sentence per line (or a JSONL manifest: its texts).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The ARPA file to write.")],
    order: Annotated[int, typer.Option("--order", min=1, help="n-gram order.")] = 3,
    keep_text: Annotated[
        bool,
        typer.Option(
            "--keep-text",
            help="Take the words as they are (default: lower-cased, punctuation dropped, as decode reads them).",
        ),
    ] = False,
) -> None:
    """An ARPA n-gram with interpolated modified Kneser-Ney smoothing (as KenLM's lmplz), no KenLM tools needed."""
    from asrkit.decode.lm_build import build_lm  # lazy: keeps asrkit --help fast

    summary = build_lm(corpus, output, order, normalize=not keep_text)
    if summary["order"] < summary["order_asked"]:
        typer.echo(
            f"note: the corpus's longest sentence fills n-grams up to order {summary['order']} only; "
            f"the model has order {summary['order']}, not {summary['order_asked']}",
            err=True,
        )
    typer.echo(
        f"wrote {output}: order {summary['order']}, {summary['sentences']} sentences, vocabulary {summary['vocabulary']}, n-grams {summary['ngrams']}"
    )


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
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args or os.environ.get("ASRKIT_DEBUG") == "1"
    try:
        rc = app(args=args, prog_name="asrkit", standalone_mode=False)
    except typer.Exit as e:
        return e.exit_code
    except typer.Abort:
        print("asrkit: aborted", file=sys.stderr)
        return 130
    except ClickException as e:
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
