"""asrkit.data.corpora.speech_commands on the real v0.01 sample and on a v0.02-layout fixture (FSDD digits,
espeak-ng words, generated background noise); the confusion matrix; the recipe end to end through the CLI."""

from __future__ import annotations

import hashlib
import json
import logging
import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

import speech_commands_fixture as fx
from asrkit.config import load_recipe, recipe_from_dict, validate
from asrkit.confusion import classes_of, confusion_matrix, plot_confusion
from asrkit.data.corpora import get_corpus
from asrkit.data.corpora import speech_commands as sc
from asrkit.data.manifest import read_manifest
from asrkit.data.noise import fit_length, mix_at_snr, power, time_shift
from asrkit.errors import InputError, WorkError
from asrkit.score import score
from conftest import ROOT, run_cli, shared

SAMPLE = "speech_commands/speech_commands_v0.01"
# tiny per-clip work: two threads on a busy 2-core machine run it many times slower than one
ONE_THREAD = {"OMP_NUM_THREADS": "1"}


def _recipe(root: Path | None = None, **sc_opts):
    data = {
        "corpus": "speech_commands",
        "root": str(root) if root else None,
        "seed": 0,
        "speech_commands": {"augment_copies": 0, **sc_opts},
    }
    r = recipe_from_dict({"name": "sc_test", "data": data, "model": {"head": "classifier"}})
    validate(r)
    return r


def _read(u) -> np.ndarray:
    wav, sr = sf.read(u.audio, dtype="float32")
    assert sr == 16000
    return wav


def _prepare(root: Path, out: Path, **sc_opts) -> dict:
    r = _recipe(root, **sc_opts)
    steps = []
    result = sc.prepare(root, out, r, progress=steps.append)
    assert sum(steps) == sc.count_work(root, r)  # the progress total the pipeline announces is exact
    return result


# ---------------------------------------------------------------- the real v0.01 sample


def test_real_sample_official_split():
    root = shared(SAMPLE)
    clips = sc.scan(root)
    assert len(clips) == 300 and len({c.word for c in clips}) == 30
    splits = sc.split_clips(clips, root)
    assert {k: len(v) for k, v in splits.items()} == {"train": 205, "dev": 44, "test": 51}
    test = set((root / "testing_list.txt").read_text().split())
    dev = set((root / "validation_list.txt").read_text().split())
    assert all(c.name in test for c in splits["test"])
    assert all(c.name in dev and c.name not in test for c in splits["dev"])
    assert all(c.name not in test and c.name not in dev for c in splits["train"])
    c = next(c for c in clips if c.name == "bed/62581901_nohash_0.wav")
    assert (c.word, c.speaker, c.id) == ("bed", "62581901", "bed_62581901_nohash_0")


def test_real_sample_twelve_classes(tmp_path, caplog):
    root = shared(SAMPLE)
    with caplog.at_level(logging.WARNING, logger=sc.__name__):
        res = _prepare(root, tmp_path, classes=["12"], silence_fraction=0.2)
    assert "no _background_noise_" in caplog.text  # the sample has none: silence is synthetic, and says so
    splits = sc.split_clips(sc.scan(root), root)
    for split, utts in res.items():
        known = [c for c in splits[split] if c.word in sc.COMMANDS]
        labels = [u.label for u in utts]
        assert sorted(u.id for u in utts if u.label in sc.COMMANDS) == sorted(c.id for c in known)
        assert labels.count(sc.SILENCE) == round(0.2 * len(known))
        assert labels.count(sc.UNKNOWN) == round(0.1 * len(known))
        assert all(u.extra["word"] not in sc.COMMANDS for u in utts if u.label == sc.UNKNOWN)
        for u in utts:
            assert u.text == u.label and sf.info(u.audio).frames == 16000
    silence = [u for u in res["train"] if u.label == sc.SILENCE]
    rms_db = [10 * np.log10(power(_read(u))) for u in silence]
    assert all(-65 < x < -35 for x in rms_db), rms_db  # near-silence, not digital zero
    summary = json.loads((tmp_path / sc.SUMMARY).read_text())
    assert len(summary["classes"]) == 12 and summary["notes"]


