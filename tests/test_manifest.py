"""asrkit.data.manifest: the Utterance record and JSONL read/write."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from asrkit.data.manifest import Utterance, iter_manifest, read_manifest, write_manifest
from asrkit.errors import InputError


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_round_trip_relative_paths(tmp_path):
    base = tmp_path / "data"
    inside = base / "audio" / "a.flac"
    outside = tmp_path / "elsewhere" / "b.wav"
    utts = [
        Utterance("a", str(inside), 1.25, 16000, "one two", "george"),
        Utterance("b", str(outside), 0.5, 8000, "three", None, features=str(base / "feats" / "b.npy")),
        Utterance("c", None, 2.0, 16000, label="yes", features=str(base / "feats" / "c.npy")),
        Utterance("d", str(inside.with_name("d.flac")), 1.0, 16000, phonemes=["HH", "AH0"]),
    ]
    m = base / "train.jsonl"
    write_manifest(m, utts)

    stored = _lines(m)
    assert [d["id"] for d in stored] == ["a", "b", "c", "d"]
    # inside the manifest's folder: stored relative to it; outside: stays absolute
    assert stored[0]["audio"] == str(Path("audio") / "a.flac")
    assert stored[1]["audio"] == str(outside.resolve())
    assert stored[1]["features"] == str(Path("feats") / "b.npy")
    # None fields are left out of the JSON
    assert "speaker" not in stored[1]
    assert "audio" not in stored[2] and "text" not in stored[2]
    assert stored[3]["phonemes"] == ["HH", "AH0"]

    back = read_manifest(m)
    assert back[0].audio == str(inside.resolve())
    assert back[1].audio == str(outside.resolve())
    assert back[1].features == str((base / "feats" / "b.npy").resolve())
    assert back[2].audio is None and back[2].label == "yes"
    for u, orig in zip(back, utts):
        assert (u.id, u.duration, u.sample_rate, u.text, u.speaker, u.label, u.phonemes) == (
            orig.id,
            orig.duration,
            orig.sample_rate,
            orig.text,
            orig.speaker,
            orig.label,
            orig.phonemes,
        )

    raw = read_manifest(m, resolve=False)
    assert raw[0].audio == str(Path("audio") / "a.flac")
    # writing does not modify the caller's objects
    assert utts[0].audio == str(inside)


def test_relative_path_resolves_against_manifest_not_cwd(tmp_path, monkeypatch):
    m = tmp_path / "sub" / "m.jsonl"
    m.parent.mkdir()
    m.write_text(json.dumps({"id": "x", "audio": "wav/x.wav"}) + "\n")
    monkeypatch.chdir(tmp_path)
    (u,) = read_manifest(Path("sub") / "m.jsonl")
    assert u.audio == str((tmp_path / "sub" / "wav" / "x.wav").resolve())


def test_absolute_paths_kept_when_not_relative(tmp_path):
    m = tmp_path / "m.jsonl"
    audio = tmp_path / "a.wav"
    write_manifest(m, [Utterance("a", str(audio))], relative_to_manifest=False)
    assert _lines(m)[0]["audio"] == str(audio)


def test_empty_manifest(tmp_path):
    m = tmp_path / "empty.jsonl"
    write_manifest(m, [])
    assert m.read_text() == ""
    assert read_manifest(m) == []


def test_blank_lines_are_skipped(tmp_path):
    m = tmp_path / "m.jsonl"
    m.write_text('{"id": "a", "audio": "a.wav"}\n\n   \n{"id": "b", "audio": "b.wav"}\n')
    assert [u.id for u in read_manifest(m)] == ["a", "b"]


def test_malformed_json_names_file_and_line(tmp_path):
    m = tmp_path / "bad.jsonl"
    m.write_text('{"id": "a", "audio": "a.wav"}\n{"id": "b", "audio": \n')
    with pytest.raises(InputError) as e:
        read_manifest(m)
    assert f"{m}:2" in str(e.value)
    assert "malformed JSON" in str(e.value)


def test_non_object_line(tmp_path):
    m = tmp_path / "bad.jsonl"
    m.write_text("[1, 2]\n")
    with pytest.raises(InputError, match=r":1: expected a JSON object"):
        read_manifest(m)


def test_duplicate_id(tmp_path):
    m = tmp_path / "dup.jsonl"
    m.write_text('{"id": "a", "audio": "a.wav"}\n{"id": "b", "audio": "b.wav"}\n{"id": "a", "audio": "c.wav"}\n')
    with pytest.raises(InputError) as e:
        read_manifest(m)
    assert f"{m}:3" in str(e.value)
    assert "duplicate" in str(e.value) and "'a'" in str(e.value)


def test_streaming_yields_lines_before_the_error(tmp_path):
    m = tmp_path / "dup.jsonl"
    m.write_text('{"id": "a", "audio": "a.wav"}\n{"id": "a", "audio": "b.wav"}\n')
    it = iter_manifest(m)
    assert next(it).id == "a"
    with pytest.raises(InputError, match="duplicate"):
        next(it)


@pytest.mark.parametrize(
    "line", ['{"text": "no audio to name it"}', '{"id": "", "audio": "a.wav"}', '{"id": 7, "audio": "a.wav"}']
)
def test_missing_or_bad_id(tmp_path, line):
    m = tmp_path / "m.jsonl"
    m.write_text('{"id": "ok", "audio": "a.wav"}\n' + line + "\n")
    with pytest.raises(InputError) as e:
        read_manifest(m)
    assert f"{m}:2" in str(e.value)
    assert "'id'" in str(e.value)


@pytest.mark.parametrize("line", ['{"id": "u1", "text": "hi"}', '{"id": "u1", "audio": null, "features": null}'])
def test_neither_audio_nor_features(tmp_path, line):
    m = tmp_path / "m.jsonl"
    m.write_text(line + "\n")
    with pytest.raises(InputError) as e:
        read_manifest(m)
    msg = str(e.value)
    assert f"{m}:1" in msg and "'u1'" in msg
    assert "neither 'audio' nor 'features'" in msg


def test_bad_field_type(tmp_path):
    m = tmp_path / "m.jsonl"
    m.write_text('{"id": "u", "audio": "a.wav", "duration": "long"}\n')
    with pytest.raises(InputError, match=r":1: bad field type"):
        read_manifest(m)


def test_numeric_fields_are_coerced(tmp_path):
    m = tmp_path / "m.jsonl"
    m.write_text('{"id": "u", "audio": "a.wav", "duration": 2, "sample_rate": 16000.0}\n')
    (u,) = read_manifest(m)
    assert isinstance(u.duration, float) and u.duration == 2.0
    assert isinstance(u.sample_rate, int) and u.sample_rate == 16000


def test_missing_manifest(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_manifest(tmp_path / "none.jsonl")


def test_extra_fields_preserved_and_written_back(tmp_path):
    m = tmp_path / "m.jsonl"
    m.write_text(
        json.dumps({"id": "u", "audio": "a.wav", "text": "hi", "kind": "connected", "snr": 12.5, "tags": ["x"]}) + "\n"
    )
    (u,) = read_manifest(m, resolve=False)
    assert u.extra == {"kind": "connected", "snr": 12.5, "tags": ["x"]}
    assert u.text == "hi"
    out = tmp_path / "out.jsonl"
    write_manifest(out, [u])
    (d,) = _lines(out)
    assert d == {
        "id": "u",
        "audio": "a.wav",
        "duration": 0.0,
        "sample_rate": 0,
        "text": "hi",
        "kind": "connected",
        "snr": 12.5,
        "tags": ["x"],
    }
    (u2,) = read_manifest(out, resolve=False)
    assert u2.extra == u.extra


def test_non_ascii_text_round_trips(tmp_path):
    m = tmp_path / "m.jsonl"
    write_manifest(m, [Utterance("é", "a.wav", text="ça va")])
    assert "ça va" in m.read_text(encoding="utf-8")  # written as UTF-8, not \\u escapes
    (u,) = read_manifest(m)
    assert u.id == "é" and u.text == "ça va"


def test_a_line_without_an_id_takes_its_files_stem(tmp_path):
    m = tmp_path / "m.jsonl"
    m.write_text(
        '{"audio": "clips/one/0a7c_nohash_0.wav", "text": "one"}\n{"features": "f/utt9.npy"}\n{"id": "given", "audio": "a.wav"}\n'
    )
    assert [u.id for u in iter_manifest(m, resolve=False)] == ["0a7c_nohash_0", "utt9", "given"]
    m.write_text('{"text": "one"}\n')
    with pytest.raises(InputError, match=r":1: missing or empty 'id' \(and no 'audio' to take it from\)"):
        list(iter_manifest(m))
