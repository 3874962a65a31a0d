"""End to end through the installed CLI: prepare → train (tiny) → decode → align → score on real FSDD speech."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import soundfile as sf
import yaml

from conftest import digits_recipe_dict, run_cli


def _tiny_recipe(tmp: Path, root: Path) -> Path:
    base = digits_recipe_dict()
    base["data"].update(
        root=str(root),
        out_dir=str(tmp / "data"),
        dev_indices=[5, 6, 7, 8, 9],
        connected={
            "per_split": {"train": 120, "dev": 10, "test": 10},
            "min_words": 2,
            "max_words": 4,
            "gap_seconds": [0.05, 0.2],
        },
    )
    base["features"]["n_mels"] = 40
    base["model"].update(name="bilstm", hidden=64, layers=1, conv_channels=8, subsample=3)
    base["train"].update(exp_dir=str(tmp / "exp"), epochs=4, batch_seconds=40, lr=0.004)
    p = tmp / "tiny.yaml"
    p.write_text(yaml.safe_dump(base))
    return p


def test_digits_pipeline_end_to_end(tmp_path: Path, fsdd_slice: Path) -> None:
    recipe = _tiny_recipe(tmp_path, fsdd_slice)
    data, exp = tmp_path / "data", tmp_path / "exp"

    run_cli("prepare", str(recipe), "--quiet")
    for name in ("train", "dev", "test", "test_isolated"):
        assert (data / f"{name}.jsonl").is_file()
        assert (data / "feats" / name / "index.json").is_file()
    test_ids = [json.loads(line)["id"] for line in (data / "test.jsonl").read_text().splitlines()]
    assert len(test_ids) == 10

    run_cli("train", str(recipe), "--quiet")
    rows = [json.loads(line) for line in (exp / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    # a broken model, loss or optimiser would not reduce the CTC loss this much in four tiny epochs (it stays near 1x);
    # measured 0.35x and 0.34x (train.seed 0 and 1), half the bound
    assert rows[-1]["train_loss"] < 0.7 * rows[0]["train_loss"]
    for f in ("best.pt", "last.pt", "curves.png", "config.yaml"):
        assert (exp / f).is_file(), f

    # a second train call on a finished run resumes, sees nothing left to do, and keeps the metrics
    run_cli("train", str(recipe), "--quiet")
    assert len((exp / "metrics.jsonl").read_text().splitlines()) == 4

    hyp = tmp_path / "test.hyp"
    run_cli(
        "decode",
        "--model",
        str(exp / "best.pt"),
        "--beam",
        "10",
        "--output",
        str(hyp),
        "--quiet",
        str(data / "test.jsonl"),
    )
    lines = hyp.read_text().splitlines()
    assert [line.split("\t")[0] for line in lines] == test_ids
    assert all(len(line.split("\t")) == 2 for line in lines)

    lex = run_cli(
        "decode",
        "--model",
        str(exp / "best.pt"),
        "--lexicon",
        str(data / "train.jsonl"),
        "--quiet",
        str(data / "test.jsonl"),
    ).stdout
    words = {w for line in (data / "train.jsonl").read_text().splitlines() for w in json.loads(line)["text"].split()}
    assert [line.split("\t")[0] for line in lex.splitlines()] == test_ids
    # constrained decoding can only produce training words
    assert all(w in words for line in lex.splitlines() for w in line.split("\t")[1].split())

    # JSON lines: the n-best (best first, the first one is the answer), token and word times in
    # seconds inside the utterance; the CTM holds the same words
    ctm = tmp_path / "test.ctm"
    out = run_cli(
        "decode", "--model", str(exp / "best.pt"), "--json", "--ctm", str(ctm), "--quiet", str(data / "test.jsonl")
    ).stdout
    recs = [json.loads(line) for line in out.splitlines()]
    durations = {
        json.loads(line)["id"]: json.loads(line)["duration"] for line in (data / "test.jsonl").read_text().splitlines()
    }
    assert [r["id"] for r in recs] == test_ids
    assert dict(line.split("\t") for line in lines) == {r["id"]: r["text"] for r in recs}
    ctm_rows = [row.split() for row in ctm.read_text().splitlines()]
    assert any(r["words"] for r in recs)
    for r in recs:
        scores = [h["score"] for h in r["nbest"]]
        assert 1 <= len(scores) <= 10 and scores == sorted(scores, reverse=True)
        assert r["nbest"][0]["text"] == r["text"] and len({h["text"] for h in r["nbest"]}) == len(scores)
        assert [w["label"] for w in r["words"]] == r["text"].split()
        assert [t["label"] for t in r["token_times"]] == r["tokens"]
        times = [x for w in r["words"] for x in (w["start"], w["end"])]
        assert times == sorted(times) and all(0 <= x <= durations[r["id"]] + 0.05 for x in times)
        assert [(row[2], row[4]) for row in ctm_rows if row[0] == r["id"]] == [
            (f"{w['start']:.3f}", w["label"]) for w in r["words"]
        ]

    # a word LM built from the training texts, fused by the LM beam search (JSON output included)
    lm = tmp_path / "lm.arpa"
    run_cli("lm", "build", str(data / "train.jsonl"), "-o", str(lm), "--order", "3")
    with_lm = run_cli(
        "decode",
        "--model",
        str(exp / "best.pt"),
        "--lm",
        str(lm),
        "--alpha",
        "1.0",
        "--json",
        "--quiet",
        str(data / "test.jsonl"),
    ).stdout
    lm_recs = [json.loads(line) for line in with_lm.splitlines()]
    assert [r["id"] for r in lm_recs] == test_ids
    assert all(
        r["nbest"][0]["text"] == r["text"] and [w["label"] for w in r["words"]] == r["text"].split() for r in lm_recs
    )
    for bad, msg in (
        (["--lm", str(lm), "--lexicon", str(data / "train.jsonl")], "give one of them"),
        (["--hotword", "nine"], "give an --lm too"),
        (["--lm", str(tmp_path / "missing.arpa")], "not found"),
    ):
        res = run_cli("decode", "--model", str(exp / "best.pt"), *bad, "--quiet", str(data / "test.jsonl"), check=False)
        assert res.returncode == 2 and msg in res.stderr and "Traceback" not in res.stderr, res.stderr

    greedy = run_cli(
        "decode", "--model", str(exp / "best.pt"), "--beam", "1", "--quiet", str(data / "test.jsonl")
    ).stdout
    assert [line.split("\t")[0] for line in greedy.splitlines()] == test_ids

    out = tmp_path / "align"
    run_cli(
        "align", "--model", str(exp / "best.pt"), "--out", str(out), "--limit", "3", "--quiet", str(data / "test.jsonl")
    )
    npz = sorted(out.glob("*.npz"))
    assert len(npz) == 3 and len(list(out.glob("*.png"))) == 3
    with np.load(npz[0]) as z:
        post, states, path = z["posteriors"], z["states"], z["path"]
        assert post.shape == (len(path), len(states))
        np.testing.assert_allclose(post.sum(1), 1.0, atol=1e-4)
        assert np.all(np.diff(path) >= 0)

    res = run_cli("score", "--ref", str(data / "test.jsonl"), "--hyp", str(hyp), "--json")
    report = json.loads(res.stdout)
    assert report["n_utterances"] == 10 and report["missing"] == [] and report["extra"] == []
    assert 0.0 <= report["wer"] and 0.0 <= report["cer"] <= 1.5


def test_decode_accepts_any_rate_stereo_and_directories(tmp_path: Path, fsdd_slice: Path) -> None:
    recipe = _tiny_recipe(tmp_path, fsdd_slice)
    run_cli("prepare", str(recipe), "--quiet", "--set", "train.epochs=1")
    run_cli("train", str(recipe), "--quiet", "--set", "train.epochs=1")
    ckpt = tmp_path / "exp" / "best.pt"
    wav, sr = sf.read(fsdd_slice / "recordings" / "3_jackson_0.wav", dtype="float32")
    audio = tmp_path / "audio"
    audio.mkdir()
    sf.write(audio / "mono8k.wav", wav, sr)
    sf.write(audio / "stereo8k.flac", np.stack([wav, wav], 1), sr)
    import torch
    import torchaudio.functional as AF

    up = AF.resample(torch.from_numpy(wav), sr, 44100).numpy()
    sf.write(audio / "mono44k.wav", up, 44100, subtype="FLOAT")
    res = run_cli("decode", "--model", str(ckpt), "--quiet", str(audio))
    ids = [line.split("\t")[0] for line in res.stdout.splitlines()]
    # no --model: $ASRKIT_MODEL, else the newest exp/*/best.pt under the working directory; it says which
    env = {**os.environ, "ASRKIT_MODEL": str(ckpt)}
    by_env = run_cli("decode", "--quiet", str(audio), env=env, cwd=tmp_path / "audio")
    assert by_env.stdout == res.stdout and "from $ASRKIT_MODEL" in by_env.stderr
    env.pop("ASRKIT_MODEL")
    work = tmp_path / "work"
    for name, age in (("old", 100.0), ("new", 0.0)):
        (work / "exp" / name).mkdir(parents=True)
        shutil.copy(ckpt, work / "exp" / name / "best.pt")
        t = ckpt.stat().st_mtime - age
        os.utime(work / "exp" / name / "best.pt", (t, t))
    newest = run_cli("decode", "--quiet", str(audio), env=env, cwd=work)
    assert newest.stdout == res.stdout and str(Path("exp") / "new" / "best.pt") in newest.stderr
    none = run_cli("decode", "--quiet", str(audio), env=env, cwd=audio, check=False)
    assert none.returncode != 0 and "no model given" in none.stderr and "Traceback" not in none.stderr
    assert ids == ["mono44k", "mono8k", "stereo8k"]
    # mono and its stereo copy are the same signal: the same transcript
    texts = dict(line.split("\t") for line in res.stdout.splitlines())
    assert texts["mono8k"] == texts["stereo8k"]
