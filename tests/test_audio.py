"""asrkit.audio: reading (formats, downmix, validation), resampling and writing."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from asrkit.audio import list_audio, load_audio, read_audio, resample, write_audio
from asrkit.errors import InputError


def _sine(n: int, sr: int, freq: float = 440.0, amp: float = 0.5) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * freq * np.arange(n) / sr)).astype(np.float32)


def test_read_mono_float_wav(tmp_path):
    x = _sine(1600, 16000)
    p = tmp_path / "f.wav"
    sf.write(p, x, 16000, subtype="FLOAT")
    wav, sr = read_audio(p)
    assert sr == 16000
    assert wav.dtype == np.float32 and wav.ndim == 1
    np.testing.assert_array_equal(wav, x)


def test_stereo_is_downmixed_to_mean(tmp_path):
    left = _sine(800, 8000, 300)
    right = _sine(800, 8000, 700, amp=0.25)
    p = tmp_path / "st.wav"
    sf.write(p, np.stack([left, right], axis=1), 8000, subtype="FLOAT")
    wav, sr = read_audio(p)
    assert sr == 8000 and wav.shape == (800,)
    np.testing.assert_allclose(wav, (left + right) / 2, atol=1e-7)


@pytest.mark.parametrize(
    ("subtype", "atol"), [("PCM_U8", 1 / 128), ("PCM_16", 1 / 32768), ("PCM_24", 1 / 2**23), ("FLOAT", 0.0)]
)
def test_bit_depths_scale_to_unit_range(tmp_path, subtype, atol):
    x = _sine(4000, 16000, amp=0.9)
    p = tmp_path / f"{subtype}.wav"
    sf.write(p, x, 16000, subtype=subtype)
    assert sf.info(str(p)).subtype == subtype
    wav, sr = read_audio(p)
    assert sr == 16000 and wav.shape == x.shape and wav.dtype == np.float32
    np.testing.assert_allclose(wav, x, atol=atol + 1e-7)
    assert 0.85 < np.abs(wav).max() <= 1.0


def test_resample_8k_to_16k_doubles_length():
    x = torch.from_numpy(_sine(8001, 8000, 200))
    y = resample(x, 8000, 16000)
    assert abs(y.shape[0] - 2 * 8001) <= 1
    # a 200 Hz sine stays a 200 Hz sine: compare with the ideal one away from the edges
    ideal = torch.from_numpy(_sine(y.shape[0], 16000, 200))
    assert torch.allclose(y[200:-200], ideal[200:-200], atol=2e-2)


def test_resample_same_rate_is_noop():
    x = torch.randn(100)
    assert resample(x, 16000, 16000) is x


def test_load_audio_resamples(tmp_path):
    p = tmp_path / "a.wav"
    sf.write(p, _sine(4000, 8000), 8000)
    y = load_audio(p, 16000)
    assert isinstance(y, torch.Tensor) and y.dtype == torch.float32 and y.ndim == 1
    assert abs(y.shape[0] - 8000) <= 1


def test_missing_file(tmp_path):
    p = tmp_path / "missing.wav"
    with pytest.raises(InputError) as e:
        read_audio(p)
    assert str(p) in str(e.value) and "not found" in str(e.value)


def test_text_file_named_wav(tmp_path):
    p = tmp_path / "notes.wav"
    p.write_text("this is not audio\n")
    with pytest.raises(InputError) as e:
        read_audio(p)
    assert str(p) in str(e.value)
    assert "cannot read" in str(e.value)


def test_empty_file(tmp_path):
    p = tmp_path / "empty.wav"
    sf.write(p, np.zeros(0, dtype=np.float32), 16000)
    with pytest.raises(InputError) as e:
        read_audio(p)
    assert str(p) in str(e.value) and "empty" in str(e.value)


def test_zero_byte_file(tmp_path):
    p = tmp_path / "zero.flac"
    p.write_bytes(b"")
    with pytest.raises(InputError) as e:
        read_audio(p)
    assert str(p) in str(e.value)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_samples(tmp_path, bad):
    x = _sine(1000, 16000)
    x[500] = bad
    p = tmp_path / "nan.wav"
    sf.write(p, x, 16000, subtype="FLOAT")
    with pytest.raises(InputError) as e:
        read_audio(p)
    assert str(p) in str(e.value) and "NaN" in str(e.value)


@pytest.mark.parametrize("suffix", [".wav", ".flac", ".FLAC"])
def test_write_read_round_trip(tmp_path, suffix):
    x = _sine(3000, 16000, amp=0.7)
    p = tmp_path / "sub" / f"out{suffix}"
    write_audio(p, torch.from_numpy(x), 16000)
    info = sf.info(str(p))
    assert info.format == ("FLAC" if suffix.lower() == ".flac" else "WAV")
    assert info.subtype == "PCM_16" and info.samplerate == 16000 and info.channels == 1
    wav, sr = read_audio(p)
    assert sr == 16000 and wav.shape == x.shape
    np.testing.assert_allclose(wav, x, atol=1 / 32768 + 1e-7)
    assert [q.name for q in p.parent.iterdir()] == [p.name]  # no temp files left behind


def test_write_clips_out_of_range(tmp_path):
    p = tmp_path / "clip.wav"
    write_audio(p, np.array([2.0, -3.0, 0.5], dtype=np.float32), 8000)
    wav, _ = read_audio(p)
    np.testing.assert_allclose(wav, [32767 / 32768, -1.0, 0.5], atol=1e-6)


def test_list_audio(tmp_path):
    (tmp_path / "b").mkdir()
    for name in ("b/x.flac", "a.wav", "c.WAV", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    assert [p.relative_to(tmp_path).as_posix() for p in list_audio(tmp_path)] == ["a.wav", "b/x.flac", "c.WAV"]


@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_speed_perturb_scales_duration_and_pitch(factor):
    from asrkit.audio import speed_perturb

    sr = 16000
    t = torch.arange(sr) / sr
    tone = torch.sin(2 * torch.pi * 440.0 * t)
    out = speed_perturb(tone, sr, factor)
    assert abs(len(out) - sr / factor) <= 2
    spectrum = torch.fft.rfft(out * torch.hann_window(len(out)))
    peak_hz = int(spectrum.abs().argmax()) * sr / len(out)
    assert abs(peak_hz - 440.0 * factor) < 3.0


def test_speed_perturb_identity():
    from asrkit.audio import speed_perturb

    x = torch.randn(1000)
    assert speed_perturb(x, 16000, 1.0) is x
