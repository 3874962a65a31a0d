"""Waveform augmentation on NumPy arrays: fixed-length clips, time shift, generated noise, mixing at an SNR, reverberation."""

from __future__ import annotations

import numpy as np
from scipy.signal import fftconvolve

EPS = 1e-12


def fit_length(wav: np.ndarray, n: int) -> np.ndarray:
    """Zero-pad at the end, or cut the end off, so that the clip has exactly `n` samples."""
    wav = np.asarray(wav, dtype=np.float32)
    if len(wav) >= n:
        return wav[:n].copy()
    return np.concatenate([wav, np.zeros(n - len(wav), dtype=np.float32)])


def time_shift(wav: np.ndarray, shift: int) -> np.ndarray:
    """Move the signal `shift` samples later (negative: earlier), same length, zeros where nothing was."""
    out = np.zeros_like(wav)
    n = len(wav)
    if abs(shift) >= n:
        return out
    if shift >= 0:
        out[shift:] = wav[: n - shift]
    else:
        out[:shift] = wav[-shift:]
    return out


def power(wav: np.ndarray) -> float:
    """Mean squared amplitude."""
    return float(np.mean(np.square(wav, dtype=np.float64))) if len(wav) else 0.0


def mix_at_snr(signal: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """`signal` plus `noise` scaled so that 10·log10(P_signal / P_noise) = `snr_db`; same length as `signal`."""
    noise = fit_length(noise, len(signal))
    scale = np.sqrt(power(signal) / (max(power(noise), EPS) * 10 ** (snr_db / 10)))
    return (signal + scale * noise).astype(np.float32)


def random_segment(wav: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """A random `n`-sample stretch of `wav` (tiled when shorter)."""
    if len(wav) < n:
        wav = np.tile(wav, int(np.ceil(n / max(len(wav), 1))) + 1)
    start = int(rng.integers(0, len(wav) - n + 1))
    return wav[start : start + n].astype(np.float32, copy=True)


def generate_noise(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """`n` samples of unit-RMS white or pink (1/f power) noise."""
    white = rng.standard_normal(n)
    if kind == "white":
        x = white
    elif kind == "pink":
        spec = np.fft.rfft(white)
        f = np.arange(len(spec), dtype=np.float64)
        f[0] = 1.0  # no infinite gain at DC
        x = np.fft.irfft(spec / np.sqrt(f), n)
    else:
        raise ValueError(f"unknown noise kind {kind!r}: white or pink")
    return (x / max(np.sqrt(np.mean(x**2)), EPS)).astype(np.float32)


def synthetic_rir(rt60: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """A room impulse response: a direct path, then exponentially decaying noise that falls 60 dB in `rt60`
    seconds (the statistical model of late reverberation), starting a few ms after the direct sound."""
    n = max(2, int(rt60 * sample_rate))
    t = np.arange(n) / sample_rate
    tail = rng.standard_normal(n) * np.exp(-6.908 * t / rt60)  # ln(1000) = 6.908: -60 dB of amplitude at rt60
    tail[: int(0.003 * sample_rate)] = 0.0
    rir = 0.5 * tail / max(np.sqrt(np.sum(tail**2)), EPS)
    rir[0] = 1.0
    return rir.astype(np.float32)


def reverberate(wav: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """`wav` convolved with `rir`, same length, rescaled to the original peak."""
    out = fftconvolve(wav, rir)[: len(wav)]
    peak = float(np.abs(out).max()) if len(out) else 0.0
    return (out * (float(np.abs(wav).max()) / peak) if peak > 0 else out).astype(np.float32)
