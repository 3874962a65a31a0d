"""Hostile checkpoints: truncated, empty, random, foreign, malicious, newer-format, other-vocabulary files given to
decode / align / average are refused with one line naming the file, and nothing a user had is lost."""

from __future__ import annotations

import ast
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from asrkit.errors import InputError
from asrkit.models.checkpoint import FORMAT, load_checkpoint, save_checkpoint
from cli_inproc import assert_one_line_error, cli, tiny_checkpoint_state, write_wav

ASRKIT = Path(__file__).resolve().parents[2] / "asrkit"


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a good tiny checkpoint, one recording and a one-line manifest."""
    d = tmp_path_factory.mktemp("ckpt")
    save_checkpoint(d / "good.pt", tiny_checkpoint_state())
    write_wav(d / "a.wav")
    (d / "m.jsonl").write_text(json.dumps({"id": "u1", "audio": "a.wav", "text": "abc"}) + "\n")
    return d


@pytest.fixture(autouse=True)
def _no_debug(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ASRKIT_DEBUG", raising=False)


def _bad(kit: Path, kind: str) -> Path:
    """A damaged or foreign checkpoint file of the given kind, next to the good one."""
    p = kit / f"{kind}.pt"
    good = (kit / "good.pt").read_bytes()
    if kind == "truncated":
        p.write_bytes(good[: len(good) // 2])
    elif kind == "empty":
        p.write_bytes(b"")
    elif kind == "random":
        p.write_bytes(random.Random(8).randbytes(4096))  # fixed bytes: some random first bytes are pickle opcodes
    elif kind == "text":
        p.write_text('{"id": "u1", "audio": "a.wav"}\n')
    elif kind == "tensor":
        torch.save(torch.zeros(3), p)
    elif kind == "foreign_state_dict":
        torch.save({"weights": torch.zeros(3), "epoch": 3}, p)
    elif kind == "model_not_tensors":
        torch.save({"model": [1, 2], "model_config": {}, "tokenizer": {}, "features": {}}, p)
    elif kind == "incomplete":
        state = tiny_checkpoint_state()
        del state["tokenizer"]
        torch.save(state, p)
    elif kind == "directory":
        p.mkdir(exist_ok=True)
    return p


CASES = [
    ("truncated", "truncated or damaged"),
    ("empty", "empty or cut short"),
    ("random", "not a PyTorch checkpoint file"),
    ("text", "not a PyTorch checkpoint file"),
    ("tensor", "not an asrkit checkpoint"),
    ("foreign_state_dict", "not an asrkit checkpoint"),
    ("model_not_tensors", "not a dict of named tensors"),
    ("incomplete", "lacks tokenizer"),
    ("directory", "is a directory"),
]


@pytest.mark.parametrize("kind, needle", CASES)
def test_decode_refuses_a_bad_checkpoint(kit: Path, kind: str, needle: str) -> None:
    p = _bad(kit, kind)
    assert_one_line_error(cli("decode", "-q", "--model", p, kit / "a.wav"), p.name, needle)


@pytest.mark.parametrize("kind, needle", [CASES[0], CASES[3]])
def test_align_and_average_refuse_a_bad_checkpoint(kit: Path, tmp_path: Path, kind: str, needle: str) -> None:
    p = _bad(kit, kind)
    assert_one_line_error(
        cli("align", "-q", "--no-plots", "-o", tmp_path / "al", "--model", p, kit / "m.jsonl"), p.name, needle
    )
    out = tmp_path / "avg.pt"
    out.write_bytes(b"the user's earlier file")
    assert_one_line_error(cli("average", kit / "good.pt", p, "-o", out), p.name, needle)
    assert out.read_bytes() == b"the user's earlier file"  # a refused average leaves the output as it was


def test_good_checkpoint_decodes_and_is_stamped_with_the_format(kit: Path) -> None:
    r = cli("decode", "-q", "--model", kit / "good.pt", kit / "a.wav")
    assert r.code == 0 and r.out.startswith("a\t"), r.err
    assert torch.load(kit / "good.pt", weights_only=True)["format"] == FORMAT


def test_a_format_less_older_checkpoint_still_loads(kit: Path, tmp_path: Path) -> None:
    old = tmp_path / "old.pt"
    torch.save(tiny_checkpoint_state(), old)  # what asrkit wrote before checkpoints had a format version
    assert "format" not in torch.load(old, weights_only=True)
    assert load_checkpoint(old)["model_config"]["name"] == "gru"
    assert cli("decode", "-q", "--model", old, kit / "a.wav").code == 0


def test_a_newer_format_is_refused_naming_both_versions(kit: Path, tmp_path: Path) -> None:
    newer = tmp_path / "newer.pt"
    torch.save({**tiny_checkpoint_state(), "format": FORMAT + 41}, newer)
    line = assert_one_line_error(
        cli("decode", "-q", "--model", newer, kit / "a.wav"), "newer.pt", f"format {FORMAT + 41}", f"up to {FORMAT}"
    )
    assert "upgrade asrkit" in line


def _malicious_checkpoint(tmp_path: Path, **fields: object) -> tuple[Path, Path]:
    """evil.pt, whose 'model' unpickles by running code that creates the returned marker file; and that marker."""
    marker = tmp_path / "PWNED"

    class Evil:
        def __reduce__(self):
            return (exec, (f"open({str(marker)!r}, 'w').close()",))

    evil = tmp_path / "evil.pt"
    torch.save({"model": Evil(), **fields}, evil)
    return evil, marker


def test_a_malicious_pickle_is_refused_and_its_code_never_runs(kit: Path, tmp_path: Path) -> None:
    evil, marker = _malicious_checkpoint(tmp_path, model_config={"name": "gru"}, tokenizer={}, features={})
    assert_one_line_error(cli("decode", "-q", "--model", evil, kit / "a.wav"), "evil.pt", "refuses to unpickle")
    assert_one_line_error(cli("average", evil, evil, "-o", tmp_path / "avg.pt"), "evil.pt")
    assert not marker.exists() and not (tmp_path / "avg.pt").exists()
    # the payload is live: a full unpickle (what asrkit never does) runs it, so the check above can fail
    torch.load(evil, weights_only=False)
    assert marker.exists()


@pytest.mark.slow  # a process that imports torch: ~5-12 s on 2 shared cores; the in-process test above covers the same code
def test_a_malicious_pickle_through_the_real_command(kit: Path, tmp_path: Path) -> None:
    """One real process: the installed `asrkit` refuses the pickle, exits 2 with one line and runs nothing."""
    evil, marker = _malicious_checkpoint(tmp_path, model_config={})
    exe = Path(sys.executable).parent / "asrkit"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "asrkit"]
    env = {k: v for k, v in os.environ.items() if k != "ASRKIT_DEBUG"}
    p = subprocess.run(
        [*cmd, "decode", "-q", "--model", str(evil), str(kit / "a.wav")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr, p.stderr
    assert "evil.pt" in p.stderr and not marker.exists()


def test_a_checkpoint_whose_vocabulary_disagrees_with_its_model(kit: Path, tmp_path: Path) -> None:
    mixed = tmp_path / "mixed.pt"
    state = tiny_checkpoint_state(" abc")
    state["tokenizer"] = tiny_checkpoint_state(" abcd")["tokenizer"]  # 6 symbols, the weights have 5 outputs
    save_checkpoint(mixed, state)
    assert_one_line_error(cli("decode", "-q", "--model", mixed, kit / "a.wav"), "mixed.pt", "6 symbols", "5 outputs")


def test_average_refuses_checkpoints_of_another_vocabulary(kit: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.pt"
    save_checkpoint(other, tiny_checkpoint_state(" abd"))
    out = tmp_path / "avg.pt"
    assert_one_line_error(cli("average", kit / "good.pt", other, "-o", out), "other.pt", "another model or vocabulary")
    assert not out.exists()


def test_decode_refuses_an_lm_or_lexicon_the_model_cannot_spell(kit: Path, tmp_path: Path) -> None:
    from asrkit.decode.lm_build import build_lm

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("xyz qqq\nxyz\n")
    build_lm(corpus, tmp_path / "lm.arpa", 2)
    assert_one_line_error(
        cli("decode", "-q", "--model", kit / "good.pt", "--lm", tmp_path / "lm.arpa", kit / "a.wav"),
        "lm.arpa",
        "none of its 2 words can be spelled",
    )
    (tmp_path / "lex.txt").write_text("xyz\nqqq\n")
    assert_one_line_error(
        cli("decode", "-q", "--model", kit / "good.pt", "--lexicon", tmp_path / "lex.txt", kit / "a.wav"),
        "lex.txt",
        "outside the model's vocabulary",
    )


def test_debug_shows_the_traceback_for_a_bad_checkpoint(kit: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = _bad(kit, "truncated")
    with pytest.raises(InputError, match="truncated"):
        cli("--debug", "decode", "-q", "--model", p, kit / "a.wav")
    monkeypatch.setenv("ASRKIT_DEBUG", "1")
    with pytest.raises(InputError, match="truncated"):
        cli("decode", "-q", "--model", p, kit / "a.wav")


def _torch_load_calls() -> list[tuple[str, int, ast.Call]]:
    calls = []
    for f in sorted(ASRKIT.rglob("*.py")):
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load":
                base = node.func.value
                if isinstance(base, ast.Name) and base.id == "torch":
                    calls.append((str(f.relative_to(ASRKIT.parent)), node.lineno, node))
    return calls


def test_every_torch_load_in_asrkit_is_weights_only() -> None:
    calls = _torch_load_calls()
    assert len(calls) >= 2  # the checkpoint loader and the feature cache at least
    for where, line, call in calls:
        kw = {k.arg: k.value for k in call.keywords}
        ok = "weights_only" in kw and isinstance(kw["weights_only"], ast.Constant) and kw["weights_only"].value is True
        assert ok, f"{where}:{line}: torch.load without weights_only=True"
