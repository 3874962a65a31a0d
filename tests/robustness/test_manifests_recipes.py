"""Hostile manifests, hyp/ref files and recipes: every case is one InputError line naming the file:line or key path."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from asrkit.config import load_recipe
from asrkit.data.corpora.librispeech import read_transcripts as read_trans_txt
from asrkit.data.manifest import parse_line, read_manifest
from asrkit.errors import InputError
from asrkit.score import read_transcripts
from asrkit.models.checkpoint import save_checkpoint
from cli_inproc import assert_one_line_error, cli, tiny_checkpoint_state, write_wav


@pytest.fixture(autouse=True)
def _no_debug(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ASRKIT_DEBUG", raising=False)


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny checkpoint and one recording."""
    d = tmp_path_factory.mktemp("man")
    save_checkpoint(d / "good.pt", tiny_checkpoint_state())
    write_wav(d / "a.wav")
    return d


def _line(**d) -> str:
    return json.dumps(d)


# --- manifests ---------------------------------------------------------------------------------------------------


def _manifest(tmp_path: Path, kind: str) -> Path:
    m = tmp_path / f"{kind}.jsonl"
    ok = _line(id="u1", audio="a.wav", text="abc")
    if kind == "missing_audio":
        m.write_text(_line(id="u1", audio="nothere.wav", text="abc") + "\n")
    elif kind == "missing_features":
        m.write_text(_line(id="u1", features="nothere.npy", text="abc") + "\n")
    elif kind == "duplicate":
        m.write_text(ok + "\n" + _line(id="u2", audio="a.wav") + "\n" + ok + "\n")
    elif kind == "malformed":
        m.write_text(ok + "\n\n{id: u2}\n")
    elif kind == "empty":
        m.write_text("")
    elif kind == "directory":
        m.mkdir()
    elif kind == "binary":
        m.write_bytes(ok.encode() + b"\n" + b"\xff\xfe\x00garbage\x89PNG\n")
    elif kind == "bad_type":
        m.write_text(ok + "\n" + _line(id="u2", audio="a.wav", duration=-1.5) + "\n")
    return m


MANIFEST_CASES = [
    ("missing_audio", "nothere.wav"),
    ("duplicate", ":3: duplicate utterance id 'u1' (first on line 1)"),
    ("malformed", ":3: malformed JSON"),
    ("empty", "holds no utterances"),
    ("binary", ":2: not UTF-8 text"),
    ("bad_type", ":2: bad field type in utterance 'u2': 'duration' must be a number >= 0"),
]


@pytest.mark.parametrize("kind, needle", MANIFEST_CASES)
@pytest.mark.parametrize("command", ["decode", "align"])
def test_decode_and_align_refuse_a_bad_manifest(
    kit: Path, tmp_path: Path, command: str, kind: str, needle: str
) -> None:
    (tmp_path / "a.wav").symlink_to(kit / "a.wav")
    m = _manifest(tmp_path, kind)
    extra = ["--no-plots", "-o", str(tmp_path / "al")] if command == "align" else []
    r = cli(command, "-q", "--model", kit / "good.pt", *extra, m)
    assert_one_line_error(r, needle)
    assert not (tmp_path / "al").exists() or not any((tmp_path / "al").iterdir())


def test_decode_reads_every_good_line_of_a_manifest_and_names_each_bad_one(kit: Path, tmp_path: Path) -> None:
    (tmp_path / "a.wav").symlink_to(kit / "a.wav")
    m = tmp_path / "m.jsonl"
    m.write_text(
        "\n".join(
            _line(id=u, audio=a, text="abc")
            for u, a in (("u1", "a.wav"), ("u2", "nothere.wav"), ("u3", "a.wav"), ("u4", "gone.wav"))
        )
        + "\n"
    )
    out = tmp_path / "hyp.txt"
    r = cli("decode", "-q", "--model", kit / "good.pt", "-o", out, m)
    *skipped, last = r.err.strip().splitlines()
    assert r.code == 2 and "Traceback" not in r.err
    assert len(skipped) == 2 and all(x.startswith("decode: skipped: ") for x in skipped)
    assert "nothere.wav" in skipped[0] + skipped[1] and "gone.wav" in skipped[0] + skipped[1]
    assert last == "asrkit: error: 2 of 4 inputs could not be read (each named above); the other 2 are decoded"
    assert [line.split("\t")[0] for line in out.read_text().splitlines()] == ["u1", "u3"]
    out.write_text("u0\tearlier result\n")
    m.write_text("\n".join(_line(id=u, audio=a) for u, a in (("u2", "nothere.wav"), ("u4", "gone.wav"))) + "\n")
    r = cli("decode", "-q", "--model", kit / "good.pt", "-o", out, m)
    assert (
        r.code == 2
        and r.err.strip().splitlines()[-1] == "asrkit: error: none of the 2 inputs could be read (each named above)"
    )
    assert out.read_text() == "u0\tearlier result\n"  # nothing decoded: the earlier output is kept


