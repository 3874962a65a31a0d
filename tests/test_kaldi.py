"""Kaldi data directories as a corpus: plain and segmented wav.scp, speakers, export and re-import, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asrkit.config import recipe_from_dict
from asrkit.data.corpora.kaldi import export_data_dir, read_data_dir
from asrkit.data.corpora.librispeech import scan_subset
from asrkit.data.manifest import read_manifest
from asrkit.data.prepare import prepare
from asrkit.errors import InputError
from conftest import shared


def _kaldi_dir(folder: Path, utts) -> Path:
    folder.mkdir(parents=True)
    (folder / "wav.scp").write_text("".join(f"{u.id} {u.audio}\n" for u in utts))
    (folder / "text").write_text("".join(f"{u.id} {u.text}\n" for u in utts))
    (folder / "utt2spk").write_text("".join(f"{u.id} {u.speaker}\n" for u in utts))
    return folder


def _recipe(tmp: Path, splits: dict):
    return recipe_from_dict(
        {
            "name": "k",
            "data": {"corpus": "kaldi", "root": str(tmp / "kaldi"), "out_dir": str(tmp / "out"), "splits": splits},
            "features": {"n_mels": 40},
        }
    )


def test_plain_data_dirs_become_manifests_with_texts_speakers_and_durations(tmp_path: Path) -> None:
    ls = shared("librispeech") / "LibriSpeech"
    train, dev = scan_subset(ls / "dev-clean-2"), scan_subset(ls / "test-clean")
    _kaldi_dir(tmp_path / "kaldi" / "train", train)
    _kaldi_dir(tmp_path / "kaldi" / "dev", dev)
    out = prepare(_recipe(tmp_path, {"train": ["train"], "dev": ["dev"]}), quiet=True)
    got = {u.id: u for u in read_manifest(out / "train.jsonl")}
    assert set(got) == {u.id for u in train}
    for u in train:
        assert got[u.id].text == u.text.lower() and got[u.id].speaker == u.speaker
        assert got[u.id].duration == pytest.approx(u.duration) and Path(got[u.id].audio) == Path(u.audio)
    assert json.loads((out / "prepare.json").read_text())["counts"]["dev"]["utterances"] == len(dev)


def test_segments_cut_each_utterance_from_its_recording(tmp_path: Path) -> None:
    sr = 16000
    rec = np.concatenate([np.full(sr, 0.1, np.float32), np.full(sr // 2, -0.2, np.float32)])
    folder = tmp_path / "kaldi" / "train"
    folder.mkdir(parents=True)
    sf.write(folder / "rec1.wav", rec, sr, subtype="FLOAT")
    (folder / "wav.scp").write_text("rec1 rec1.wav\n")  # relative to the data directory
    (folder / "segments").write_text("u1 rec1 0.0 1.0\nu2 rec1 1.0 1.5\n")
    (folder / "text").write_text("u1 hello world\nu2 bye\n")
    utts = {u.id: u for u in read_data_dir(folder, tmp_path / "out", "train")}
    a1, _ = sf.read(utts["u1"].audio, dtype="float32")
    a2, _ = sf.read(utts["u2"].audio, dtype="float32")
    assert len(a1) == sr and len(a2) == sr // 2
    assert np.allclose(a1, 0.1, atol=1e-4) and np.allclose(a2, -0.2, atol=1e-4)
    assert utts["u2"].text == "bye" and utts["u1"].duration == pytest.approx(1.0)


def test_export_then_import_gives_the_same_utterances(tmp_path: Path) -> None:
    utts = scan_subset(shared("librispeech") / "LibriSpeech" / "test-clean")
    folder = export_data_dir(utts, tmp_path / "exported")
    assert (folder / "spk2utt").read_text().splitlines()[0].split()[0] == sorted({u.speaker for u in utts})[0]
    back = {u.id: u for u in read_data_dir(folder, tmp_path / "out", "x")}
    assert {k: (v.audio, v.text, v.speaker) for k, v in back.items()} == {
        u.id: (u.audio, u.text, u.speaker) for u in utts
    }


@pytest.mark.parametrize(
    ("wav_scp", "message"),
    [
        ("u1 sox in.wav -t wav - |\n", "only plain audio paths"),
        ("u1 feats.ark:1234\n", "only plain audio paths"),
        ("u1 missing.wav\n", "audio file .* not found"),
        ("u2 x.wav\n", "'u1' has no entry in wav.scp"),
        ("u1 a.wav\nu1 b.wav\n", "wav.scp:2: duplicate key 'u1'"),
    ],
)
def test_what_asrkit_cannot_read_is_a_clear_error(tmp_path: Path, wav_scp: str, message: str) -> None:
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "wav.scp").write_text(wav_scp)
    (folder / "text").write_text("u1 hello\n")
    with pytest.raises(InputError, match=message):
        read_data_dir(folder, tmp_path / "out", "train")


def test_a_folder_that_is_not_a_data_dir_is_named(tmp_path: Path) -> None:
    (tmp_path / "kaldi" / "train").mkdir(parents=True)
    with pytest.raises(InputError, match="is not a Kaldi data directory: it has no wav.scp"):
        prepare(_recipe(tmp_path, {"train": ["train"], "dev": ["train"]}), quiet=True)
