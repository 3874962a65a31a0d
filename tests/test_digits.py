"""asrkit.data.corpora.digits (FSDD) and asrkit.data.prepare on a small fixture in the real FSDD layout."""

from __future__ import annotations

import json
import random
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from asrkit.assets import fsdd_root
from asrkit.config import recipe_from_dict
from asrkit.data.corpora import digits, get_corpus
from asrkit.data.manifest import read_manifest
from asrkit.data.featstore import FeatureStore
from asrkit.data.prepare import prepare
from asrkit.data.prepared import load_split
from asrkit.errors import InputError
from asrkit.text import CharTokenizer

SHARED_FSDD = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "fsdd"
SPEAKERS = ("george", "jackson")
DIGITS = (0, 1, 2)
INDICES = range(12)


def _shared_recordings() -> Path:
    rec = SHARED_FSDD / "recordings"
    if not rec.is_dir():
        pytest.skip(f"{rec.resolve()} is absent: the FSDD fixture is copied from the shared recordings")
    return rec


def _make_fixture(dst_root: Path, speakers=SPEAKERS, digit_set=DIGITS, indices=INDICES) -> Path:
    src = _shared_recordings()
    rec = dst_root / "recordings"
    rec.mkdir(parents=True)
    for spk in speakers:
        for d in digit_set:
            for i in indices:
                shutil.copy(src / f"{d}_{spk}_{i}.wav", rec)
    (dst_root / "README.md").write_text("fixture\n")
    return dst_root


@pytest.fixture(scope="module")
def fsdd_fixture(tmp_path_factory) -> Path:
    return _make_fixture(tmp_path_factory.mktemp("fsdd"))


@pytest.fixture(scope="module")
def small_fixture(tmp_path_factory) -> Path:
    """One speaker, two digits: 24 recordings, enough for all three splits."""
    return _make_fixture(tmp_path_factory.mktemp("fsdd_small"), speakers=("jackson",), digit_set=(0, 1))


def _recipe(root: Path | None = None, out: Path | None = None, **data):
    d = {
        "root": str(root) if root else None,
        "out_dir": str(out) if out else None,
        "connected": {"per_split": {"train": 3, "dev": 2, "test": 2}, "min_words": 2, "max_words": 3},
        **data,
    }
    return recipe_from_dict({"name": "digits_test", "data": d, "features": {"n_mels": 40}})


# ---------------------------------------------------------------- scanning and splits


def test_scan_parses_names(fsdd_fixture):
    recs = digits.scan(fsdd_fixture / "recordings")
    assert len(recs) == len(SPEAKERS) * len(DIGITS) * len(INDICES)
    r = next(r for r in recs if r.path.name == "2_jackson_11.wav")
    assert (r.digit, r.speaker, r.index, r.id) == (2, "jackson", 11, "2_jackson_11")
    # README.md is ignored
    assert all(r.path.suffix == ".wav" for r in recs)


def test_scan_empty_folder(tmp_path):
    with pytest.raises(InputError, match="no FSDD recordings"):
        digits.scan(tmp_path)


def test_official_split(fsdd_fixture):
    recs = digits.scan(fsdd_fixture / "recordings")
    splits = digits.split_recordings(recs, _recipe())
    assert {r.index for r in splits["test"]} == {0, 1, 2, 3, 4}
    assert {r.index for r in splits["dev"]} == {5, 6, 7, 8, 9}
    assert {r.index for r in splits["train"]} == {10, 11}
    assert sum(len(v) for v in splits.values()) == len(recs)
    assert len(splits["test"]) == 30 and len(splits["dev"]) == 30 and len(splits["train"]) == 12
    # both speakers in every split
    assert all({r.speaker for r in v} == set(SPEAKERS) for v in splits.values())


def test_official_split_custom_dev_indices(fsdd_fixture):
    recs = digits.scan(fsdd_fixture / "recordings")
    splits = digits.split_recordings(recs, _recipe(dev_indices=[4, 10]))
    assert {r.index for r in splits["test"]} == {0, 1, 2, 3, 4}  # the test rule wins over dev_indices
    assert {r.index for r in splits["dev"]} == {10}
    assert {r.index for r in splits["train"]} == {5, 6, 7, 8, 9, 11}


