"""The feature store (feats/<split>/ shards read through memory maps), `prepare --jobs`, and a preparation that is
killed half way and resumed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from asrkit.assets import fsdd_root
from asrkit.config import recipe_from_dict
from asrkit.data import featstore
from asrkit.data import prepare as prep
from asrkit.data.featstore import FeatureStore, write_store
from asrkit.data.prepared import load_split
from asrkit.data.loader import FeatureDataset
from asrkit.data.manifest import Utterance
from asrkit.errors import InputError
from asrkit.text import CharTokenizer

from conftest import digits_recipe_dict


def _feats(sizes=(7, 1, 30, 12, 3)) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {f"u{i}": (torch.randn(n, 5, generator=g) * 3 + 1).half() for i, n in enumerate(sizes)}


@pytest.fixture
def small_shards(monkeypatch):
    monkeypatch.setattr(featstore, "SHARD_UTTERANCES", 2)


def test_store_round_trip_keeps_ids_order_and_values(tmp_path: Path, small_shards) -> None:
    feats = _feats()
    write_store(tmp_path / "train", feats)
    assert sorted(p.name for p in (tmp_path / "train").glob("shard-*.npy")) == [f"shard-0000{k}.npy" for k in range(3)]
    store = FeatureStore(tmp_path / "train")
    assert list(store) == list(feats) and len(store) == 5 and store.dims == 5 and "u3" in store and "x" not in store
    assert all(torch.equal(store[k], feats[k]) and store[k].dtype == torch.float16 for k in feats)
    assert store.frames("u2") == 30
    assert isinstance(store.rows("u2").base, np.memmap) or isinstance(store.rows("u2"), np.memmap)  # mapped, not read


def test_empty_split_round_trips(tmp_path: Path) -> None:
    write_store(tmp_path / "dev", {})
    assert len(FeatureStore(tmp_path / "dev")) == 0


def test_mixed_dims_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="different feature shapes"):
        write_store(tmp_path / "x", {"a": torch.zeros(3, 5), "b": torch.zeros(3, 6)})


def test_incomplete_or_broken_stores_give_one_clear_error(tmp_path: Path, small_shards) -> None:
    write_store(tmp_path / "s", _feats())
    (tmp_path / "s" / "shard-00001.json").write_text("{")  # a shard index cut short
    with pytest.raises(InputError, match="shard-00001 is missing or unreadable; run `asrkit prepare` again"):
        FeatureStore(tmp_path / "s")
    (tmp_path / "s" / "index.json").unlink()
    with pytest.raises(InputError, match="is incomplete"):
        FeatureStore(tmp_path / "s")
    (tmp_path / "s" / "index.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(InputError, match="not an asrkit feature store"):
        FeatureStore(tmp_path / "s")


def _utts(feats) -> list[Utterance]:
    return [Utterance(k, f"{k}.wav", len(v) / 100, 16000, "ab"[i % 2]) for i, (k, v) in enumerate(feats.items())]


def test_dataset_from_a_store_reads_the_same_batches_through_a_mapped_file(tmp_path: Path, small_shards) -> None:
    feats = _feats()
    write_store(tmp_path / "train", feats)
    tok = CharTokenizer.build(["ab"])
    stats = {"mean": torch.zeros(5), "std": torch.ones(5) * 2, "frames": 53}
    mem = FeatureDataset(_utts(feats), feats, tok, "prior_level", stats)
    mapped = FeatureDataset(_utts(feats), FeatureStore(tmp_path / "train"), tok, "prior_level", stats)
    assert isinstance(mapped._packed, np.memmap) and not isinstance(mem._packed, np.memmap)
    a, b = mem.padded([2, 0, 4]), mapped.padded([2, 0, 4])
    assert torch.equal(a.feats, b.feats) and torch.equal(a.lengths, b.lengths) and torch.equal(a.targets, b.targets)
    assert torch.equal(mem[1][0], mapped[1][0])
    norm = list((tmp_path / "train").glob("norm-*.npy"))
    assert len(norm) == 1
    # made once: a second dataset maps the same file; other statistics make a new one in its place
    before = norm[0].stat().st_mtime_ns
    FeatureDataset(_utts(feats), FeatureStore(tmp_path / "train"), tok, "prior_level", stats)
    assert norm[0].stat().st_mtime_ns == before
    FeatureDataset(_utts(feats), FeatureStore(tmp_path / "train"), tok, "prior_level", {**stats, "mean": torch.ones(5)})
    assert [p.name for p in (tmp_path / "train").glob("norm-*.npy")] != [norm[0].name]
    assert len(list((tmp_path / "train").glob("norm-*.npy"))) == 1


# ---------------------------------------------------------------- prepare: shards, workers, resume


@pytest.fixture
def fsdd_words(tmp_path: Path) -> Path:
    """One embedded FSDD speaker's 0-14 takes of every digit."""
    dst = tmp_path / "fsdd" / "recordings"
    dst.mkdir(parents=True)
    for d in range(10):
        for i in range(15):
            shutil.copy(fsdd_root() / "recordings" / f"{d}_jackson_{i}.flac", dst)
    return dst.parent


def _recipe(root: Path, out: Path):
    base = digits_recipe_dict()
    base["data"].update(root=str(root), out_dir=str(out), connected={"per_split": {"train": 30, "dev": 6, "test": 6}})
    return recipe_from_dict(base)


def _store_files(data: Path) -> dict[str, bytes]:
    return {str(p.relative_to(data)): p.read_bytes() for p in sorted((data / "feats").rglob("*")) if p.is_file()}


