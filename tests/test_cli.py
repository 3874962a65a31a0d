"""CLI behaviour: one-line errors with exit codes 1 (work) and 2 (usage, input), --debug tracebacks, a light --help."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_cli


@pytest.mark.parametrize(
    "args, needle",
    [
        (["decode", "--bogus"], "No such option"),
        (["decode", "x.wav"], "--model"),
        (["decode", "--beam", "0", "--model", "m.pt", "x.wav"], "--beam"),
        (["score", "--ref", "nowhere.txt", "--hyp", "nowhere.txt"], "nowhere.txt"),
        (["prepare", "no/such/recipe.yaml"], "no/such/recipe.yaml"),
        (["train", "no/such/recipe.yaml"], "not found"),
        (["decode", "--model", "missing.pt", "x.wav"], "missing.pt"),
        (["nosuchcommand"], "nosuchcommand"),
    ],
)
def test_bad_usage_exits_2_with_one_line(args: list[str], needle: str, tmp_path: Path) -> None:
    (tmp_path / "x.wav").write_bytes(b"")  # present, so that the model is what is missing
    proc = run_cli(*args, cwd=tmp_path, check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert needle in lines[0] and "Traceback" not in proc.stderr


def test_unknown_recipe_key_names_the_key(tmp_path: Path) -> None:
    r = tmp_path / "r.yaml"
    r.write_text("data:\n  corpus: digits\ntrain:\n  epoks: 3\n")
    proc = run_cli("prepare", str(r), cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert "train.epoks" in proc.stderr and "train.epochs" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_unreadable_audio_is_a_clear_error(tmp_path: Path) -> None:
    fake = tmp_path / "fake.wav"
    fake.write_text("this is not audio")
    from asrkit.audio import read_audio
    from asrkit.errors import InputError

    with pytest.raises(InputError, match="fake.wav"):
        read_audio(fake)


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    proc = run_cli("--debug", "score", "--ref", "nowhere.txt", "--hyp", "nowhere.txt", cwd=tmp_path, check=False)
    assert proc.returncode != 0 and "Traceback" in proc.stderr


def test_help_lists_every_subcommand() -> None:
    out = run_cli("--help").stdout
    for cmd in ("prepare", "train", "decode", "align", "score"):
        assert cmd in out


def test_cli_import_does_not_load_torch() -> None:
    # `asrkit --help` must answer fast: the heavy libraries load only inside the subcommands that need them
    code = "import sys, asrkit.cli; print(sorted(m for m in ('torch', 'torchaudio', 'matplotlib', 'jiwer') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_models_lists_the_zoo_sized_for_a_recipe(tmp_path) -> None:
    import json

    from asrkit.models import MODELS, build_model, count_parameters

    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        f"name: r\ndata: {{out_dir: {tmp_path / 'none'}}}\nfeatures: {{n_mels: 24}}\n"
        "model: {name: gru, frontend: stack, subsample: 2, hidden: 32, layers: 1}\n"
    )
    res = run_cli("models", str(recipe), "--json")
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert [r["name"] for r in rows] == list(MODELS)
    assert [r["name"] for r in rows if r["selected"]] == ["gru"]
    for r in rows:
        cfg = {
            "name": r["name"],
            "frontend": "stack",
            "subsample": 2,
            "hidden": 32,
            "layers": 1,
            "n_feats": 24,
            "n_tokens": 29,
        }
        assert r["parameters"] == count_parameters(build_model(cfg))
    # --set changes the sizes the table is built with
    wider = [
        json.loads(line)
        for line in run_cli("models", str(recipe), "--json", "--set", "model.hidden=64").stdout.splitlines()
    ]
    assert all(w["parameters"] > r["parameters"] for w, r in zip(wider, rows))
    bad = run_cli("models", str(recipe), "--set", "model.hiden=3", check=False)
    assert bad.returncode == 2 and "did you mean 'model.hidden'" in bad.stderr


@pytest.mark.parametrize(
    "command", ["prepare", "train", "decode", "align", "score", "models", "export", "average", "lm build"]
)
def test_help_shows_plain_metavars_and_flags_without_values(command: str) -> None:
    import re

    from typer.testing import CliRunner

    from asrkit.cli import app

    res = CliRunner().invoke(app, [*command.split(), "--help"], env={"COLUMNS": "120"}, terminal_width=120)
    assert res.exit_code == 0, res.output
    assert not re.search(r"<(bool|int|float|str|list|path)", res.output), res.output  # Python types
    assert not re.search(r"\{[a-z_]+\}", res.output), res.output  # typer's {argument} in the usage line
    quiet = [line for line in res.output.splitlines() if "--quiet" in line or "--help" in line]
    assert quiet and all(not re.search(r"(TEXT|INTEGER|NUMBER|PATH|VALUE)\s", line.split("--")[1]) for line in quiet), (
        quiet
    )


def test_small_usage_mistakes_get_a_line_that_says_what_to_do(tmp_path: Path) -> None:
    import sys as _sys

    _sys.path.insert(0, str(Path(__file__).parent / "robustness"))
    from cli_inproc import assert_one_line_error, cli

    assert_one_line_error(cli("decode", "-"), "needs --stream (asrkit decode --stream -)")
    assert_one_line_error(
        cli("decode", "--alpha", "0.8", "x.wav"), "--alpha and --beta weigh the LM", "give an --lm too"
    )
    assert_one_line_error(cli("decode", "--beta", "2", "x.wav"), "give an --lm too")
    assert_one_line_error(
        cli("export", "-m", "m.pt", "-f", "torchscript", "-o", str(tmp_path / "x.onnx")),
        "has the suffix of onnx files, but --format is torchscript",
    )
    assert not (tmp_path / "x.onnx").exists()


def test_export_format_follows_the_output_suffix() -> None:
    from asrkit.commands.export import format_for

    assert format_for("m.onnx", None) == "onnx" and format_for("m.pt", None) == "torchscript"
    assert format_for("m.bin", None) == "onnx" and format_for("m.bin", "torchscript") == "torchscript"
    assert format_for("m.ts", "tflite") == "tflite"  # an unknown format is export_model's to refuse
