"""Audio I/O: read with soundfile, downmix, resample with torchaudio, validate."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from asrkit.errors import InputError

if TYPE_CHECKING:
    import torch

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".au", ".sph")


def read_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Read an audio file as mono float32 in [-1, 1] and its sample rate; bad files raise InputError."""
    import soundfile as sf

    p = Path(path)
    if not p.is_file():
        raise InputError(f"audio file {p} not found")
    try:
        data, sr = sf.read(str(p), dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises LibsndfileError, RuntimeError, TypeError...
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise InputError(f"cannot read audio file {p}: {reason}") from None
    if data.shape[0] == 0:
        raise InputError(f"audio file {p} is empty (zero samples)")
    wav = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if not np.all(np.isfinite(wav)):
        raise InputError(f"audio file {p} contains NaN or infinite samples")
    return np.ascontiguousarray(wav, dtype=np.float32), int(sr)


def resample(wav: torch.Tensor, orig_sr: int, new_sr: int) -> torch.Tensor:
    """Band-limited resampling (torchaudio); a no-op when the rates match."""
    if orig_sr == new_sr:
        return wav
    import torchaudio.functional as AF

    return AF.resample(wav, orig_sr, new_sr)


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
    import torch

    wav, sr = read_audio(path)
    return resample(torch.from_numpy(wav), sr, sample_rate)


def write_audio(path: str | Path, wav: np.ndarray | torch.Tensor, sample_rate: int) -> None:
    """Write mono audio as 16-bit PCM (format from the suffix: .wav or .flac), atomically."""
    import soundfile as sf

    from asrkit.fsutil import atomic_write

    data = wav.detach().cpu().numpy() if hasattr(wav, "detach") else np.asarray(wav)
    data = np.clip(data, -1.0, 1.0)
    fmt = "FLAC" if str(path).lower().endswith(".flac") else "WAV"
    atomic_write(path, lambda tmp: sf.write(tmp, data, sample_rate, subtype="PCM_16", format=fmt))


def list_audio(directory: str | Path) -> list[Path]:
    """Audio files under a directory (recursive), sorted."""
    d = Path(directory)
    return sorted(p for p in d.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
