"""Every subcommand (from the CLI's own command tree, `lm` subcommands included) answers missing arguments, unknown
options and invalid option values with exit 2 and one line naming the command; --help stays the rich help."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from asrkit.cli import ClickException, app
from asrkit.errors import InputError
from cli_inproc import assert_one_line_error, cli


@pytest.fixture(autouse=True)
def _no_debug(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ASRKIT_DEBUG", raising=False)


# typer >= 0.17 vendors click (typer._click): duck-type the command tree instead of isinstance(click.Group)
def _is_option(p: object) -> bool:
    return getattr(p, "param_type_name", "") == "option"


def _is_argument(p: object) -> bool:
    return getattr(p, "param_type_name", "") == "argument"


def _leaves() -> dict[str, object]:
    """'decode' → its click command, 'lm build' → ..., walked from the app (a new subcommand is covered automatically)."""
    out: dict[str, object] = {}

    def walk(cmd, path: list[str]) -> None:
        if hasattr(cmd, "commands"):
            for name, sub in cmd.commands.items():
                walk(sub, [*path, name])
        else:
            out[" ".join(path)] = cmd

    walk(typer.main.get_command(app), [])
    return out


LEAVES = _leaves()


def _numeric(p) -> bool:
    """Whether a parameter takes an int or float (typer's own parameters, or plain click ones)."""
    if hasattr(p, "bare_type"):
        bt = p.bare_type()
        return getattr(bt, "__name__", str(bt)) in ("int", "float")
    return getattr(getattr(p, "type", None), "name", "") in ("integer", "float", "integer range", "float range")


def _placeholder(p) -> str:
    return "1" if _numeric(p) else "x.jsonl"


def _required_args(cmd) -> list[str]:
    """Values for the required arguments and options (so only the one under test is wrong)."""
    args: list[str] = []
    for p in cmd.params:
        if _is_option(p) and p.required:
            args += [p.opts[0], _placeholder(p)]
        elif _is_argument(p) and p.required:
            args.append(_placeholder(p))
    return args


def test_the_command_tree_has_every_documented_subcommand() -> None:
    assert {"prepare", "train", "models", "average", "decode", "align", "score", "lm build"} <= set(LEAVES)


@pytest.mark.parametrize("name", sorted(LEAVES))
def test_missing_required_argument_is_one_line_exit_2(name: str) -> None:
    required = [p for p in LEAVES[name].params if p.required]
    if not required:
        pytest.skip(f"asrkit {name} has no required argument")
    line = assert_one_line_error(cli(*name.split()), f"asrkit {name}: error: Missing", f"(see asrkit {name} --help)")
    assert required[0].name in line or (required[0].opts and required[0].opts[0] in line)


@pytest.mark.parametrize("name", sorted(LEAVES))
def test_unknown_option_is_one_line_exit_2(name: str) -> None:
    assert_one_line_error(
        cli(*name.split(), "--no-such-option"), f"asrkit {name}: error: No such option: --no-such-option"
    )


def _invalid_value(cmd) -> list[str] | None:
    """An option given a value it cannot take: text for a number, below a minimum, or a value for a flag."""
    for p in cmd.params:
        if _is_option(p) and not p.is_flag and _numeric(p):
            return [p.opts[0], "not-a-number"]
    for p in cmd.params:
        if _is_option(p) and p.is_flag and p.opts[0].startswith("--"):
            return [f"{p.opts[0]}=maybe"]
    for p in cmd.params:
        if _is_option(p) and not p.is_flag:
            return [p.opts[0]]  # a value option given last, without its value
    return None


@pytest.mark.parametrize("name", sorted(LEAVES))
def test_invalid_option_value_is_one_line_exit_2(name: str) -> None:
    bad = _invalid_value(LEAVES[name])
    assert bad is not None, f"asrkit {name}: no option to give a bad value"
    line = assert_one_line_error(cli(*name.split(), *_required_args(LEAVES[name]), *bad), f"asrkit {name}: error:")
    assert bad[0].split("=")[0] in line


@pytest.mark.parametrize(
    "args, needle",
    [
        (["decode", "--beam"], "asrkit decode: error: Option '--beam' requires an argument"),
        (["decode", "--beam", "0", "x.wav"], "asrkit decode: error: Invalid value for '--beam'"),
        (["decode", "--chunk-seconds", "nan", "x.wav"], "--chunk-seconds"),
        (["align", "--limit", "0", "x.jsonl"], "asrkit align: error: Invalid value for '--limit'"),
        (
            ["lm", "build", "c.txt", "-o", "x.arpa", "--order", "0"],
            "asrkit lm build: error: Invalid value for '--order'",
        ),
        (["lm", "nosuch"], "asrkit lm: error: No such command 'nosuch'"),
        (["nosuchcommand"], "asrkit: error: No such command 'nosuchcommand'"),
        (["--no-such-option"], "asrkit: error: No such option"),
    ],
)
def test_usage_errors_name_the_full_command(args: list[str], needle: str) -> None:
    assert_one_line_error(cli(*args), needle)


@pytest.mark.parametrize("name", sorted(LEAVES))
def test_help_stays_the_rich_help(name: str) -> None:
    r = cli(*name.split(), "--help")
    assert r.code == 0 and r.err == ""
    assert "Usage:" in r.out and len(r.out.splitlines()) > 3 and "─" in r.out  # rich panels, not one line


def test_debug_and_asrkit_debug_show_the_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InputError, match="nope.yaml"):
        cli("--debug", "models", tmp_path / "nope.yaml")
    with pytest.raises(ClickException):
        cli("--debug", "decode", "--beam", "zero", "x.wav")
    monkeypatch.setenv("ASRKIT_DEBUG", "1")
    with pytest.raises(InputError, match="nope.yaml"):
        cli("models", tmp_path / "nope.yaml")


def test_the_real_command_usage_error_is_one_line_and_debug_has_the_traceback(tmp_path: Path) -> None:
    """Real processes (lm build imports no torch, so this stays fast): one line without --debug, a traceback with it."""
    exe = Path(sys.executable).parent / "asrkit"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "asrkit"]
    env = {k: v for k, v in os.environ.items() if k != "ASRKIT_DEBUG"}
    p = subprocess.run(
        [*cmd, "lm", "build", "corpus.txt"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120
    )
    assert (
        p.returncode == 2
        and p.stderr.strip() == "asrkit lm build: error: Missing option '--output' / '-o'. (see asrkit lm build --help)"
    )
    p = subprocess.run(
        [*cmd, "--debug", "lm", "build", "corpus.txt", "-o", "x.arpa"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert p.returncode != 0 and "Traceback" in p.stderr and "corpus.txt" in p.stderr
