"""Speech from Sphinx cepstra: corpora shipped only as MFCCs (CMU AN4) back to audio, so their voices can train
recipes that read audio.

Thirteen cepstra keep a frame's spectral envelope (formants, tilt, loudness) and drop its pitch. The inverse DCT
gives the envelope back on Sphinx's 40 mel filters; it is spread over the FFT bins and imposed on an excitation
that is a pulse train at a made-up pitch contour where the frame looks voiced (loud, low frequencies dominant) and
white noise elsewhere — the classic cepstral vocoder. What it keeps is what a speaker's articulation puts into the
envelope: the timing and the formant movements of 74 real AN4 voices.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torchaudio

# sphinx_fe's defaults, with which AN4's features were made
SAMPLE_RATE = 16000
N_FFT = 512
WIN = 410  # 25.625 ms
HOP = 160  # 100 frames/s
N_FILTERS = 40
F_LOW, F_HIGH = 133.33334, 6855.4976
PREEMPH = 0.97
INT16 = 32768.0  # Sphinx reads 16-bit samples as they are: its log energies sit ln(32768²) above ours


@lru_cache(maxsize=1)
def _filterbank() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sphinx's unit-area triangular mel filters (N_FFT//2+1, 40), their centre frequencies, and the FFT bins' frequencies."""
    fb = (
        torchaudio.functional.melscale_fbanks(
            N_FFT // 2 + 1, F_LOW, F_HIGH, N_FILTERS, SAMPLE_RATE, norm="slaney", mel_scale="htk"
        )
        .numpy()
        .astype(np.float64)
    )
    mel = lambda f: 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)  # noqa: E731
    centres = 700.0 * (10 ** (np.linspace(mel(F_LOW), mel(F_HIGH), N_FILTERS + 2)[1:-1] / 2595.0) - 1.0)
    return fb, centres, np.linspace(0.0, SAMPLE_RATE / 2, N_FFT // 2 + 1)


@lru_cache(maxsize=4)
def _cosines(n_ceps: int) -> np.ndarray:
    i, j = np.arange(n_ceps)[:, None], np.arange(N_FILTERS)[None, :]
    return np.cos(np.pi * i * (j + 0.5) / N_FILTERS)


def sphinx_cepstra(wav: np.ndarray, n_ceps: int = 13) -> np.ndarray:
    """Sphinx's own front end on 16 kHz audio in [-1, 1]: pre-emphasis, Hamming window, unit-area mel filters,
    natural log and its DCT (whose first filter counts half) → (frames, n_ceps) float32."""
    x = np.asarray(wav, dtype=np.float64) * INT16
    x = np.append(x[:1], x[1:] - PREEMPH * x[:-1])
    if len(x) < WIN:
        return np.zeros((0, n_ceps), np.float32)
    pad = (N_FFT - WIN) // 2  # torch centres the window in the FFT frame; Sphinx starts frame k at k·HOP
    x = np.pad(x, (pad, N_FFT - WIN - pad))
    spec = (
        torch.stft(
            torch.from_numpy(x),
            N_FFT,
            HOP,
            WIN,
            torch.hamming_window(WIN, dtype=torch.float64),
            center=False,
            return_complex=True,
        ).abs()
        ** 2
    )
    fb, _, _ = _filterbank()
    logmel = np.log(np.maximum(spec.numpy().T @ fb, 1e-10))
    beta = np.full(N_FILTERS, 2.0)
    beta[0] = 1.0
    cep = (logmel * beta) @ _cosines(n_ceps).T / (2 * N_FILTERS)
    cep[:, 0] = (logmel[:, 0] / 2 + logmel[:, 1:].sum(1)) / N_FILTERS
    return cep.astype(np.float32)


def log_envelope(cep: np.ndarray) -> np.ndarray:
    """(frames, n_ceps) Sphinx cepstra → (frames, N_FFT//2+1) natural-log power on the FFT bins, with the
    pre-emphasis taken back out and the 16-bit scale removed."""
    cep = np.asarray(cep, dtype=np.float64)
    logmel = cep[:, :1] + 2.0 * cep[:, 1:] @ _cosines(cep.shape[1])[1:]  # the inverse of the DCT, truncated
    _, centres, freqs = _filterbank()
    env = np.stack([np.interp(freqs, centres, row) for row in logmel]) if len(logmel) else np.zeros((0, len(freqs)))
    emphasis = np.abs(1.0 - PREEMPH * np.exp(-2j * np.pi * freqs / SAMPLE_RATE)) ** 2
    return env - np.log(np.maximum(emphasis, 1e-6)) - 2 * np.log(INT16)


def _voiced(cep: np.ndarray) -> np.ndarray:
    """Frames that look voiced: within 30 dB of the loudest frame, and more energy below 1 kHz than above 2.5 kHz."""
    _, centres, _ = _filterbank()
    logmel = cep[:, :1] + 2.0 * cep[:, 1:] @ _cosines(cep.shape[1])[1:]
    loud = cep[:, 0] > cep[:, 0].max() - np.log(1e3)
    return loud & (logmel[:, centres < 1000].mean(1) > logmel[:, centres > 2500].mean(1))


def vocode(cep: np.ndarray, rng: np.random.Generator, f0: float = 120.0) -> np.ndarray:
    """(frames, n_ceps) Sphinx cepstra → 16 kHz float32 audio with a peak of 0.5: the envelope on a pulse train
    around `f0` Hz (a slow vibrato and a falling declination, as read speech has) where voiced, noise elsewhere."""
    cep = np.asarray(cep, dtype=np.float64)
    frames = len(cep)
    n = max(frames - 1, 0) * HOP + WIN
    if frames == 0:
        return np.zeros(0, np.float32)
    t = np.arange(n) / SAMPLE_RATE
    contour = f0 * (1 + 0.06 * np.sin(2 * np.pi * rng.uniform(0.2, 0.8) * t + rng.uniform(0, 2 * np.pi)))
    contour *= 1 - 0.15 * t / max(t[-1], 1e-3)
    cycles = np.floor(np.cumsum(contour / SAMPLE_RATE))
    pulses = (np.diff(cycles, prepend=0.0) > 0) * np.sqrt(
        SAMPLE_RATE / contour
    )  # unit power per sample, like the noise
    voiced = np.repeat(_voiced(cep).astype(np.float64), HOP)
    voiced = np.convolve(np.pad(voiced, (0, max(0, n - len(voiced))), mode="edge")[:n], np.ones(HOP) / HOP, mode="same")
    excitation = pulses * voiced + rng.standard_normal(n) * (1 - voiced)
    window = torch.hann_window(WIN, dtype=torch.float64)
    spec = torch.stft(torch.from_numpy(excitation), N_FFT, HOP, WIN, window, center=True, return_complex=True)
    mag = np.exp(log_envelope(cep) / 2)
    # centred frame k is Sphinx's frame k - 1.28 (its frames start at the window's edge): one frame of lead-in
    mag = np.concatenate([mag[:1], mag, np.repeat(mag[-1:], spec.shape[1], 0)])[: spec.shape[1]]
    y = torch.istft(spec * torch.from_numpy(mag.T), N_FFT, HOP, WIN, window, center=True, length=n).numpy()
    return (0.5 * y / max(float(np.abs(y).max()), 1e-9)).astype(np.float32)