def test_speaker_split(fsdd_fixture):
    recs = digits.scan(fsdd_fixture / "recordings")
    splits = digits.split_recordings(recs, _recipe(test_speakers=["george"]))
    george = [r for r in recs if r.speaker == "george"]
    assert sorted(r.id for r in splits["test"]) == sorted(r.id for r in george)
    assert all(r.speaker != "george" for r in splits["train"] + splits["dev"])
    assert {r.index for r in splits["dev"]} == {5, 6, 7, 8, 9}
    assert {r.index for r in splits["train"]} == {0, 1, 2, 3, 4, 10, 11}


def test_unknown_test_speaker(fsdd_fixture):
    recs = digits.scan(fsdd_fixture / "recordings")
    with pytest.raises(InputError) as e:
        digits.split_recordings(recs, _recipe(test_speakers=["george", "nobody"]))
    assert "nobody" in str(e.value)
    assert "george" in str(e.value) and "jackson" in str(e.value)  # the speakers that are present


def test_empty_split_is_an_error(fsdd_fixture):
    recs = digits.scan(fsdd_fixture / "recordings")
    with pytest.raises(InputError, match="dev split is empty"):
        digits.split_recordings(recs, _recipe(dev_indices=[]))


def test_count_work(fsdd_fixture):
    assert digits.count_work(fsdd_fixture / "recordings", _recipe()) == 72 + 3 + 2 + 2


def test_get_corpus():
    assert get_corpus("digits") is digits
    with pytest.raises(InputError, match="unknown corpus 'nope'"):
        get_corpus("nope")


# ---------------------------------------------------------------- prepare


