"""The LibriSpeech reader on the real sample in its original layout, the download path on a local archive, and the recipe end to end."""

from __future__ import annotations

import hashlib
import json
import shutil
import tarfile
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, run_cli, shared

from asrkit.config import load_recipe
from asrkit.data.corpora import librispeech
from asrkit.data.prepare import prepare
from asrkit.errors import InputError, WorkError


def _recipe(tmp: Path, root: Path, splits: dict, *sets: str):
    return load_recipe(
        ROOT / "recipes" / "librispeech.yaml",
        [
            f"data.root={root}",
            f"data.out_dir={tmp / 'data'}",
            f"data.splits={json.dumps(splits)}",
            f"train.exp_dir={tmp / 'exp'}",
            *sets,
        ],
    )


def _copy_corpus(tmp: Path) -> Path:
    dst = tmp / "corpus" / "LibriSpeech"
    shutil.copytree(shared("librispeech") / "LibriSpeech", dst)
    return dst.parent


def test_reads_every_utterance_of_the_real_sample_with_its_transcript(tmp_path: Path) -> None:
    root = shared("librispeech")
    r = _recipe(tmp_path, root, {"train": ["dev-clean-2"], "dev": ["test-clean"]})
    out = prepare(r, quiet=True)
    train = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    dev = [json.loads(line) for line in (out / "dev.jsonl").read_text().splitlines()]
    flacs = {p.stem for p in (root / "LibriSpeech").rglob("*.flac")}
    assert {u["id"] for u in train} | {u["id"] for u in dev} == flacs
    assert {u["id"] for u in train}.isdisjoint(u["id"] for u in dev)
    # every transcript line of the corpus is the text of its utterance, normalised (lower case, apostrophes kept)
    for trans in (root / "LibriSpeech").rglob("*.trans.txt"):
        for line in trans.read_text().splitlines():
            uid, text = line.split(" ", 1)
            u = next(x for x in train + dev if x["id"] == uid)
            assert u["text"] == text.lower()
            assert u["speaker"] == uid.split("-")[0]
    assert all(0.5 < u["duration"] < 35 and u["sample_rate"] == 16000 for u in train + dev)
    vocab = (out / "vocab.txt").read_text().split()
    assert set(vocab) <= set("abcdefghijklmnopqrstuvwxyz'") | {"<blank>", "<space>"}


def test_missing_subset_and_broken_transcripts_are_clear_errors(tmp_path: Path) -> None:
    root = _copy_corpus(tmp_path)
    with pytest.raises(InputError, match=r"no LibriSpeech/train-clean-100/ folder.*--download"):
        librispeech.locate(_recipe(tmp_path, root, {"train": ["train-clean-100"], "dev": ["dev-clean-2"]}))
    with pytest.raises(InputError, match="in both the train and the dev manifest"):
        prepare(_recipe(tmp_path, root, {"train": ["dev-clean-2"], "dev": ["dev-clean-2"]}), quiet=True)
    with pytest.raises(InputError, match="needs a 'dev' entry"):
        librispeech.splits_of(_recipe(tmp_path, root, {"train": ["dev-clean-2"]}))
    trans = next((root / "LibriSpeech" / "test-clean").rglob("*.trans.txt"))
    first = trans.read_text().splitlines()[0].split(" ")[0]
    (trans.parent / f"{first}.flac").unlink()
    with pytest.raises(InputError, match=f"lists {first} but {first}.flac is not in"):
        librispeech.scan_subset(root / "LibriSpeech" / "test-clean")
    trans.write_text("not-an-id HELLO\n")
    with pytest.raises(InputError, match=r"trans.txt:1: expected"):
        librispeech.scan_subset(root / "LibriSpeech" / "test-clean")


def test_download_fetches_checks_and_unpacks_each_missing_subset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = shared("librispeech") / "LibriSpeech"
    server = tmp_path / "server"
    server.mkdir()
    archive = server / "test-clean.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(src / "test-clean", arcname="LibriSpeech/test-clean")
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    monkeypatch.setattr(librispeech, "BASE_URL", server.as_uri() + "/")
    monkeypatch.setitem(librispeech.CHECKSUMS, "test-clean", digest)
    test_clean = _recipe(tmp_path, tmp_path, {"train": ["test-clean"], "dev": ["test-clean"]})
    corpus = librispeech.download(tmp_path / "dl", test_clean, quiet=True)
    assert sorted(p.name for p in (corpus / "test-clean").rglob("*.flac")) == sorted(
        p.name for p in (src / "test-clean").rglob("*.flac")
    )
    # a corrupted archive fails its checksum and leaves nothing behind
    monkeypatch.setitem(librispeech.CHECKSUMS, "test-clean", "0" * 64)
    with pytest.raises(WorkError, match="checksum mismatch"):
        librispeech.download(tmp_path / "dl2", test_clean, quiet=True)
    assert not (tmp_path / "dl2" / "LibriSpeech").exists()
    with pytest.raises(InputError, match="unknown LibriSpeech subset 'train-clean-99'"):
        librispeech.download(
            tmp_path / "dl3",
            _recipe(tmp_path, tmp_path, {"train": ["train-clean-99"], "dev": ["dev-clean"]}),
            quiet=True,
        )


def test_recipe_end_to_end_learns_the_real_utterances(tmp_path: Path) -> None:
    """prepare → train → decode → score through the CLI; a tiny model must fit its training utterances.

    A broken pipeline (wrong targets, features or lengths) cannot bring the training CER under 0.6 (it reaches about
    0.3). The sample is 10 training utterances, 58 s: far too little to generalise, enough to show the recipe learns.
    The tiny model stacks frames instead of the recipe's conv front-end, which needs far more steps to leave CTC's
    all-blank plateau (one utterance, 150 steps: CTC loss 0.9 with conv, 0.01 with stacked frames).
    """
    root = shared("librispeech")
    base = yaml.safe_load((ROOT / "recipes" / "librispeech.yaml").read_text())
    base["data"].update(
        root=str(root), out_dir=str(tmp_path / "data"), splits={"train": ["dev-clean-2"], "dev": ["test-clean"]}
    )
    base["model"].update(hidden=96, layers=2, frontend="stack", subsample=3, dropout=0.0)
    base["features"].update(n_mels=40, specaugment=None)
    base["train"].update(
        exp_dir=str(tmp_path / "exp"),
        epochs=40,
        batch_seconds=7,
        lr=0.01,
        average=0,
        weight_decay=0.0,
        warmup=0.2,
        threads=1,
    )
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(base))
    run_cli("prepare", str(recipe), "--quiet")
    run_cli("train", str(recipe), "--quiet")
    hyp = tmp_path / "train.hyp"
    run_cli(
        "decode",
        "--model",
        str(tmp_path / "exp" / "last.pt"),
        "--beam",
        "4",
        "--output",
        str(hyp),
        "--quiet",
        str(tmp_path / "data" / "train.jsonl"),
    )
    rep = json.loads(
        run_cli("score", "--ref", str(tmp_path / "data" / "train.jsonl"), "--hyp", str(hyp), "--json").stdout
    )
    assert (
        rep["n_utterances"] == len(list((root / "LibriSpeech" / "dev-clean-2").rglob("*.flac"))) and not rep["missing"]
    )
    assert rep["cer"] < 0.6, rep["cer"]
