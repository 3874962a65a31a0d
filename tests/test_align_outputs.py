"""Alignment outputs: TextGrid, CTM, comparison statistics on hand-made alignments; the align CLI end to end."""

from __future__ import annotations

import csv
import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from asrkit.align.compare import alignment_stats, model_names
from asrkit.align import best_state_path, ctc_posteriors
from asrkit.commands.align import utterance_spans
from asrkit.align.textgrid import write_textgrid
from asrkit.align.utt import UttAlignment
from asrkit.align.timing import ctm_lines, frames_from_path, spans_from_frames
from asrkit.text import CharTokenizer, PhonemeTokenizer
from asrkit.cli import main
from conftest import digits_recipe_dict, run_cli, shared


def parse_textgrid(text: str) -> dict:
    """A tiny reader of the long text format: {xmin, xmax, tiers: {name: [(xmin, xmax, text)]}}."""
    lines = [ln.strip() for ln in text.splitlines()]
    assert lines[:3] == ['File type = "ooTextFile"', 'Object class = "TextGrid"', ""]
    kv = [re.fullmatch(r'(\w+) = (".*"|[-\d.]+)', ln) for ln in lines]
    vals = [(m.group(1), m.group(2)) for m in kv if m]
    grid = {"xmin": float(vals[0][1]), "xmax": float(vals[1][1]), "tiers": {}}
    assert "tiers? <exists>" in lines
    tier, iv = None, None
    for key, v in vals[3:]:  # skip xmin, xmax and size of the grid
        if key == "class":
            assert v == '"IntervalTier"'
        elif key == "name":
            tier = grid["tiers"].setdefault(v.strip('"'), [])
            iv = []
        elif key in ("xmin", "xmax"):
            iv.append(float(v))
        elif key == "text":
            tier.append((iv[-2], iv[-1], v[1:-1].replace('""', '"')))
    # tier xmin/xmax were collected into iv ahead of the intervals; sizes are checked against the declared ones
    sizes = [int(m) for m in re.findall(r"intervals: size = (\d+)", text)]
    assert sizes == [len(t) for t in grid["tiers"].values()]
    return grid


def _peaky(labels: list[int], V: int, p: float = 0.9) -> torch.Tensor:
    """(T, V) log-probabilities putting `p` on each frame's label and the rest evenly on the others."""
    lp = torch.full((len(labels), V), (1 - p) / (V - 1), dtype=torch.float64)
    lp[torch.arange(len(labels)), torch.tensor(labels)] = p
    return lp.log().float()


def test_textgrid_for_hand_made_path(tmp_path: Path) -> None:
    # tokens a ␣ b over 10 frames of 20 ms; ext states [∅ a ∅ ␣ ∅ b ∅]
    tokens, shift = [1, 2, 3], 0.02
    path = [0, 0, 1, 1, 2, 3, 4, 5, 5, 6]
    frames = frames_from_path(path, len(tokens))
    assert frames == [(2, 4), (5, 6), (7, 9)]
    lp = _peaky([0, 0, 1, 1, 0, 2, 0, 3, 3, 0], 4)
    toks, words = spans_from_frames(lp, tokens, frames, ["∅", "a", "␣", 'b"'], shift, space=2)
    out = tmp_path / "u.TextGrid"
    write_textgrid(out, 10 * shift, toks, words)
    grid = parse_textgrid(out.read_text(encoding="utf-8"))
    assert grid["xmin"] == 0 and grid["xmax"] == pytest.approx(0.2)
    assert list(grid["tiers"]) == ["words", "tokens"]
    assert grid["tiers"]["tokens"] == [
        (0.0, 0.04, ""),
        (0.04, 0.08, "a"),
        (0.08, 0.1, ""),
        (0.1, 0.12, "␣"),
        (0.12, 0.14, ""),
        (0.14, 0.18, 'b"'),
        (0.18, 0.2, ""),
    ]
    assert grid["tiers"]["words"] == [
        (0.0, 0.04, ""),
        (0.04, 0.08, "a"),
        (0.08, 0.14, ""),
        (0.14, 0.18, 'b"'),
        (0.18, 0.2, ""),
    ]
    text = out.read_text(encoding="utf-8")
    assert 'text = "b"""' in text  # a double quote inside a label is doubled, as Praat writes it
    assert (
        '    item [2]:\n        class = "IntervalTier" \n        name = "tokens" \n        xmin = 0 \n        xmax = 0.2 \n'
        in text
    )


