"""Audio I/O: read with soundfile, downmix, resample with torchaudio, validate."""

from __future__ import annotations

import struct
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from asrkit.errors import InputError
from asrkit.fsutil import atomic_write

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".au", ".sph")


MIN_RATE, MAX_RATE = 1000, 768000  # Hz: what a speech file can have; a header outside this is damaged or not speech
MAX_SAMPLE = (
    1e6  # float files may exceed 1.0 (integer-scaled floats reach 32768); beyond this the power spectrum overflows
)


def _unreadable(p: Path, e: Exception) -> InputError:
    """The one-line error for a file soundfile cannot open or decode (its own message without the repeated path)."""
    reason = str(e).splitlines()[0] if str(e) else type(e).__name__
    reason = reason.replace(f"Error opening {str(p)!r}: ", "").strip().rstrip(".") or type(e).__name__
    return InputError(f"cannot read audio file {p}: {reason}; is it damaged, or not audio?")


def _check_rate(p: Path, sr: int) -> None:
    if not MIN_RATE <= sr <= MAX_RATE:
        raise InputError(
            f"audio file {p} says its sample rate is {sr} Hz, outside {MIN_RATE}-{MAX_RATE} Hz; is the header damaged?"
        )


def audio_info(path: str | Path) -> tuple[int, int]:
    """(frames, sample rate) from an audio file's header without reading the samples; bad files raise InputError."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"audio file {p} not found")
    if p.stat().st_size == 0:
        raise InputError(f"audio file {p} is empty (0 bytes)")
    try:
        info = sf.info(str(p))
    except Exception as e:  # LibsndfileError, RuntimeError, TypeError...
        raise _unreadable(p, e) from None
    _check_rate(p, int(info.samplerate))
    return int(info.frames), int(info.samplerate)


def wav_shortfall(path: str | Path, frames: int) -> float | None:
    """For a RIFF WAV whose data chunk promises more than the `frames` read (a file cut short: libsndfile reads what
    is there without a word), the fraction of the promised samples that is missing; None otherwise."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            block = None
            while True:
                chunk = f.read(8)
                if len(chunk) < 8:
                    return None
                cid, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
                if cid == b"fmt ":
                    fmt = f.read(size + size % 2)
                    block = struct.unpack("<H", fmt[12:14])[0] if len(fmt) >= 14 else None
                elif cid == b"data":
                    if not block or size in (0, 0xFFFFFFFF):  # streamed WAVs leave the size unset
                        return None
                    promised = size // block
                    return (promised - frames) / promised if promised > frames else None
                else:
                    f.seek(size + size % 2, 1)
    except OSError:
        return None


def read_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Read an audio file as mono float32 and its sample rate; bad files raise InputError naming the file.

    Any format libsndfile reads (8/16/24/32-bit PCM, float, double; WAV, FLAC, OGG...). Several channels are
    averaged to one. Refused with a one-line InputError: a missing, 0-byte or unreadable file, one without a
    single sample, a sample rate outside MIN_RATE..MAX_RATE (a damaged header), NaN or infinite samples and float
    samples above MAX_SAMPLE — refused rather than replaced, since a file holding them is corrupt and any repair
    would be a guess.
    """
    p = Path(path)
    audio_info(p)  # the header first: a damaged one is named before any sample is read
    try:
        data, sr = sf.read(str(p), dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises LibsndfileError, RuntimeError, TypeError, MemoryError...
        raise _unreadable(p, e) from None
    if data.shape[0] == 0 or data.shape[1] == 0:
        raise InputError(f"audio file {p} is empty (a valid header but zero samples)")
    wav = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    check_samples(wav, int(sr), f"audio file {p}")
    return np.ascontiguousarray(wav, dtype=np.float32), int(sr)


def check_samples(wav: np.ndarray, sample_rate: int, what: str, offset: float = 0.0) -> None:
    """Refuse NaN or infinite samples and float samples above MAX_SAMPLE, naming `what` and the time of the first.

    `offset`: seconds before `wav`'s first sample (a chunk of a longer stream).
    """
    bad = ~np.isfinite(wav)
    if bad.any():
        first = int(np.argmax(bad))
        raise InputError(
            f"{what} contains {int(bad.sum())} NaN or infinite samples (the first at {offset + first / sample_rate:.3f} s); "
            "repair or remove the file"
        )
    peak = float(np.abs(wav).max()) if wav.size else 0.0
    if peak > MAX_SAMPLE:
        raise InputError(f"{what} holds samples as large as {peak:.3g} (full scale is 1.0); is it damaged?")


MAX_RATIO_TERM = 1000  # resampling by p/q costs ~p·q: rates whose exact ratio has larger terms use a close one


def resample(wav: torch.Tensor, orig_sr: int, new_sr: int) -> torch.Tensor:
    """Band-limited resampling (torchaudio); a no-op when the rates match.

    Common rates (8k, 11.025k, 22.05k, 44.1k, 48k... to 16k) resample exactly. An odd rate such as 44101 Hz has a
    reduced ratio with terms in the tens of thousands, which torchaudio turns into minutes of work and gigabytes;
    such a ratio is replaced by the closest one with terms of at most MAX_RATIO_TERM (a length error under 1e-6).
    """
    if orig_sr == new_sr:
        return wav
    ratio = Fraction(new_sr, orig_sr)
    if max(ratio.numerator, ratio.denominator) > MAX_RATIO_TERM:
        ratio = ratio.limit_denominator(max(1, int(MAX_RATIO_TERM * min(1.0, orig_sr / new_sr))))
    return AF.resample(wav, ratio.denominator, ratio.numerator)


def speed_perturb(wav: torch.Tensor, sample_rate: int, factor: float) -> torch.Tensor:
    """Kaldi/sox-style speed perturbation: `factor` > 1 is faster and higher (tempo and pitch change together)."""
    if factor == 1.0:
        return wav
    # resampling from rate·factor down to rate shortens the signal by `factor`; round to 100 Hz so the
    # polyphase filter stays small
    orig = int(round(sample_rate * factor / 100)) * 100
    return resample(wav, orig, sample_rate)


def load_audio(path: str | Path, sample_rate: int) -> torch.Tensor:
    """Read, downmix and resample to `sample_rate`: a 1-D float32 tensor."""
    wav, sr = read_audio(path)
    return resample(torch.from_numpy(wav), sr, sample_rate)


def write_audio(path: str | Path, wav: np.ndarray | torch.Tensor, sample_rate: int) -> None:
    """Write mono audio as 16-bit PCM (format from the suffix: .wav or .flac), atomically."""
    data = wav.detach().cpu().numpy() if hasattr(wav, "detach") else np.asarray(wav)
    data = np.clip(data, -1.0, 1.0)
    fmt = "FLAC" if str(path).lower().endswith(".flac") else "WAV"
    atomic_write(path, lambda tmp: sf.write(tmp, data, sample_rate, subtype="PCM_16", format=fmt))


def list_audio(directory: str | Path) -> list[Path]:
    """Audio files under a directory (recursive), sorted."""
    d = Path(directory)
    return sorted(p for p in d.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
