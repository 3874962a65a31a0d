"""The echo memory task: generated data, its one-hot inputs and delayed targets, and a frame-head GRU end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import ROOT, run_cli

from asrkit.config import load_recipe
from asrkit.data.corpora.echo import SYMBOLS, echo_target, input_frames
from asrkit.data.manifest import read_manifest
from asrkit.data.prepare import prepare
from asrkit.errors import InputError


def test_targets_are_the_input_delayed_and_cut_to_its_length() -> None:
    assert echo_target("abacaba", 3) == "___abac"
    assert echo_target("abc", 0) == "abc"
    assert echo_target("abc", 5) == "___"


def test_inputs_are_one_hot_letters_then_one_hot_delay() -> None:
    x = input_frames("zab", delay=2, max_delay=8)
    assert x.shape == (3, 27 + 9)
    assert [SYMBOLS[i] for i in x[:, :27].argmax(1)] == ["z", "a", "b"]
    assert x[:, :27].sum() == 3 and (x[:, 27 + 2] == 1).all() and x[:, 27:].sum() == 3
    with pytest.raises(InputError, match="outside 0..8"):
        input_frames("ab", delay=9, max_delay=8)
    with pytest.raises(InputError, match="lower-case letters"):
        input_frames("aB1", None)


@pytest.mark.parametrize("variable", [False, True])
def test_prepare_writes_inputs_and_targets_that_agree(tmp_path: Path, variable: bool) -> None:
    name = "echo_variable" if variable else "echo"
    r = load_recipe(
        ROOT / "recipes" / f"{name}.yaml",
        [f"data.out_dir={tmp_path}", "data.echo.per_split={train: 300, dev: 20, test: 200}"],
    )
    prepare(r, quiet=True)
    splits = {s: read_manifest(tmp_path / f"{s}.jsonl") for s in ("train", "dev", "test")}
    assert [len(v) for v in splits.values()] == [300, 20, 200]
    delays = set()
    for u in splits["train"] + splits["test"]:
        x = np.load(u.features)
        letters = "".join(SYMBOLS[i] for i in x[:, :27].argmax(1))
        d = int(x[:, 27:].argmax(1)[0]) if variable else r.data.echo.delay
        assert letters == u.extra["input"] and d == u.extra["delay"]
        assert u.text == echo_target(letters, d) and len(u.text) == r.data.echo.length
        delays.add(d)
    assert delays == (set(range(r.data.echo.max_delay + 1)) if variable else {r.data.echo.delay})
    # the test strings are fresh: none of them was trained on
    assert not {u.extra["input"] for u in splits["test"]} & {u.extra["input"] for u in splits["train"]}
    assert (tmp_path / "vocab.txt").read_text().split() == list(SYMBOLS)


def test_recipe_settings_that_cannot_work_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="features.n_mels: 36"):
        prepare(
            load_recipe(ROOT / "recipes" / "echo.yaml", [f"data.out_dir={tmp_path}", "data.echo.variable=true"]),
            quiet=True,
        )
    with pytest.raises(InputError, match="leaves nothing to echo"):
        prepare(
            load_recipe(ROOT / "recipes" / "echo.yaml", [f"data.out_dir={tmp_path}", "data.echo.delay=15"]), quiet=True
        )


def test_gru_frame_head_learns_the_echo_end_to_end(tmp_path: Path) -> None:
    """prepare → train → decode → score --frames through the CLI on a short echo; chance is 1/27 per frame."""
    base = yaml.safe_load((ROOT / "recipes" / "echo.yaml").read_text())
    base["data"]["out_dir"] = str(tmp_path / "data")
    base["data"]["echo"].update(delay=2, length=10, per_split={"train": 3000, "dev": 100, "test": 300})
    base["train"].update(exp_dir=str(tmp_path / "exp"), epochs=4, batch_seconds=3.2, threads=1)
    recipe = tmp_path / "echo.yaml"
    recipe.write_text(yaml.safe_dump(base))
    run_cli("prepare", str(recipe), "--quiet")
    run_cli("train", str(recipe), "--quiet")
    hyp = tmp_path / "test.hyp"
    test = tmp_path / "data" / "test.jsonl"
    run_cli("decode", "--model", str(tmp_path / "exp" / "best.pt"), "--output", str(hyp), "--quiet", str(test))
    lines = hyp.read_text().splitlines()
    assert len(lines) == 300 and all(len(line.split("\t")[1]) == 10 for line in lines)
    rep = json.loads(run_cli("score", "--ref", str(test), "--hyp", str(hyp), "--frames", "--json").stdout)
    assert rep["frame_accuracy"] > 0.9, rep["frame_accuracy"]
    # a hypothesis of the wrong length is refused by --frames, not silently scored
    hyp.write_text("\n".join(lines[:-1] + [lines[-1][:-1]]) + "\n")
    bad = run_cli("score", "--ref", str(test), "--hyp", str(hyp), "--frames", check=False)
    assert bad.returncode == 2 and "9 hypothesis labels for 10 reference frames" in bad.stderr


def test_models_sizes_the_frame_head_without_a_blank(tmp_path: Path) -> None:
    from asrkit.models.describe import recipe_outputs

    r = load_recipe(
        ROOT / "recipes" / "echo.yaml", [f"data.out_dir={tmp_path}", "data.echo.per_split={train: 50, dev: 5}"]
    )
    prepare(r, quiet=True)
    assert recipe_outputs(r)[0] == len(SYMBOLS) == 27