def test_ctm_for_peaky_input() -> None:
    tok = CharTokenizer(["a", " ", "b"])  # ids: ∅ 0, a 1, ␣ 2, b 3
    tokens = tok.encode("ab b")
    lp = _peaky([0, 1, 3, 0, 2, 0, 3, 3, 0], len(tok), p=0.8)
    loglik, post = ctc_posteriors(lp, tokens, blank=0)
    path = best_state_path(lp, tokens, blank=0).numpy()
    ua = UttAlignment("u1", tokens, [], post.numpy(), path, 0.03, float(loglik), "ab b", lp)
    toks, words = utterance_spans(ua, tok)
    assert ctm_lines("u1", words) == ["u1 1 0.030 0.060 ab 0.800", "u1 1 0.180 0.060 b 0.800"]
    assert [t.label for t in toks] == ["a", "b", "␣", "b"]
    # a phoneme model has no words: its CTM lists the tokens
    ph = PhonemeTokenizer(["AH", "B", "K"])
    p_tokens = ph.encode("AH B")
    lp2 = _peaky([0, 1, 1, 0, 2, 0], len(ph))
    path2 = best_state_path(lp2, p_tokens, blank=0).numpy()
    ua2 = UttAlignment("u2", p_tokens, [], np.zeros((6, 5)), path2, 0.01, 0.0, "AH B", lp2)
    ptoks, pwords = utterance_spans(ua2, ph)
    assert pwords is None
    assert ctm_lines("u2", ptoks) == ["u2 1 0.010 0.020 AH 0.900", "u2 1 0.040 0.010 B 0.900"]


def _one_hot(path: list[int], n_states: int) -> np.ndarray:
    post = np.zeros((len(path), n_states))
    post[np.arange(len(path)), path] = 1.0
    return post


def test_statistics_on_hand_made_alignments() -> None:
    # model A: 10 ms frames, tokens start at frames 1 and 4; frame 1 is split 50/50 between blank and the token
    path_a = [0, 1, 1, 2, 3, 4, 4, 4]
    post_a = _one_hot(path_a, 5)
    post_a[1, :2] = 0.5
    a = UttAlignment("u", [1, 2], [], post_a, np.array(path_a), 0.01, -1.0)
    # model B: 20 ms frames, tokens start at 20 ms and 40 ms (A: 10 ms and 40 ms); uniform outputs over 4 symbols
    path_b = [0, 1, 3, 4]
    b = UttAlignment(
        "u", [1, 2], [], _one_hot(path_b, 5), np.array(path_b), 0.02, -1.0, log_probs=torch.full((4, 4), math.log(0.25))
    )
    bad = UttAlignment("v", [1, 2], [], np.zeros((1, 5)), None, 0.02)  # too short to align: skipped

    sa = alignment_stats([a], reference=[a])
    assert sa["blank_fraction"] == pytest.approx(5 / 8)
    assert sa["peakiness"] == pytest.approx((0.5 + 1 + 1) / 3)
    assert sa["state_entropy"] == pytest.approx(math.log(2) / 8)
    assert sa["output_entropy"] is None
    assert sa["delay_s"] == 0 and sa["delay_tokens"] == 2

    sb = alignment_stats([b, bad], reference=[a])
    assert (sb["utterances"], sb["skipped"], sb["frames"]) == (1, 1, 4)
    assert sb["blank_fraction"] == pytest.approx(0.5)
    assert sb["peakiness"] == pytest.approx(1.0)
    assert sb["state_entropy"] == pytest.approx(0.0)
    assert sb["output_entropy"] == pytest.approx(math.log(4))
    assert sb["delay_s"] == pytest.approx(0.005)  # (+10 ms + 0 ms) / 2, in seconds despite the different frame shifts
    assert sb["abs_delay_s"] == pytest.approx(0.005)
    assert alignment_stats([a], reference=[b])["delay_s"] == pytest.approx(-0.005)
    assert model_names(["x/exp1/best.pt", "y/exp1/best.pt", "z/avg.pt"]) == ["exp1", "exp1-2", "avg"]


# --- the CLI end to end with tiny trained models --------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """Prepare a small connected-digits set and train a BiLSTM and a DNN on it for a few epochs: (data, bilstm, dnn)."""
    src = shared("fsdd") / "recordings"
    tmp = tmp_path_factory.mktemp("align_out")
    rec = tmp / "fsdd" / "recordings"
    rec.mkdir(parents=True)
    for spk in ("jackson", "george"):
        for d in range(10):
            for i in range(10):
                shutil.copy(src / f"{d}_{spk}_{i}.wav", rec)
    base = digits_recipe_dict()
    base["data"].update(
        root=str(rec.parent),
        out_dir=str(tmp / "data"),
        dev_indices=[5, 6],
        connected={
            "per_split": {"train": 60, "dev": 4, "test": 6},
            "min_words": 2,
            "max_words": 3,
            "gap_seconds": [0.05, 0.2],
        },
    )
    base["model"].update(name="bilstm", hidden=32, layers=1, subsample=3)
    base["train"].update(exp_dir=str(tmp / "bilstm"), epochs=3, batch_seconds=30, lr=0.005, threads=1)
    recipe = tmp / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(base))
    # in-process: the command's own code without three more interpreter start-ups
    assert main(["prepare", str(recipe), "--quiet"]) == 0
    assert main(["train", str(recipe), "--quiet"]) == 0
    assert (
        main(["train", str(recipe), "--quiet", "--set", "model.name=dnn", "--set", f"train.exp_dir={tmp / 'dnn'}"]) == 0
    )
    return tmp / "data", tmp / "bilstm" / "best.pt", tmp / "dnn" / "best.pt"