def test_decode_refuses_a_manifest_with_a_missing_feature_file(tmp_path: Path) -> None:
    from asrkit.config import FeatureConfig
    from asrkit.features import feature_settings

    state = tiny_checkpoint_state()
    state["features"] = {**feature_settings(FeatureConfig(type="precomputed", n_mels=16, specaugment=None), 16000)}
    save_checkpoint(tmp_path / "pre.pt", state)
    m = _manifest(tmp_path, "missing_features")
    assert_one_line_error(cli("decode", "-q", "--model", tmp_path / "pre.pt", m), "nothere.npy")


def test_decode_keeps_an_earlier_output_when_the_manifest_is_bad(kit: Path, tmp_path: Path) -> None:
    out = tmp_path / "hyp.txt"
    out.write_text("u0\tearlier result\n")
    assert_one_line_error(
        cli("decode", "-q", "--model", kit / "good.pt", "-o", out, _manifest(tmp_path, "malformed")), ":3:"
    )
    assert out.read_text() == "u0\tearlier result\n"


@pytest.mark.parametrize(
    "kind, needle",
    [c for c in MANIFEST_CASES if c[0] not in ("missing_audio", "bad_type")] + [("directory", "is a directory")],
)
def test_score_refuses_a_bad_manifest(tmp_path: Path, kind: str, needle: str) -> None:
    m = _manifest(tmp_path, kind)
    needle = "holds no transcripts" if kind == "empty" else needle
    assert_one_line_error(cli("score", "--ref", m, "--hyp", m), m.name, needle)


def test_score_does_not_need_the_audio_of_a_manifest(tmp_path: Path) -> None:
    m = _manifest(tmp_path, "missing_audio")  # score reads texts only: missing audio is not its business
    r = cli("score", "--json", "--ref", m, "--hyp", m)
    assert r.code == 0 and json.loads(r.out)["wer"] == 0.0


def test_read_manifest_api(tmp_path: Path) -> None:
    assert read_manifest(_manifest(tmp_path, "empty")) == []  # an empty manifest reads as empty; its users refuse it
    with pytest.raises(InputError, match="is a directory"):
        read_manifest(_manifest(tmp_path, "directory"))
    for line, needle in [
        ('{"id": "u", "audio": "a.wav", "duration": NaN}', "'duration' must be a number >= 0"),
        ('{"id": "u", "audio": "a.wav", "text": 3}', "'text' must be a string"),
        ('{"id": "u", "audio": "a.wav", "phonemes": "aa b"}', "'phonemes' must be a list of strings"),
        ('{"id": "u", "audio": "a.wav", "sample_rate": 8000.5}', "'sample_rate' must be a whole number"),
        ('["u", "a.wav"]', "expected a JSON object"),
        ('{"id": " ", "audio": "a.wav"}', "missing or empty 'id'"),
        ("[" * 100000, "malformed JSON"),
    ]:
        with pytest.raises(InputError, match="^m.jsonl:7: ") as e:
            parse_line(line, "m.jsonl:7")
        assert needle in str(e.value)


# --- hyp/ref files of `asrkit score` -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ref, needle",
    [
        (b"u1\tabc\nu2\tdef\nu1\tabd\n", "ref.txt:3: duplicate utterance id 'u1' (first on line 1)"),
        (b"u1\tabc\n\tno id here\n", "ref.txt:2: line has no utterance id"),
        (b"u1\tabc\nu2\t\xff\xfeabc\n", "ref.txt:2: not UTF-8 text"),
        (b"", "holds no transcripts"),
    ],
)
def test_score_refuses_a_bad_reference_file(tmp_path: Path, ref: bytes, needle: str) -> None:
    (tmp_path / "ref.txt").write_bytes(ref)
    (tmp_path / "hyp.txt").write_text("u1\tabc\n")
    assert_one_line_error(cli("score", "--ref", tmp_path / "ref.txt", "--hyp", tmp_path / "hyp.txt"), needle)