# ---------------------------------------------------------------- the v0.02-layout fixture


@pytest.fixture(scope="module")
def fixture_root(tmp_path_factory) -> Path:
    """FSDD zero…nine (2 speakers × 6 takes), the ten commands by espeak-ng (4 voices), generated background noise."""
    fsdd = shared("fsdd") / "recordings"
    if not fx.espeak_available():
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng): the fixture's command words are synthetic")
    root = tmp_path_factory.mktemp("sc") / "speech_commands_v0.02"
    entries = fx.add_fsdd(root, fsdd, range(10), ("george", "jackson"), range(6), fx.by_index([0], [1]))
    entries |= fx.add_espeak(root, sc.COMMANDS, fx.voice_grid(4), fx.by_index([0], [1]))
    fx.add_noise(root)
    fx.write_lists(root, entries)
    return root


def test_fixture_all_classes_and_padding(fixture_root, tmp_path):
    res = _prepare(fixture_root, tmp_path)
    words = sorted(fx.DIGIT_WORDS + sc.COMMANDS)
    assert sorted({u.label for u in res["train"]}) == words
    # 2 speakers × take 0 and 4 voices × voice 0 per word in test; the same with take/voice 1 in dev
    assert {k: len(v) for k, v in res.items()} == {
        "train": 10 * 2 * 4 + 10 * 2,
        "dev": 10 * 2 + 10,
        "test": 10 * 2 + 10,
    }
    assert all(u.speaker and u.duration == 1.0 and sf.info(u.audio).frames == 16000 for v in res.values() for u in v)
    (u,) = [u for u in res["test"] if u.id == f"up_{fx.speaker_hash('%s-%d-%d' % fx.voice_grid(4)[0])}_nohash_0"]
    orig, _ = sf.read(fixture_root / "up" / f"{u.id[3:]}.wav", dtype="float32")
    assert len(orig) < 16000
    got = _read(u)
    np.testing.assert_allclose(got[: len(orig)], orig, atol=1e-4)  # the clip, then zeros to 1 s
    assert not got[len(orig) :].any()


def test_fixture_trims_to_clip_seconds(fixture_root, tmp_path):
    res = _prepare(fixture_root, tmp_path, classes=["zero"], clip_seconds=0.25, unknown_fraction=0)
    for u in res["test"]:
        orig, _ = sf.read(fixture_root / "zero" / f"{u.id[5:]}.wav", dtype="float32")
        assert len(orig) > 4000
        np.testing.assert_allclose(_read(u), orig[:4000], atol=1e-4)


def test_fixture_twelve_classes_silence_from_background_noise(fixture_root, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger=sc.__name__):
        res = _prepare(fixture_root, tmp_path, classes=["12"], silence_fraction=0.5, unknown_fraction=0.5)
    assert "no _background_noise_" not in caplog.text
    assert sorted({u.label for u in res["train"]}) == sorted([*sc.COMMANDS, sc.SILENCE, sc.UNKNOWN])
    for utts in res.values():
        n_known = sum(u.label in sc.COMMANDS for u in utts)
        assert sum(u.label == sc.SILENCE for u in utts) == round(0.5 * n_known)
        assert sum(u.label == sc.UNKNOWN for u in utts) == round(0.5 * n_known)
        assert {u.extra["word"] for u in utts if u.label == sc.UNKNOWN} <= set(fx.DIGIT_WORDS)
    noise_rms = max(np.sqrt(power(sf.read(p, dtype="float32")[0])) for p in (fixture_root / sc.NOISE_DIR).glob("*.wav"))
    levels = [np.sqrt(power(_read(u))) for u in res["train"] if u.label == sc.SILENCE]
    assert all(0 < x <= sc.SILENCE_GAIN * noise_rms * 1.01 for x in levels)
    assert len(set(np.round(levels, 6))) == len(levels)  # each at its own volume


