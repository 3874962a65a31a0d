"""CMU Sphinx corpus files: `.mfc` cepstra, `TEXT (utt-id)` transcriptions, and MFCCs for Sphinx-style audio."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
import torchaudio

from asrkit.errors import InputError

N_CEPS = 13  # sphinx_fe's default, and AN4's
_LINE = re.compile(r"^(?P<text>.*?)\s*\((?P<id>[^()\s]+)\)\s*$")


def read_mfc(path: str | Path, n_ceps: int = N_CEPS) -> np.ndarray:
    """A Sphinx feature file → (frames, n_ceps) float32.

    The format is an int32 count of the floats that follow, then the floats (frame after frame). Sphinx writes
    big-endian; it tells the byte order by which reading of the header matches the file's size, and so do we.
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise InputError(f"Sphinx feature file {p}: cannot read it ({e.strerror or e})") from None
    if len(raw) < 4:
        raise InputError(f"Sphinx feature file {p}: {len(raw)} bytes, too short for the 4-byte header")
    body = len(raw) - 4
    for order in (">", "<"):
        count = int(np.frombuffer(raw[:4], dtype=f"{order}i4")[0])
        if count >= 0 and count * 4 == body:
            break
    else:
        count = int(np.frombuffer(raw[:4], dtype=">i4")[0])
        raise InputError(
            f"Sphinx feature file {p}: the header announces {count} floats but {body} bytes follow "
            f"(truncated, or not a Sphinx .mfc file)"
        )
    if count % n_ceps:
        raise InputError(f"Sphinx feature file {p}: {count} floats is not a whole number of {n_ceps}-dim frames")
    feats = np.frombuffer(raw, dtype=f"{order}f4", count=count, offset=4).reshape(-1, n_ceps).astype(np.float32)
    if not np.isfinite(feats).all():
        raise InputError(f"Sphinx feature file {p}: holds NaN or infinite values")
    return feats


def write_mfc(path: str | Path, feats: np.ndarray) -> None:
    """Write (frames, n_ceps) features in the Sphinx layout (big-endian count + float32s)."""
    a = np.ascontiguousarray(feats, dtype=">f4")
    with open(path, "wb") as f:
        f.write(np.array([a.size], dtype=">i4").tobytes())
        f.write(a.tobytes())


def read_transcription(path: str | Path) -> list[tuple[str, str]]:
    """A Sphinx transcription (`TEXT (utt-id)` per line) → [(utt-id, text)], in file order."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"transcription file {p} not found")
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for n, line in enumerate(p.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        m = _LINE.match(line.strip())
        if not m:
            raise InputError(f"{p}:{n}: expected 'TEXT (utterance-id)', got {line.strip()!r}")
        uid = m.group("id")
        if uid in seen:
            raise InputError(f"{p}:{n}: utterance {uid!r} is transcribed twice")
        seen.add(uid)
        out.append((uid, m.group("text")))
    return out


def sphinx_mfcc(wav: np.ndarray, sample_rate: int = 16000) -> np.ndarray:
    """13 MFCCs at 100 frames/s with AN4's settings (40 mel filters, 130-6800 Hz, 512-point FFT, 25.6 ms window),
    for corpora shipped as audio: close to, not bit-equal with, sphinx_fe's own cepstra."""
    mfcc = torchaudio.transforms.MFCC(
        sample_rate=sample_rate,
        n_mfcc=N_CEPS,
        log_mels=True,
        melkwargs={
            "n_fft": 512,
            "win_length": int(0.0256 * sample_rate),
            "hop_length": sample_rate // 100,
            "n_mels": 40,
            "f_min": 130.0,
            "f_max": min(6800.0, sample_rate / 2),
            "power": 2.0,
        },
    )
    with torch.inference_mode():
        return mfcc(torch.as_tensor(wav, dtype=torch.float32)).T.contiguous().numpy()