def test_score_refuses_a_bad_hypothesis_file(tmp_path: Path) -> None:
    (tmp_path / "ref.txt").write_text("u1\tabc\n")
    (tmp_path / "hyp.txt").write_text("u1\tabc\nu1\tabd\n")
    assert_one_line_error(
        cli("score", "--ref", tmp_path / "ref.txt", "--hyp", tmp_path / "hyp.txt"), "hyp.txt:2: duplicate"
    )
    assert_one_line_error(cli("score", "--ref", tmp_path / "ref.txt", "--hyp", tmp_path), "is a directory")
    assert_one_line_error(
        cli("score", "--ref", tmp_path / "ref.txt", "--hyp", tmp_path / "nope.txt"), "nope.txt", "not found"
    )


def test_score_reads_decode_json_output_as_hypotheses(kit: Path, tmp_path: Path) -> None:
    r = cli("decode", "-q", "--json", "--model", kit / "good.pt", kit / "a.wav")
    assert r.code == 0, r.err
    (tmp_path / "hyp.jsonl").write_text(r.out)
    hyp = json.loads(r.out.splitlines()[0])
    (tmp_path / "ref.txt").write_text(f"a\t{hyp['text']}\n")
    s = cli("score", "--json", "--ref", tmp_path / "ref.txt", "--hyp", tmp_path / "hyp.jsonl")
    assert s.code == 0 and json.loads(s.out)["wer"] == 0.0, s.err
    assert read_transcripts(tmp_path / "hyp.jsonl") == {"a": " ".join(hyp["text"].split())}


# --- LibriSpeech *.trans.txt ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data, needle",
    [
        (b"19-198-0001 HELLO\n19-198-0001 AGAIN\n", ":2: duplicate utterance id 19-198-0001 (first on line 1)"),
        (b"19-198-0001 HELLO\nnot-an-id TEXT\n", ":2: expected '<speaker>-<chapter>-<utterance> TEXT'"),
        ("19-198-٠٠٠١ ARABIC DIGITS\n".encode(), ":1: expected"),
        (b"19-198-0001 HELLO \xff\n", "not UTF-8 text"),
    ],
)
def test_librispeech_transcript_reader(tmp_path: Path, data: bytes, needle: str) -> None:
    p = tmp_path / "19-198.trans.txt"
    p.write_bytes(data)
    with pytest.raises(InputError) as e:
        read_trans_txt(p)
    assert needle in str(e.value) and str(p) in str(e.value)
    with pytest.raises(InputError, match="cannot read the transcript"):
        read_trans_txt(tmp_path / "missing.trans.txt")


# --- recipes -------------------------------------------------------------------------------------------------------


def _recipe(tmp_path: Path, text: str | bytes) -> Path:
    p = tmp_path / "r.yaml"
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    return p


@pytest.mark.parametrize(
    "text, needle",
    [
        ("modle:\n  hidden: 3\n", "unknown recipe key 'modle'; did you mean 'model'?"),
        ("model:\n  hiden: 8\n", "unknown recipe key 'model.hiden'; did you mean 'model.hidden'?"),
        (
            "data:\n  connected:\n    min_word: 2\n",
            "'data.connected.min_word'; did you mean 'data.connected.min_words'?",
        ),
        ("features:\n  specaugment:\n    freq_mask: 1\n", "did you mean 'features.specaugment.freq_masks'?"),
        ("model:\n  hidden: big\n", "model.hidden: expected an integer, got 'big'"),
        ("model:\n  hidden: 1.5\n", "model.hidden: expected an integer"),
        ("model: [1, 2]\n", "model: expected a mapping"),
        ("data:\n  speed_perturb: {a: 1}\n", "data.speed_perturb: expected a list"),
        ("data:\n  corpus: [digits]\n", "data.corpus: expected a string"),
        ("train:\n  lr: .inf\n", "train.lr: expected a finite number"),
        ("model:\n  hidden: -3\n", "model.hidden, model.layers and model.conv_channels must be positive"),
        ("model:\n  layers: 0\n", "must be positive"),
        ("train:\n  epochs: 0\n", "train.epochs must be positive"),
        ("train:\n  batch_seconds: -1\n", "train.batch_seconds must be positive"),
        ("decode:\n  beam: 0\n", "decode.beam must be at least 1"),
        ("data:\n  max_duration: -5\n", "data.max_duration must be positive"),
        ("features:\n  n_mels: 0\n", "features.n_mels must be positive"),
        ("train:\n  warmup: 2\n", "train.warmup must be in [0, 1)"),
        ("features:\n  specaugment:\n    time_masks: -1\n", "features.specaugment"),
        ("model:\n  hidden: 8\n   layers: 2\n", "r.yaml line 3: invalid YAML"),
        ("data:\n  root: [unclosed\n", "r.yaml line 3: invalid YAML"),
        ("data:\n  root: 2024-13-45\n", "a value YAML cannot read"),
        (
            "train:\n  epochs: 3\nmodel:\n  hidden: 8\ntrain:\n  lr: 0.1\n",
            "r.yaml line 5: key 'train' is given twice (first on line 1)",
        ),
        ("model:\n  hidden: 8\n  hidden: 16\n", "line 3: key 'hidden' is given twice"),
        ("data:\n  root: \x1f\n", "invalid YAML (unacceptable character #x001f"),  # found by the fuzz pass
        ("", "is empty"),
        ("# only a comment\n", "is empty"),
        ("- a\n- b\n", "expected a mapping at the top level"),
        (b"\x89PNG\r\n\x1a\n\x00\xff", "is not UTF-8 text"),
    ],
)
def test_bad_recipe_is_one_line_naming_the_key(tmp_path: Path, text: str | bytes, needle: str) -> None:
    p = _recipe(tmp_path, text)
    with pytest.raises(InputError) as e:
        load_recipe(p)
    assert needle in str(e.value) and "\n" not in str(e.value)
    assert_one_line_error(cli("models", p), needle)  # the CLI path: same line, exit 2


