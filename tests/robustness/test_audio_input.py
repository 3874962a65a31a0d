"""Hostile audio through `asrkit decode` and `asrkit prepare`: a one-line error naming the file, or a transcript.

Each damaged file is refused with exit code 2 and one stderr line that names it (never a traceback); each
unusual but valid file (8/24-bit, float, stereo, 8-48 kHz, a clip of a few samples, silence) decodes. The model
is an untrained digits-sized checkpoint saved through the library: these checks are about input handling, so
only the silence case needs a transcript, and it gets an empty one without running the model.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from asrkit.audio import load_audio, read_audio
from asrkit.cli import main
from asrkit.errors import InputError

SR = 16000


def _tone(seconds: float, sr: int, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * 440 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained character CTC model with the digits recipe's features (16 kHz, 40 log-mels, utterance CMVN)."""
    from asrkit.config import recipe_from_dict
    from asrkit.features import feature_settings
    from asrkit.models import build_model
    from asrkit.text import CharTokenizer
    from asrkit.models.checkpoint import save_checkpoint

    recipe = recipe_from_dict(
        {
            "name": "r",
            "features": {"n_mels": 40},
            "model": {"name": "bigru", "frontend": "stack", "subsample": 3, "hidden": 32, "layers": 1},
        }
    )
    tok = CharTokenizer(sorted(set("zero one two three four five six seven eight nine")))
    cfg = {**recipe.to_dict()["model"], "n_feats": 40, "n_tokens": len(tok)}
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("robust_model") / "model.pt"
    state = {
        "model_config": cfg,
        "tokenizer": tok.to_dict(),
        "features": feature_settings(recipe.features, SR),
        "model": build_model(cfg).state_dict(),
    }
    save_checkpoint(path, state)
    return path