def test_a_killed_preparation_resumes_with_only_the_missing_shards(tmp_path, fsdd_words, monkeypatch) -> None:
    monkeypatch.setattr(featstore, "SHARD_UTTERANCES", 16)
    clean = tmp_path / "clean"
    prep.prepare(_recipe(fsdd_words, clean), quiet=True, jobs=1)
    total = sum(len(list((clean / "feats" / s).glob("shard-*.npy"))) for s in ("train", "dev", "test", "test_isolated"))
    assert total > 6

    calls = []
    real = prep.feature_shard

    def killed_at_half(*args):
        if len(calls) == total // 2:
            raise KeyboardInterrupt  # Ctrl-C, or the kill, half way through the features
        calls.append(args[2:4])
        return real(*args)

    monkeypatch.setattr(prep, "feature_shard", killed_at_half)
    data = tmp_path / "data"
    with pytest.raises(KeyboardInterrupt):
        prep.prepare(_recipe(fsdd_words, data), quiet=True, jobs=1)
    assert not (data / "prepare.json").exists() and (data / ".partial" / "manifests.json").is_file()
    first = list(calls)
    calls.clear()
    monkeypatch.setattr(prep, "feature_shard", lambda *a: (calls.append(a[2:4]), real(*a))[1])
    prep.prepare(_recipe(fsdd_words, data), quiet=True, jobs=1)
    assert len(first) == total // 2 and len(calls) == total - total // 2 and not set(first) & set(calls)
    assert not (data / ".partial").exists()
    assert _store_files(data) == _store_files(clean)  # the same shards as a run that was never stopped
    assert torch.equal(torch.load(data / "cmvn.pt")["mean"], torch.load(clean / "cmvn.pt")["mean"])


def test_a_resumed_preparation_does_not_render_the_corpus_again(tmp_path, fsdd_words, monkeypatch) -> None:
    from asrkit.data.corpora import digits

    monkeypatch.setattr(featstore, "SHARD_UTTERANCES", 64)
    monkeypatch.setattr(prep, "feature_shard", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt))
    data = tmp_path / "data"
    with pytest.raises(KeyboardInterrupt):
        prep.prepare(_recipe(fsdd_words, data), quiet=True, jobs=1)
    monkeypatch.undo()
    monkeypatch.setattr(digits, "prepare", lambda *a, **k: pytest.fail("the corpus was prepared again"))
    prep.prepare(_recipe(fsdd_words, data), quiet=True, jobs=1)
    assert (data / "prepare.json").is_file()
    # other settings: the build is not resumed, it starts over
    monkeypatch.undo()
    other = _recipe(fsdd_words, data)
    other.data.seed = 3
    rendered = []
    real = digits.prepare
    monkeypatch.setattr(digits, "prepare", lambda *a, **k: rendered.append(1) or real(*a, **k))
    prep.prepare(other, quiet=True, jobs=1)
    assert rendered == [1]


def test_two_workers_write_what_one_does(tmp_path, fsdd_words, monkeypatch) -> None:
    monkeypatch.setattr(featstore, "SHARD_UTTERANCES", 40)
    one, two = tmp_path / "one", tmp_path / "two"
    prep.prepare(_recipe(fsdd_words, one), quiet=True, jobs=1)
    prep.prepare(_recipe(fsdd_words, two), quiet=True, jobs=2)
    assert _store_files(one) == _store_files(two)
    assert torch.equal(torch.load(one / "cmvn.pt")["std"], torch.load(two / "cmvn.pt")["std"])


def test_a_workers_error_is_one_line_and_keeps_the_finished_shards(tmp_path, fsdd_words, monkeypatch) -> None:
    monkeypatch.setattr(featstore, "SHARD_UTTERANCES", 40)
    data = tmp_path / "data"
    real = prep.feature_shard
    monkeypatch.setattr(prep, "feature_shard", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):  # stopped once the manifests are written
        prep.prepare(_recipe(fsdd_words, data), quiet=True, jobs=1)
    monkeypatch.setattr(prep, "feature_shard", real)
    bad = sorted((data / ".partial" / "audio" / "train").glob("*.flac"))[-1]
    bad.write_bytes(b"not audio")  # an utterance that cannot be read, in the last training shard
    with pytest.raises(InputError, match=bad.stem):  # raised in a worker process, reported here
        prep.prepare(_recipe(fsdd_words, data), quiet=True, jobs=2)
    assert not (data / "prepare.json").exists()
    assert (data / ".partial" / "feats" / "dev" / "shard-00000.json").is_file() or list(
        (data / ".partial" / "feats").rglob("shard-*.json")
    )


def test_jobs_below_one_are_refused(tmp_path, fsdd_words) -> None:
    with pytest.raises(InputError, match="--jobs must be at least 1"):
        prep.prepare(_recipe(fsdd_words, tmp_path / "d"), quiet=True, jobs=0)


def test_a_data_dir_prepared_before_the_store_still_loads(tmp_path) -> None:
    """feats/<split>.pt, the packed format before the store, is read into memory as it was."""
    feats = _feats()
    (tmp_path / "feats").mkdir()
    torch.save(
        {
            "format": "asrkit-features-1",
            "ids": list(feats),
            "lengths": torch.tensor([len(v) for v in feats.values()]),
            "data": torch.cat(list(feats.values())),
        },
        tmp_path / "feats" / "train.pt",
    )
    from asrkit.data.manifest import write_manifest

    write_manifest(tmp_path / "train.jsonl", _utts(feats))
    utts, back = load_split(tmp_path, "train")
    assert [u.id for u in utts] == list(feats) and all(torch.equal(back[k], feats[k]) for k in feats)