@pytest.mark.parametrize(
    "sets, needle",
    [
        (["model.hiden=4"], "unknown recipe key 'model.hiden'; did you mean 'model.hidden'?"),
        (["modle.hidden=4"], "did you mean 'model'?"),
        (["data.connected.max_word=4"], "did you mean 'data.connected.max_words'?"),
        (["model.hidden=abc"], "model.hidden: expected an integer, got 'abc'"),
        (["model.hidden.x=1"], "'hidden' is not a section"),
        (["model.hidden=-1"], "must be positive"),
        (["train.batch_seconds=0"], "train.batch_seconds must be positive"),
        (["nokey"], "expected key=value"),
        (["=3"], "has an empty part"),
        (["model..hidden=3"], "has an empty part"),
        (["data.root=2024-13-45", "model.hiden=1"], "did you mean 'model.hidden'?"),  # a bad YAML date is kept as text
    ],
)
def test_bad_set_override_names_the_key(tmp_path: Path, sets: list[str], needle: str) -> None:
    p = _recipe(tmp_path, "data:\n  corpus: digits\n")
    args = [a for s in sets for a in ("--set", s)]
    assert_one_line_error(cli("models", p, *args), needle)


def test_missing_or_directory_recipe_for_every_recipe_command(tmp_path: Path) -> None:
    for cmd in ("prepare", "train", "models"):
        assert_one_line_error(cli(cmd, tmp_path / "nope.yaml"), "nope.yaml not found")
        assert_one_line_error(cli(cmd, tmp_path), "is a directory")


def test_a_good_recipe_with_overrides_still_loads(tmp_path: Path) -> None:
    p = _recipe(tmp_path, "data:\n  corpus: digits\nmodel:\n  hidden: 8\n")
    r = load_recipe(p, ["model.layers=3", "train.lr=1e-3", "data.root=2024-01-01x"])
    assert (r.model.hidden, r.model.layers, r.train.lr, r.data.root) == (8, 3, 1e-3, "2024-01-01x")
    for f in sorted((Path(__file__).resolve().parents[2] / "recipes").glob("*.yaml")):
        load_recipe(f)  # every shipped recipe passes the stricter checks
    assert os.path.basename(p) == "r.yaml"


# --- audio named in a Kaldi data directory, at prepare ------------------------------------------------------------


@pytest.mark.parametrize(
    "segments, needle",
    [
        (None, "wav.scp: u1: audio file"),
        ("u1 rec1 0.0 1.0\n", "wav.scp: rec1: audio file"),
        ("u1 rec1 zero 1.0\n", "segments: u1: start and end must be seconds"),
        ("u1 rec1 1.0 0.5\n", "segments: u1: need 0 <= start < end"),
    ],
)
def test_prepare_refuses_missing_audio_named_in_a_kaldi_dir(tmp_path: Path, segments: str | None, needle: str) -> None:
    from asrkit.data.corpora.kaldi import read_data_dir

    folder = tmp_path / "kaldi" / "train"
    folder.mkdir(parents=True)
    (folder / "wav.scp").write_text("rec1 gone.wav\n" if segments else "u1 gone.wav\n")
    if segments:
        (folder / "segments").write_text(segments)
    (folder / "text").write_text("u1 hello\n")
    with pytest.raises(InputError) as e:
        read_data_dir(folder, tmp_path / "out", "train")
    assert needle in str(e.value) and "\n" not in str(e.value)