def test_fixture_word_lists(fixture_root, tmp_path):
    res = _prepare(fixture_root, tmp_path / "a", classes=["one", "two", "three"])
    assert all(u.label in ("one", "two", "three") for v in res.values() for u in v)
    assert len(res["train"]) == 3 * 2 * 4
    res = _prepare(fixture_root, tmp_path / "b", classes=["yes", "no", "_unknown_"], unknown_fraction=1.0)
    labels = [u.label for u in res["train"]]
    assert sorted(set(labels)) == ["_unknown_", "no", "yes"] and labels.count("_unknown_") == labels.count(
        "yes"
    ) + labels.count("no")
    with pytest.raises(InputError, match="no folder for bogus"):
        _prepare(fixture_root, tmp_path / "c", classes=["yes", "bogus"])
    with pytest.raises(InputError, match="stand alone"):
        _recipe(classes=["all", "yes"])


def test_unquoted_yes_no_in_a_recipe_is_explained(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("data:\n  corpus: speech_commands\n  speech_commands:\n    classes: [up, yes, no]\n")
    with pytest.raises(InputError, match=r"classes\[1\]: expected a string, got True .*quote the word"):
        load_recipe(p)
    p.write_text("data:\n  corpus: speech_commands\n  speech_commands:\n    classes: [up, 'yes', 'no']\n")
    assert load_recipe(p).data.speech_commands.classes == ["up", "yes", "no"]


def test_augmentation_is_deterministic_and_differs_from_the_originals(fixture_root, tmp_path):
    opts = dict(classes=["yes", "no", "up"], augment_copies=2, noise_prob=0.5)
    a = _prepare(fixture_root, tmp_path / "a", **opts)
    b = _prepare(fixture_root, tmp_path / "b", **opts)
    originals = {u.id: u for u in a["train"] if "source" not in u.extra}
    copies = [u for u in a["train"] if "source" in u.extra]
    assert len(copies) == 2 * len(originals) and {u.id for u in copies} == {
        f"{i}_aug{k}" for i in originals for k in (1, 2)
    }
    assert all("source" not in u.extra for s in ("dev", "test") for u in a[s])
    assert [u.id for u in a["train"]] == [u.id for u in b["train"]]
    for ua, ub in zip(a["train"], b["train"]):
        np.testing.assert_array_equal(_read(ua), _read(ub))
    assert any("snr_db" in u.extra for u in copies) and any("snr_db" not in u.extra for u in copies)
    for u in copies:
        orig, aug = _read(originals[u.extra["source"]]), _read(u)
        assert u.label == originals[u.extra["source"]].label and not np.allclose(orig, aug, atol=1e-3)
        shifted = time_shift(orig, round(u.extra["shift_ms"] * 16))
        assert abs(u.extra["shift_ms"]) <= 100
        if "snr_db" not in u.extra:
            np.testing.assert_allclose(aug, shifted, atol=1e-4)  # a pure shift
        else:
            snr = 10 * np.log10(power(shifted) / power(aug - shifted))
            assert snr == pytest.approx(u.extra["snr_db"], abs=0.3)
    r = _recipe(fixture_root, **opts)
    r.data.seed = 1
    other = sc.prepare(fixture_root, tmp_path / "d", r)
    moved = [u.extra["shift_ms"] for u in other["train"] if "source" in u.extra]
    assert moved != [u.extra["shift_ms"] for u in copies]


def test_noise_helpers():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(1000).astype(np.float32)
    assert len(fit_length(x, 1200)) == 1200 and not fit_length(x, 1200)[1000:].any()
    np.testing.assert_array_equal(time_shift(x, 3)[3:], x[:-3])
    np.testing.assert_array_equal(time_shift(x, -3)[:-3], x[3:])
    assert not time_shift(x, 3)[:3].any() and not time_shift(x, -3)[-3:].any()
    n = rng.standard_normal(1000).astype(np.float32)
    y = mix_at_snr(x, n, 10.0)
    assert 10 * np.log10(power(x) / power(y - x)) == pytest.approx(10.0, abs=1e-3)


# ---------------------------------------------------------------- locate and download


def test_locate(fixture_root, tmp_path, monkeypatch):
    monkeypatch.delenv("ASRKIT_DATA", raising=False)
    assert sc.locate(_recipe(fixture_root)) == fixture_root
    assert sc.locate(_recipe(fixture_root.parent)) == fixture_root  # one level above: finds the version folder
    monkeypatch.setenv("ASRKIT_DATA", str(tmp_path))
    (tmp_path / "speech_commands").symlink_to(fixture_root.parent)
    assert sc.locate(_recipe()).resolve() == fixture_root.resolve()
    with pytest.raises(InputError, match="data.root"):
        sc.locate(_recipe(tmp_path / "nowhere"))
    monkeypatch.setenv("ASRKIT_DATA", str(tmp_path / "empty"))
    with pytest.raises(InputError, match="Speech Commands not found"):
        sc.locate(_recipe())
    assert get_corpus("speech_commands") is sc


def _tgz(fixture_root: Path, path: Path) -> Path:
    """An archive like the real one: word folders, lists and noise at the top level (`./yes/...`)."""
    with tarfile.open(path, "w:gz") as tf:
        for p in sorted([fixture_root / "yes", fixture_root / "no", fixture_root / sc.NOISE_DIR]):
            tf.add(p, arcname=f"./{p.name}")
        for name in (sc.VALIDATION_LIST, sc.TESTING_LIST):
            tf.add(fixture_root / name, arcname=f"./{name}")
    return path


def test_download_from_a_local_archive(fixture_root, tmp_path, monkeypatch):
    archive = _tgz(fixture_root, tmp_path / "speech_commands_v0.02.tar.gz")
    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    monkeypatch.setitem(sc.ARCHIVES, "v0.02", (archive.as_uri(), sha))
    dest = tmp_path / "dest"
    got = sc.download(dest, quiet=True)
    assert got == dest / "speech_commands_v0.02"
    assert sorted(p.name for p in got.iterdir() if p.is_dir()) == sorted(["yes", "no", sc.NOISE_DIR])
    assert sorted(c.name for c in sc.scan(got)) == sorted(
        f"{w}/{p.name}" for w in ("no", "yes") for p in (fixture_root / w).glob("*.wav")
    )
    # found again without downloading; locate downloads into data.root when allowed
    monkeypatch.setitem(sc.ARCHIVES, "v0.02", ((tmp_path / "gone.tar.gz").as_uri(), sha))
    assert sc.download(dest, quiet=True) == got
    monkeypatch.setitem(sc.ARCHIVES, "v0.02", (archive.as_uri(), sha))
    assert (
        sc.locate(_recipe(tmp_path / "root"), allow_download=True, quiet=True)
        == tmp_path / "root" / "speech_commands_v0.02"
    )
    monkeypatch.setitem(sc.ARCHIVES, "v0.02", (archive.as_uri(), "0" * 64))
    with pytest.raises(WorkError, match="checksum mismatch"):
        sc.download(tmp_path / "bad", quiet=True)
    with pytest.raises(InputError, match="unknown Speech Commands version"):
        v9 = _recipe()
        v9.data.speech_commands.version = "v9"  # past the recipe check: download checks the version it is given
        sc.download(tmp_path / "bad", v9, quiet=True)


def test_published_archives():
    assert sc.ARCHIVES["v0.02"][0] == "http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz"
    assert all(len(sha) == 64 for _, sha in sc.ARCHIVES.values())


# ---------------------------------------------------------------- confusion matrix


def test_confusion_matrix_and_picture(tmp_path):
    refs = {"a": "yes", "b": "yes", "c": "no", "d": "up", "e": "no"}
    hyps = {"a": "yes", "b": "no", "c": "no", "d": "no", "x": "up"}
    labels = classes_of(refs)
    assert labels == ["no", "up", "yes"]
    m = confusion_matrix(refs, hyps, labels)
    assert m.tolist() == [
        [1, 0, 0, 0],
        [1, 0, 0, 0],
        [1, 0, 1, 0],
    ]  # e has no hypothesis: left out; last column "other"
    assert score(refs, hyps).accuracy == pytest.approx(2 / 5)  # ...but scored as an error
    assert score(refs, hyps).to_dict()["accuracy"] == pytest.approx(2 / 5)
    with pytest.raises(InputError, match="'maybe'"):
        confusion_matrix({"a": "maybe"}, {"a": "yes"}, labels)
    png = tmp_path / "cm.png"
    plot_confusion(m, labels, png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError):
        plot_confusion(m, labels[:2], png)


# ---------------------------------------------------------------- the recipe end to end through the CLI


def test_recipe_end_to_end(tmp_path):
    """prepare → train (tiny, a few epochs) → decode → score --confusion on FSDD zero/one/two in the v0.02 layout."""
    fsdd = shared("fsdd") / "recordings"
    root = tmp_path / "corpus"
    entries = fx.add_fsdd(root, fsdd, range(3), fx.FSDD_SPEAKERS, range(20), fx.by_index(range(5), range(5, 10)))
    fx.write_lists(root, entries)
    base = yaml.safe_load((ROOT / "recipes" / "speech_commands.yaml").read_text())
    base["data"].update(root=str(root), out_dir=str(tmp_path / "data"))
    base["data"]["speech_commands"]["augment_copies"] = 1
    base["model"].update(hidden=48, layers=1)
    base["train"].update(exp_dir=str(tmp_path / "exp"), epochs=10, lr=0.01, batch_seconds=24)
    recipe = tmp_path / "sc.yaml"
    recipe.write_text(yaml.safe_dump(base))
    load_recipe(recipe)  # the recipe file itself validates

    run_cli("prepare", str(recipe), "--quiet", env=ONE_THREAD)
    data, exp = tmp_path / "data", tmp_path / "exp"
    assert (data / "vocab.txt").read_text().split() == ["one", "two", "zero"]
    assert len(read_manifest(data / "train.jsonl")) == 2 * 3 * 4 * 10 and len(read_manifest(data / "test.jsonl")) == 60

    run_cli("train", str(recipe), "--quiet", env=ONE_THREAD)
    rows = [json.loads(line) for line in (exp / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 10

    hyp = tmp_path / "test.hyp"
    run_cli(
        "decode",
        "--model",
        str(exp / "best.pt"),
        "--output",
        str(hyp),
        "--quiet",
        str(data / "test.jsonl"),
        env=ONE_THREAD,
    )
    refs = {u.id: u.label for u in read_manifest(data / "test.jsonl")}
    hyps = dict(line.split("\t") for line in hyp.read_text().splitlines())
    assert set(hyps) == set(refs) and set(hyps.values()) <= {"zero", "one", "two"}
    acc = sum(hyps[k] == refs[k] for k in refs) / len(refs)
    # chance (and a constant model) is 1/3; a broken features/labels/model pipeline stays near it. Measured over
    # train.seed 0-3: 0.93-0.98 (dev accuracy passes 0.95 by epoch 5 of 10), so 0.75 leaves room for another CPU's rounding
    assert acc >= 0.75, acc

    png = tmp_path / "confusion.png"
    out = run_cli("score", "--ref", str(data / "test.jsonl"), "--hyp", str(hyp), "--json", "--confusion", str(png))
    rep = json.loads(out.stdout)
    assert rep["accuracy"] == pytest.approx(acc) and rep["n_utterances"] == 60
    assert png.read_bytes()[:4] == b"\x89PNG" and "confusion matrix" in out.stderr

    clip = next(u for u in read_manifest(data / "test.jsonl") if u.label == "two")
    line = run_cli("decode", "--model", str(exp / "best.pt"), "--json", "--quiet", clip.audio, env=ONE_THREAD).stdout
    d = json.loads(line)
    assert d["text"] in ("zero", "one", "two") and 1 / 3 <= d["probability"] <= 1
    assert d["probability"] == pytest.approx(np.exp(d["score"]), abs=1e-3)