def test_cli_align_writes_npz_png_textgrid_ctm(tiny_models: tuple[Path, Path, Path], tmp_path: Path, capsys) -> None:
    data, bilstm, _ = tiny_models
    manifest = data / "test.jsonl"
    utts = [json.loads(line) for line in manifest.read_text().splitlines()][:2]
    out = tmp_path / "al"
    assert main(["align", "-m", str(bilstm), "-o", str(out), "--limit", "2", "--quiet", str(manifest)]) == 0
    for u in utts:
        z = np.load(out / f"{u['id']}.npz")
        T, S = z["posteriors"].shape
        assert (
            S == 2 * len(u["text"]) + 1 and z["path"].shape == (T,) and float(z["frame_shift"]) == pytest.approx(0.03)
        )
        assert np.allclose(z["posteriors"].sum(axis=1), 1.0, atol=1e-4)
        assert (out / f"{u['id']}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        grid = parse_textgrid((out / f"{u['id']}.TextGrid").read_text(encoding="utf-8"))
        assert grid["xmax"] == pytest.approx(T * 0.03)
        words = [iv[2] for iv in grid["tiers"]["words"] if iv[2]]
        assert words == u["text"].split()
        assert "".join(iv[2] for iv in grid["tiers"]["tokens"]) == u["text"].replace(" ", "␣")
        ctm = [line.split() for line in (out / f"{u['id']}.ctm").read_text().splitlines()]
        assert [r[4] for r in ctm] == u["text"].split() and all(r[:2] == [u["id"], "1"] for r in ctm)
        tg_words = [iv for iv in grid["tiers"]["words"] if iv[2]]
        assert [float(r[2]) for r in ctm] == pytest.approx([iv[0] for iv in tg_words], abs=1e-3)
    assert len((out / "all.ctm").read_text().splitlines()) == sum(len(u["text"].split()) for u in utts)

    # audio plus --text; an unknown token is one line naming it, exit 2, no traceback
    wav = str(data / utts[0]["audio"])
    assert (
        main(
            [
                "align",
                "-m",
                str(bilstm),
                "-o",
                str(tmp_path / "one"),
                "--text",
                utts[0]["text"],
                "--no-plots",
                "--quiet",
                wav,
            ]
        )
        == 0
    )
    stem = Path(wav).stem
    assert (tmp_path / "one" / f"{stem}.TextGrid").is_file() and not (tmp_path / "one" / f"{stem}.png").exists()
    bad = run_cli(
        "align", "-m", str(bilstm), "-o", str(tmp_path / "bad"), "--text", "one yes", "--quiet", wav, check=False
    )
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and "'y'" in bad.stderr and "Traceback" not in bad.stderr


def test_cli_compare_writes_figure_and_table(tiny_models: tuple[Path, Path, Path], tmp_path: Path, capsys) -> None:
    data, bilstm, dnn = tiny_models
    manifest = data / "test.jsonl"
    second = json.loads(manifest.read_text().splitlines()[1])["id"]
    out = tmp_path / "cmp"
    capsys.readouterr()
    args = [
        "align",
        "--compare",
        str(bilstm),
        "-m",
        str(dnn),
        str(manifest),
        "-o",
        str(out),
        "--utt",
        second,
        "--quiet",
    ]
    assert main([*args, "--name", "DNN", "--name", "BiLSTM"]) == 0
    stdout = capsys.readouterr().out
    assert "blank" in stdout and "BiLSTM" in stdout and "DNN" in stdout
    res = json.loads((out / "compare.json").read_text())
    assert res["utterance"] == second
    rows = res["rows"]
    # -m checkpoints come first, then the positional ones; names follow that order
    assert [(r["name"], r["checkpoint"]) for r in rows] == [("DNN", str(dnn)), ("BiLSTM", str(bilstm))]
    assert rows[0]["delay_s"] == 0 and rows[0]["abs_delay_s"] == 0
    n_utts = len(manifest.read_text().splitlines())
    for r in rows:
        assert r["utterances"] + r["skipped"] == n_utts
        assert (
            0 < r["blank_fraction"] < 1
            and 0 < r["peakiness"] <= 1
            and r["state_entropy"] >= 0
            and r["output_entropy"] > 0
        )
    table = list(csv.DictReader((out / "compare.csv").open()))
    assert [t["name"] for t in table] == ["DNN", "BiLSTM"]
    assert float(table[1]["blank_fraction"]) == pytest.approx(rows[1]["blank_fraction"])
    assert (out / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # an unknown utterance for the figure is a usage error
    assert (
        main(["align", "--compare", str(bilstm), str(dnn), str(manifest), "-o", str(out), "--utt", "nope", "--quiet"])
        == 2
    )
    assert "'nope'" in capsys.readouterr().err
    # one that --limit cuts off says so
    assert (
        main(
            [
                "align",
                "--compare",
                str(bilstm),
                str(dnn),
                str(manifest),
                "-o",
                str(out),
                "--utt",
                second,
                "--limit",
                "1",
                "--quiet",
            ]
        )
        == 2
    )
    assert f"utterance {second!r} is input number 2, beyond --limit 1: raise the limit" in capsys.readouterr().err