@pytest.fixture(scope="module")
def prepared(fsdd_fixture, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("prepared") / "data"
    got = prepare(_recipe(fsdd_fixture, out), quiet=True)
    assert got == out
    return out


def test_prepare_writes_all_outputs(prepared):
    for name in ("train", "dev", "test", "test_isolated"):
        assert (prepared / f"{name}.jsonl").is_file()
        assert (prepared / "feats" / name / "index.json").is_file()
    for name in ("vocab.txt", "cmvn.pt", "prepare.json"):
        assert (prepared / name).is_file()
    counts = json.loads((prepared / "prepare.json").read_text())["counts"]
    assert {k: v["utterances"] for k, v in counts.items()} == {
        "train": 12 + 3,
        "dev": 30 + 2,
        "test": 2,
        "test_isolated": 30,
    }


def test_prepare_manifests(prepared):
    train = read_manifest(prepared / "train.jsonl")
    test = read_manifest(prepared / "test.jsonl")
    iso = read_manifest(prepared / "test_isolated.jsonl")
    dev = read_manifest(prepared / "dev.jsonl")
    assert all(u.extra.get("kind") == "connected" for u in test)
    assert all("kind" not in u.extra for u in iso)
    assert {u.id for u in iso} == {f"{d}_{s}_{i}" for d in DIGITS for s in SPEAKERS for i in range(5)}
    assert sum(u.extra.get("kind") == "connected" for u in train) == 3
    assert sum(u.extra.get("kind") == "connected" for u in dev) == 2
    u = next(u for u in train if u.id == "1_george_10")
    assert (u.text, u.speaker, u.sample_rate) == ("one", "george", 16000)
    # audio paths are stored relative to the manifest, resolved to existing files on reading
    raw = (prepared / "train.jsonl").read_text().splitlines()[0]
    assert not Path(json.loads(raw)["audio"]).is_absolute()
    assert all(Path(u.audio).is_absolute() and Path(u.audio).is_file() for u in train + dev + test + iso)


def test_prepare_utterances_match_their_audio(prepared):
    utts = [u for name in ("train", "dev", "test", "test_isolated") for u in read_manifest(prepared / f"{name}.jsonl")]
    for u in utts:
        words = u.text.split()
        assert words and all(w in digits.WORDS[: max(DIGITS) + 1] for w in words), u.text
        if u.extra.get("kind") == "connected":
            assert 2 <= len(words) <= 3
            assert u.id.endswith("_" + u.speaker)
        else:
            assert len(words) == 1 and words[0] == digits.WORDS[int(u.id[0])]
        info = sf.info(u.audio)
        assert info.samplerate == 16000 and u.sample_rate == 16000
        assert u.duration == pytest.approx(info.frames / info.samplerate, abs=1e-9)


def test_isolated_audio_is_the_resampled_original(prepared, fsdd_fixture):
    (u,) = [u for u in read_manifest(prepared / "test_isolated.jsonl") if u.id == "2_jackson_3"]
    orig, sr = sf.read(fsdd_fixture / "recordings" / "2_jackson_3.wav")
    assert sr == 8000
    assert abs(sf.info(u.audio).frames - 2 * len(orig)) <= 1


def test_prepare_vocab_features_and_cmvn(prepared):
    tok = CharTokenizer.load(prepared / "vocab.txt")
    # characters of "zero one two" with the blank and the space
    assert tok.symbols[1:] == sorted(set("zero one two"))
    for name in ("train", "dev", "test", "test_isolated"):
        utts, feats = load_split(prepared, name)
        assert set(feats) == {u.id for u in utts}
        for u in utts:
            f = feats[u.id]
            assert f.dtype == torch.float16 and f.shape[1] == 40
            assert f.shape[0] == 1 + sf.info(u.audio).frames // 160
            tok.encode(u.text, u.id)  # every text is covered by the train vocabulary
    stats = torch.load(prepared / "cmvn.pt", weights_only=True)
    train_utts, train_feats = load_split(prepared, "train")
    allf = torch.cat([train_feats[u.id].float() for u in train_utts])
    assert stats["frames"] == allf.shape[0]
    assert torch.allclose(stats["mean"], allf.mean(0), atol=2e-2)
    assert torch.allclose(stats["std"], allf.std(0, unbiased=False), atol=2e-2)


def test_load_split_missing(tmp_path):
    with pytest.raises(InputError, match="run `asrkit prepare` first"):
        load_split(tmp_path, "train")


SMALL = {"per_split": {"train": 1, "dev": 1, "test": 2}, "min_words": 2, "max_words": 2}


def test_prepare_skips_when_done_and_redoes_on_change(small_fixture, tmp_path):
    out = tmp_path / "data"
    prepare(_recipe(small_fixture, out, connected=SMALL), quiet=True)
    m = out / "train.jsonl"

    def stamp() -> tuple[int, int]:
        s = m.stat()
        return s.st_ino, s.st_mtime_ns

    first = stamp()
    first_text = (out / "test.jsonl").read_text()
    prepare(_recipe(small_fixture, out, connected=SMALL), quiet=True)
    assert stamp() == first  # skipped: nothing rewritten
    # a setting that touches neither data nor features (the model) does not redo the work
    r = _recipe(small_fixture, out, connected=SMALL)
    r.model.hidden = 7
    prepare(r, quiet=True)
    assert stamp() == first
    # a changed data setting redoes it
    prepare(_recipe(small_fixture, out, connected=SMALL, seed=1), quiet=True)
    assert stamp() != first
    assert (out / "test.jsonl").read_text() != first_text
    assert json.loads((out / "prepare.json").read_text())["fingerprint"]["data"]["seed"] == 1
    # force redoes it too
    again = stamp()
    prepare(_recipe(small_fixture, out, connected=SMALL, seed=1), force=True, quiet=True)
    assert stamp() != again


def test_prepare_is_deterministic(small_fixture, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    prepare(_recipe(small_fixture, a, connected=SMALL), quiet=True)
    prepare(_recipe(small_fixture, b, connected=SMALL), quiet=True)
    for name in ("train", "dev", "test", "test_isolated"):
        ua = [(u.id, u.text, u.duration) for u in read_manifest(a / f"{name}.jsonl")]
        ub = [(u.id, u.text, u.duration) for u in read_manifest(b / f"{name}.jsonl")]
        assert ua == ub and ua
    fa, fb = FeatureStore(a / "feats" / "test"), FeatureStore(b / "feats" / "test")
    assert all(torch.equal(fa[k], fb[k]) for k in fa)


# ---------------------------------------------------------------- locate, embedded copy, download


def test_locate_prefers_data_root(fsdd_fixture, tmp_path, monkeypatch):
    env = _make_fixture(tmp_path / "env" / "fsdd")
    monkeypatch.setenv("ASRKIT_DATA", str(env.parent))
    assert digits.locate(_recipe(fsdd_fixture)) == fsdd_fixture / "recordings"
    # data.root may point at the recordings folder itself
    assert digits.locate(_recipe(fsdd_fixture / "recordings")) == fsdd_fixture / "recordings"


def test_locate_uses_asrkit_data(tmp_path, monkeypatch):
    env = _make_fixture(tmp_path / "env" / "fsdd")
    monkeypatch.setenv("ASRKIT_DATA", str(env.parent))
    assert digits.locate(_recipe()) == env / "recordings"


def test_locate_falls_back_to_embedded_copy(tmp_path, monkeypatch):
    monkeypatch.delenv("ASRKIT_DATA", raising=False)
    assert digits.locate(_recipe()) == Path(fsdd_root()) / "recordings"
    monkeypatch.setenv("ASRKIT_DATA", str(tmp_path))  # no fsdd/ there
    assert digits.locate(_recipe()) == Path(fsdd_root()) / "recordings"


def test_locate_bad_data_root(tmp_path):
    with pytest.raises(InputError) as e:
        digits.locate(_recipe(tmp_path))
    assert str(tmp_path) in str(e.value) and "data.root" in str(e.value)


def test_embedded_copy():
    rec = Path(fsdd_root()) / "recordings"
    files = sorted(rec.iterdir())
    assert len(files) == 2000
    assert all(p.suffix == ".flac" for p in files)
    recs = digits.scan(rec)
    assert len(recs) == 2000
    assert {r.speaker for r in recs} == {"george", "jackson", "nicolas", "yweweler"}
    assert {(r.speaker, r.digit, r.index) for r in recs} == {
        (s, d, i) for s in ("george", "jackson", "nicolas", "yweweler") for d in range(10) for i in range(50)
    }
    for p in random.Random(0).sample(files, 40):
        info = sf.info(str(p))
        assert (info.samplerate, info.channels, info.format) == (8000, 1, "FLAC")
    assert (Path(fsdd_root()) / "LICENSE").is_file()


def test_embedded_copy_matches_shared_wavs():
    shared = _shared_recordings()
    rec = Path(fsdd_root()) / "recordings"
    names = random.Random(1).sample(sorted(p.stem for p in rec.iterdir()), 8)
    for stem in names:
        a, sra = sf.read(rec / f"{stem}.flac", dtype="int16", always_2d=True)
        b, srb = sf.read(shared / f"{stem}.wav", dtype="int16", always_2d=True)
        assert sra == srb == 8000
        np.testing.assert_array_equal(a.mean(axis=1), b.mean(axis=1), err_msg=stem)


def _zip_fixture(tmp_path: Path, names: list[str], top: str = "free-spoken-digit-dataset-x") -> Path:
    src = _shared_recordings()
    z = tmp_path / "archive.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr(f"{top}/README.md", "fsdd\n")
        for n in names:
            zf.write(src / n, f"{top}/recordings/{n}")
    return z


def test_download_from_local_archive(tmp_path, monkeypatch):
    names = ["0_george_0.wav", "1_jackson_7.wav", "2_george_11.wav"]
    z = _zip_fixture(tmp_path, names)
    monkeypatch.setattr(digits, "ARCHIVE_URL", z.as_uri())
    dest = tmp_path / "dest"
    got = digits.download(dest, quiet=True)
    assert got == dest / "free-spoken-digit-dataset-x" / "recordings"
    assert sorted(p.name for p in got.iterdir()) == sorted(names)
    src = _shared_recordings()
    for n in names:
        assert (got / n).read_bytes() == (src / n).read_bytes()
    # a second call finds the recordings and does not download again
    monkeypatch.setattr(digits, "ARCHIVE_URL", (tmp_path / "gone.zip").as_uri())
    assert digits.download(dest, quiet=True) == got


def test_locate_with_download(tmp_path, monkeypatch):
    z = _zip_fixture(tmp_path, ["0_george_0.wav"])
    monkeypatch.setattr(digits, "ARCHIVE_URL", z.as_uri())
    root = tmp_path / "root"
    assert (
        digits.locate(_recipe(root), allow_download=True, quiet=True)
        == root / "free-spoken-digit-dataset-x" / "recordings"
    )


def test_download_archive_without_recordings(tmp_path, monkeypatch):
    z = tmp_path / "empty.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("something/else.txt", "x")
    monkeypatch.setattr(digits, "ARCHIVE_URL", z.as_uri())
    with pytest.raises(InputError, match="no recordings/ folder"):
        digits.download(tmp_path / "dest", quiet=True)
