"""Fuzz the audio readers decode and prepare use: random bytes and mutated WAV/FLAC files may only raise InputError.

Every file goes through what `asrkit decode` does with an input: the header read that sorts inputs into
batches (`_duration`), `audio_info`, `read_audio`, `load_audio` (downmix, resampling to 16 kHz) and the
log-mel + CMVN features. A file that is read must give finite, 1-D float32 audio and finite features.
The short pass runs by default (~100 examples per target); `pytest -m fuzz tests/robustness` runs the long one.
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asrkit.audio import MAX_RATE, MIN_RATE, audio_info, load_audio, read_audio
from asrkit.commands.decode import _duration
from asrkit.data.inputs import InputItem
from asrkit.errors import InputError
from asrkit.features import LogMel, utterance_cmvn

SR = 16000
SHORT = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
LONG = settings(
    max_examples=int(os.environ.get("ASRKIT_FUZZ_EXAMPLES", "4000")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
)
_EXTRACTOR = LogMel(SR, 40)


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder for the module's examples (each overwrites the last file; pytest removes old folders)."""
    return tmp_path_factory.mktemp("fuzz_audio")


def _seed(fmt: str, subtype: str, channels: int, rate: int) -> bytes:
    """A small valid file to mutate."""
    t = np.arange(800) / rate
    x = (0.4 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, np.stack([x] * channels, axis=1) if channels > 1 else x, rate, subtype=subtype, format=fmt)
    return buf.getvalue()


SEEDS = [
    ("wav", _seed("WAV", "PCM_16", 1, 16000)),
    ("wav", _seed("WAV", "PCM_U8", 1, 8000)),
    ("wav", _seed("WAV", "PCM_24", 2, 44100)),
    ("wav", _seed("WAV", "FLOAT", 1, 22050)),
    ("flac", _seed("FLAC", "PCM_16", 1, 16000)),
    ("flac", _seed("FLAC", "PCM_24", 2, 48000)),
]


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, bytes]:
    """A seed file with a few bytes replaced (mostly in the header), cut short, or grown."""
    suffix, data = draw(st.sampled_from(SEEDS))
    b = bytearray(data)
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "flip", "flip", "word", "cut", "insert"]))
        hi = min(len(b) - 1, draw(st.sampled_from([64, 128, len(b) - 1])))
        if hi < 0:
            break
        i = draw(st.integers(0, hi))
        if op == "flip":
            b[i] = draw(st.integers(0, 255))
        elif op == "word":  # a 32-bit field (sizes, rates, counts) set to an edge value
            v = draw(st.sampled_from([0, 1, 7, 0x7FFFFFFF, 0xFFFFFFFF, 0x80000000, 44101, 1_000_003]))
            b[i : i + 4] = int(v).to_bytes(4, "little")
        elif op == "cut":
            del b[i:]
        else:
            b[i:i] = draw(st.binary(min_size=1, max_size=16))
    return suffix, bytes(b)


def _check(d: Path, suffix: str, data: bytes) -> None:
    """Run decode's reading steps on the file; only InputError may escape, and what is read must be sane."""
    p = d / f"x.{suffix}"
    p.write_bytes(data)
    d = _duration(InputItem("x", str(p)), 0.01)
    assert d == math.inf or (d >= 0 and math.isfinite(d))
    try:
        frames, rate = audio_info(p)
        assert MIN_RATE <= rate <= MAX_RATE and frames >= 0
        wav, sr = read_audio(p)
        assert wav.ndim == 1 and wav.dtype == np.float32 and len(wav) > 0 and np.isfinite(wav).all() and sr == rate
        if len(wav) / sr > 120:  # a header claiming hours: reading it is the test, not the resampling
            return
        x = load_audio(p, SR)
        assert x.ndim == 1 and x.dtype == torch.float32 and bool(torch.isfinite(x).all())
        feats = utterance_cmvn(_EXTRACTOR(x))
        assert feats.shape[0] >= 1 and bool(torch.isfinite(feats).all())
    except InputError as e:
        msg = str(e)
        assert str(p) in msg and "\n" not in msg


@SHORT
@given(mutated())
def test_mutated_files_short(fuzz_dir: Path, case: tuple[str, bytes]) -> None:
    _check(fuzz_dir, *case)


@SHORT
@given(st.sampled_from(["wav", "flac", "ogg"]), st.binary(max_size=512))
def test_random_bytes_short(fuzz_dir: Path, suffix: str, data: bytes) -> None:
    _check(fuzz_dir, suffix, data)


@SHORT
@given(st.sampled_from(SEEDS), st.integers(0, 200))
def test_truncated_files_short(fuzz_dir: Path, seed: tuple[str, bytes], keep: int) -> None:
    suffix, data = seed
    _check(fuzz_dir, suffix, data[:keep])


@pytest.mark.fuzz
@LONG
@given(mutated())
def test_mutated_files_long(fuzz_dir: Path, case: tuple[str, bytes]) -> None:
    _check(fuzz_dir, *case)


@pytest.mark.fuzz
@LONG
@given(st.sampled_from(["wav", "flac", "ogg"]), st.binary(max_size=4096))
def test_random_bytes_long(fuzz_dir: Path, suffix: str, data: bytes) -> None:
    _check(fuzz_dir, suffix, data)


@pytest.mark.fuzz
@LONG
@given(st.sampled_from(SEEDS), st.data())
def test_truncated_files_long(fuzz_dir: Path, seed: tuple[str, bytes], data: st.DataObject) -> None:
    suffix, raw = seed
    _check(fuzz_dir, suffix, raw[: data.draw(st.integers(0, len(raw)))])