def run(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    """`asrkit ARGS` in this process: exit code, stdout, stderr."""
    capsys.readouterr()
    rc = main(list(args))
    out = capsys.readouterr()
    return rc, out.out, out.err


def assert_one_line_error(rc: int, err: str, culprit: Path | str, *words: str, code: int = 2) -> str:
    """Exit code `code` (2: bad input) and one `asrkit: error:` line naming the culprit (and the given words), no traceback."""
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert rc == code, err
    assert len(lines) == 1 and lines[0].startswith("asrkit: error: "), err
    assert str(culprit) in lines[0], err
    for w in words:
        assert w in lines[0], err
    return lines[0]


# ---- damaged files ---------------------------------------------------------------------------------------------


def _damaged(kind: str, d: Path) -> Path:
    """One damaged audio file of the given kind."""
    ok = d / "ok.wav"
    sf.write(ok, _tone(0.5, SR), SR, subtype="PCM_16")
    p = d / f"{kind}.wav"
    if kind == "zero_bytes":
        p.write_bytes(b"")
    elif kind == "no_frames":
        sf.write(p, np.zeros(0, np.float32), SR)
    elif kind == "truncated_header":
        p.write_bytes(ok.read_bytes()[:20])
    elif kind == "text_file":
        p.write_text("utt1 this is a transcript, not audio\n")
    elif kind == "flac_truncated":
        flac = d / "ok.flac"
        sf.write(flac, _tone(0.5, SR), SR)
        p = d / "flac_truncated.flac"
        p.write_bytes(flac.read_bytes()[:60])
    elif kind in ("nan", "inf"):
        x = _tone(0.5, SR)
        x[1234] = np.nan if kind == "nan" else -np.inf
        sf.write(p, x, SR, subtype="FLOAT")
    elif (
        kind == "huge_float"
    ):  # a float file with a damaged sample: its power spectrum once overflowed into NaN features
        x = _tone(0.5, SR)
        x[100] = 3e19
        sf.write(p, x, SR, subtype="FLOAT")
    elif (
        kind == "rate_500hz"
    ):  # a header whose sample rate is no speech rate (resampling it up would need 32x the memory)
        sf.write(p, _tone(1.0, 500), 500)
    return p


DAMAGED = {
    "zero_bytes": ("empty (0 bytes)",),
    "no_frames": ("empty", "zero samples"),
    "truncated_header": ("cannot read audio file", "damaged"),
    "text_file": ("cannot read audio file", "not recognised"),
    "flac_truncated": ("cannot read audio file",),
    "nan": ("NaN or infinite", "0.077 s"),
    "inf": ("NaN or infinite", "0.077 s"),
    "huge_float": ("as large as 3e+19", "damaged"),
    "rate_500hz": ("500 Hz", "outside"),
}


@pytest.mark.parametrize("kind", list(DAMAGED))
def test_damaged_audio_is_named_in_one_line_by_decode(
    kind: str, model: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    bad = _damaged(kind, tmp_path)
    rc, out, err = run(capsys, "decode", "--quiet", "--model", str(model), str(tmp_path / "ok.wav"), str(bad))
    # the bad input is named in one line, the good one beside it still decoded, and the run ends non-zero
    assert rc == 2 and "Traceback" not in err and [line.split("\t")[0] for line in out.splitlines()] == ["ok"]
    skipped, last = err.strip().splitlines()
    assert skipped.startswith("decode: skipped: ") and str(bad) in skipped and all(w in skipped for w in DAMAGED[kind])
    assert last == "asrkit: error: 1 of 2 inputs could not be read (each named above); the other 1 are decoded"
    with pytest.raises(InputError, match=re.escape(str(bad))):
        load_audio(bad, SR)  # the library call a script would make says the same


def test_a_wav_cut_short_is_decoded_with_a_note_and_a_few_bytes_are_not_called_silent(
    model: Path, tmp_path: Path, capsys
) -> None:
    full = tmp_path / "full.wav"
    sf.write(full, _tone(1.0, SR), SR, subtype="PCM_16")
    data = full.read_bytes()
    (tmp_path / "half.wav").write_bytes(data[: 44 + (len(data) - 44) // 2])
    (tmp_path / "crumb.wav").write_bytes(data[:100])  # a header and 28 samples
    rc, out, err = run(
        capsys,
        "decode",
        "--quiet",
        "--model",
        str(model),
        str(full),
        str(tmp_path / "half.wav"),
        str(tmp_path / "crumb.wav"),
    )
    assert rc == 0 and sorted(line.split("\t")[0] for line in out.splitlines()) == ["crumb", "full", "half"]
    assert f"decode: {tmp_path / 'half.wav'} is cut short: 50 % of the samples its header promises are missing" in err
    assert f"decode: {tmp_path / 'crumb.wav'} is cut short: 100 %" in err
    assert f"{tmp_path / 'crumb.wav'} holds 1.8 ms of audio, less than one 25 ms frame: empty transcript" in err
    assert "silent" not in err and "crumb\t\n" in out
    assert "full.wav is cut short" not in err


def test_files_of_the_same_name_in_two_folders_are_told_apart_by_their_folder(
    model: Path, tmp_path: Path, capsys
) -> None:
    for word in ("one", "seven"):
        (tmp_path / "sc" / word).mkdir(parents=True)
        sf.write(tmp_path / "sc" / word / "0a7c2a8d_nohash_0.wav", _tone(0.6, SR), SR)
    rc, out, err = run(
        capsys, "decode", "--quiet", "--model", str(model), str(tmp_path / "sc" / "one"), str(tmp_path / "sc" / "seven")
    )
    assert rc == 0, err
    assert [line.split("\t")[0] for line in out.splitlines()] == ["one/0a7c2a8d_nohash_0", "seven/0a7c2a8d_nohash_0"]


@pytest.mark.parametrize("kind", ["zero_bytes", "text_file", "truncated_header", "nan", "no_frames"])
def test_damaged_audio_is_named_in_one_line_by_prepare(
    kind: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """A Kaldi data dir whose wav.scp points at a damaged file: prepare stops with its name (the header scan once let
    soundfile's own LibsndfileError escape, exit 1)."""
    bad = _damaged(kind, tmp_path)
    recipe = _kaldi_recipe(tmp_path, {"a1": tmp_path / "ok.wav", "bad": bad})
    rc, _, err = run(capsys, "prepare", "--quiet", str(recipe))
    assert_one_line_error(rc, err, bad)


@pytest.mark.parametrize("kind", ["text_file", "missing"])
def test_damaged_segmented_recording_is_named_by_prepare(
    kind: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """A Kaldi `segments` file cutting utterances from a damaged or missing recording (once a bare LibsndfileError, exit 1)."""
    bad = _damaged("text_file", tmp_path)  # writes ok.wav too
    if kind == "missing":
        bad = tmp_path / "gone.wav"
    recipe = _kaldi_recipe(tmp_path, {"a1": tmp_path / "ok.wav", "bad": bad})
    train = tmp_path / "kaldi" / "train"
    (train / "wav.scp").write_text(f"rec1 {tmp_path / 'ok.wav'}\nrec2 {bad}\n")
    (train / "segments").write_text("a1 rec1 0.0 0.4\nbad rec2 0.0 0.4\n")
    rc, _, err = run(capsys, "prepare", "--quiet", str(recipe))
    assert_one_line_error(rc, err, bad)


def _kaldi_recipe(tmp: Path, train: dict[str, Path]) -> Path:
    """A recipe over a Kaldi data dir with these train recordings (one dev utterance, a copy of the first)."""
    first = next(iter(train.values()))
    for name, files in (("train", train), ("dev", {"d1": first})):
        d = tmp / "kaldi" / name
        d.mkdir(parents=True)
        (d / "wav.scp").write_text("".join(f"{u} {p}\n" for u, p in files.items()))
        (d / "text").write_text("".join(f"{u} one two\n" for u in files))
    recipe = tmp / "r.yaml"
    recipe.write_text(
        f"name: k\ndata: {{corpus: kaldi, root: {tmp / 'kaldi'}, out_dir: {tmp / 'out'}, splits: {{train: [train], dev: [dev]}}}}\n"
        "features: {n_mels: 40}\n"
    )
    return recipe


# ---- unusual but valid files ----------------------------------------------------------------------------------


def _valid_files(d: Path) -> dict[str, Path]:
    """The same 1.2 s signal in every sample format, channel count and rate the decoder must take."""
    files = {}
    for subtype in ("PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"):
        files[subtype] = d / f"{subtype.lower()}.wav"
        sf.write(files[subtype], _tone(1.2, SR), SR, subtype=subtype)
    files["stereo"] = d / "stereo.wav"
    sf.write(files["stereo"], np.stack([_tone(1.2, SR), _tone(1.2, SR)], axis=1), SR, subtype="PCM_16")
    for rate in (8000, 22050, 44100, 48000):
        files[f"{rate}Hz"] = d / f"rate{rate}.flac"
        sf.write(files[f"{rate}Hz"], _tone(1.2, rate), rate)
    files["4ms_clip"] = (
        d / "clip.wav"
    )  # shorter than half an analysis window: once a RuntimeError from the STFT's padding
    sf.write(files["4ms_clip"], _tone(0.25, SR)[1000:1064], SR)
    return files


def test_every_valid_format_decodes_to_one_line_each(
    model: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    files = _valid_files(tmp_path)
    rc, out, err = run(capsys, "decode", "--quiet", "--json", "--model", str(model), *map(str, files.values()))
    assert rc == 0, err
    assert "Traceback" not in err
    recs = [json.loads(line) for line in out.splitlines()]
    assert [r["id"] for r in recs] == [p.stem for p in files.values()]
    assert all(np.isfinite(r["score"]) for r in recs)


def test_formats_rates_and_channels_give_the_features_of_the_16_bit_mono_file(model: Path, tmp_path: Path) -> None:
    """Bit depth, float, a downmixed stereo copy and a resampled copy all reach the model as (nearly) the same features."""
    from asrkit.models.acoustic import AcousticModel

    am = AcousticModel.load(model, "cpu")
    files = _valid_files(tmp_path)
    ref = am.item_features(str(files["PCM_16"]), None)
    assert ref.shape[0] == 121  # 1.2 s at a 10 ms hop
    for name, p in files.items():
        if name in ("4ms_clip", "PCM_U8"):
            continue
        f = am.item_features(str(p), None)
        assert abs(f.shape[0] - ref.shape[0]) <= 1, name
        n = min(f.shape[0], ref.shape[0])
        err = (f[2 : n - 2] - ref[2 : n - 2]).abs().mean().item()  # in CMVN units: the 8 kHz copy lacks the top band
        assert err < 0.05, (name, err)
    # 8 bits: the samples within a quantisation step (the features of a pure tone's empty bands are that noise)
    u8, pcm16 = read_audio(files["PCM_U8"])[0], read_audio(files["PCM_16"])[0]
    assert np.abs(u8 - pcm16).max() <= 1 / 128 + 1e-6


def test_odd_sample_rate_resamples_quickly(tmp_path: Path, monkeypatch) -> None:
    """44101 Hz reduces to a 16000/44101 ratio: torchaudio took 56 s and gigabytes for 0.1 s of it; now a bounded one.

    What is checked is the mechanism, not a wall-clock time: torchaudio is asked for a ratio whose terms (its cost
    grows with their product) stay within MAX_RATIO_TERM."""
    import torchaudio.functional as AF

    from asrkit.audio import MAX_RATIO_TERM

    asked = []
    real = AF.resample
    monkeypatch.setattr(AF, "resample", lambda w, a, b, *r, **k: asked.append((a, b)) or real(w, a, b, *r, **k))
    p = tmp_path / "odd.wav"
    sf.write(p, _tone(2.0, 44101), 44101)
    wav = load_audio(p, SR)
    assert len(asked) == 1 and max(asked[0]) <= MAX_RATIO_TERM and asked[0] != (44101, 16000)
    assert abs(wav.shape[0] - 2 * SR) <= 1
    # the resampled tone is the tone at the new rate (away from the edges)
    n = min(wav.shape[0], 2 * SR) - 800
    assert np.abs(wav.numpy()[800:n] - _tone(2.0, SR)[800:n]).max() < 0.02


def test_silence_decodes_to_an_empty_transcript(model: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Digital silence (and a -80 dBFS hiss) once went through utterance CMVN, which blew it up into speech-like
    features: a trained digits model read "igh igigi" in it. Now it is an empty line, the speech next to it decoded."""
    sil, hiss, speech = tmp_path / "silence.wav", tmp_path / "hiss.flac", tmp_path / "speech.wav"
    sf.write(sil, np.zeros(2 * SR, np.float32), SR)
    sf.write(hiss, np.random.default_rng(0).normal(0, 1e-4, SR).astype(np.float32), SR)
    sf.write(speech, _tone(1.0, SR), SR)
    rc, out, err = run(capsys, "decode", "--quiet", "--json", "--model", str(model), str(sil), str(hiss), str(speech))
    assert rc == 0 and "Traceback" not in err
    recs = {r["id"]: r for r in map(json.loads, out.splitlines())}
    assert recs["silence"]["text"] == recs["hiss"]["text"] == ""
    assert recs["silence"]["words"] == [] and recs["silence"]["tokens"] == []
    assert recs["speech"]["tokens"]  # the untrained model emits something for a real signal: it did run on that one
    assert str(sil) in err and "silent" in err


def test_prepare_reads_unusual_formats(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """8-bit, 24-bit, float, stereo and 44.1 kHz recordings in one training set: prepared at the recipe's 16 kHz."""
    from asrkit.data.featstore import FeatureStore
    from asrkit.data.manifest import read_manifest

    files = _valid_files(tmp_path)
    keep = {k: files[k] for k in ("PCM_U8", "PCM_24", "FLOAT", "stereo", "44100Hz")}
    rc, _, err = run(capsys, "prepare", "--quiet", str(_kaldi_recipe(tmp_path, keep)))
    assert rc == 0, err
    utts = read_manifest(tmp_path / "out" / "train.jsonl")
    feats = FeatureStore(tmp_path / "out" / "feats" / "train")
    assert sorted(u.id for u in utts) == sorted(keep)
    assert {feats[u].shape[0] for u in keep} <= {120, 121}  # 1.2 s at 10 ms, whatever the file's rate or depth
    assert all(torch.isfinite(feats[u].float()).all() for u in keep)


# ---- long inputs -----------------------------------------------------------------------------------------------


def test_long_input_goes_through_the_chunked_path(model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An input longer than --chunk-seconds runs through `chunked_log_probs` in windows; a short one does not."""
    import asrkit.decode.chunked as chunked
    import asrkit.commands.decode as run_mod

    calls: list[tuple[int, int]] = []
    real = chunked.chunked_log_probs

    def spy(am, feats, chunk_s, overlap_s, *a, **kw):
        windows = chunked.plan_windows(feats.shape[0], chunked._subsample(am), int(chunk_s * 100), int(overlap_s * 100))
        calls.append((feats.shape[0], len(windows)))
        return real(am, feats, chunk_s, overlap_s, *a, **kw)

    monkeypatch.setattr(chunked, "chunked_log_probs", spy)  # decode reaches it through chunked.batch_log_probs
    long_, short = tmp_path / "long.wav", tmp_path / "short.wav"
    sf.write(long_, _tone(12.0, SR), SR)
    sf.write(short, _tone(2.0, SR), SR)
    out = tmp_path / "hyp.txt"
    run_mod.decode(model, [long_], {"chunk_seconds": 3.0}, output=out, quiet=True)
    assert len(calls) == 1 and calls[0][0] == 1201 and calls[0][1] >= 4
    assert out.read_text().startswith("long\t")
    calls.clear()
    run_mod.decode(model, [short], {"chunk_seconds": 3.0}, output=out, quiet=True)
    assert calls == []


@pytest.mark.slow
def test_ten_minute_file_decodes_in_bounded_memory(model: Path, tmp_path: Path) -> None:
    """10 minutes of 44.1 kHz stereo 24-bit audio (downmix + resampling + the chunked path) under 1.5 GB peak RSS."""
    if not Path("/usr/bin/time").exists():
        pytest.skip("GNU time (/usr/bin/time) is not installed")
    exe = Path(sys.executable).parent / "asrkit"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "asrkit"]

    rate = 44100
    one = _tone(10.0, rate)
    audio = tmp_path / "ten_minutes.wav"
    with sf.SoundFile(audio, "w", rate, 2, subtype="PCM_24") as f:
        for _ in range(60):
            f.write(np.stack([one, 0.5 * one], axis=1))
    proc = subprocess.run(
        ["/usr/bin/time", "-v", *cmd, "decode", "--quiet", "--model", str(model), str(audio)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("ten_minutes\t")
    peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
    print(f"ten-minute decode: peak RSS {peak_kb / 1024:.0f} MB")
    assert peak_kb * 1024 < 1.5e9


# ---- where decode writes ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["a_directory", "under_a_file", "ctm_under_a_file"])
def test_unwritable_output_is_refused_before_decoding(
    where: str, model: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Once an IsADirectoryError/FileExistsError at the very end (exit 1, a temp file's name); now exit 2 up front."""
    audio = tmp_path / "a.wav"
    sf.write(audio, _tone(1.0, SR), SR)
    (tmp_path / "file").write_text("keep me\n")
    target = {
        "a_directory": tmp_path,
        "under_a_file": tmp_path / "file" / "out.txt",
        "ctm_under_a_file": tmp_path / "file" / "x.ctm",
    }[where]
    option = "--ctm" if where.startswith("ctm") else "--output"
    rc, out, err = run(capsys, "decode", "--quiet", "--model", str(model), option, str(target), str(audio))
    assert_one_line_error(rc, err, target, option)
    assert (tmp_path / "file").read_text() == "keep me\n"


def test_disk_full_while_writing_keeps_the_previous_output(
    model: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    import asrkit.fsutil as fsutil

    audio, out_file = tmp_path / "a.wav", tmp_path / "hyp.txt"
    sf.write(audio, _tone(1.0, SR), SR)
    out_file.write_text("a\tthe previous run's transcript\n")

    def full(tmp: str) -> None:
        Path(tmp).write_text("a\tpart")
        raise OSError(errno.ENOSPC, "No space left on device")

    real = fsutil.atomic_write
    monkeypatch.setattr(fsutil, "atomic_write", lambda path, write: real(path, full))
    rc, _, err = run(capsys, "decode", "--quiet", "--model", str(model), "--output", str(out_file), str(audio))
    assert_one_line_error(
        rc, err, out_file, "no space left on device", code=1
    )  # the machine's fault, not the input's: exit 1
    assert out_file.read_text() == "a\tthe previous run's transcript\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.wav", "hyp.txt"]  # no temp file left
