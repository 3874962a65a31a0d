"""Audio for a stream, in chunks at the model's rate: from a file, or from a byte stream (stdin) of WAV or raw PCM."""

from __future__ import annotations

import sys
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf

from asrkit.audio import audio_info
from asrkit.errors import InputError
from asrkit.stream.resample import StreamResampler

_PCM_DTYPES = {1: np.uint8, 2: np.int16, 4: np.int32}


def file_chunks(path: str | Path, sample_rate: int, chunk_seconds: float) -> Iterator[np.ndarray]:
    """Mono float32 chunks of an audio file at `sample_rate` (a file at another rate is resampled chunk by chunk)."""
    p = Path(path)
    _, rate = audio_info(p)  # a missing, empty or damaged file is one InputError naming it
    with sf.SoundFile(str(p)) as f:
        blocks = f.blocks(blocksize=max(1, int(chunk_seconds * rate)), dtype="float32", always_2d=True)
        yield from resampled((b.mean(axis=1) for b in blocks), rate, sample_rate)


def resampled(chunks: Iterator[np.ndarray], rate: int, sample_rate: int) -> Iterator[np.ndarray]:
    """`chunks` at `rate` as chunks at `sample_rate`, resampled on the fly (the same samples as resampling the whole)."""
    if rate == sample_rate:
        yield from chunks
        return
    r = StreamResampler(rate, sample_rate)
    for chunk in chunks:
        out = r.push(chunk)
        if len(out):
            yield out
    tail = r.flush()
    if len(tail):
        yield tail


def pcm_chunks(
    stream: BinaryIO, sample_rate: int, chunk_seconds: float, raw_rate: int | None = None
) -> Iterator[np.ndarray]:
    """Mono float32 chunks at `sample_rate` from a byte stream: a WAV (PCM) file at the rate its header gives, or raw
    16-bit little-endian mono PCM at `raw_rate` (default: `sample_rate`, said in a note)."""
    head = stream.read(4)
    if head == b"RIFF":
        yield from _wav_chunks(_Prepend(head, stream), sample_rate, chunk_seconds)
        return
    if raw_rate is None:
        print(
            f"decode: raw PCM on stdin read as 16-bit mono at {sample_rate} Hz, the model's rate; give --raw-rate if it is not",
            file=sys.stderr,
        )
    rate = raw_rate or sample_rate
    yield from resampled(_raw_chunks(stream, head, rate, chunk_seconds), rate, sample_rate)


def _raw_chunks(stream: BinaryIO, head: bytes, rate: int, chunk_seconds: float) -> Iterator[np.ndarray]:
    size = max(1, int(chunk_seconds * rate)) * 2
    rest = head
    while True:
        data = rest + stream.read(size - len(rest))
        rest = b""
        if len(data) % 2:  # an odd byte waits for its partner
            data, rest = data[:-1], data[-1:]
        if not data:
            if rest:
                raise InputError("raw PCM input ends in the middle of a 16-bit sample")
            return
        yield np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0


def _wav_chunks(stream: BinaryIO, sample_rate: int, chunk_seconds: float) -> Iterator[np.ndarray]:
    try:
        w = wave.open(stream, "rb")
    except (wave.Error, EOFError) as e:
        raise InputError(f"cannot read the WAV on stdin ({e}); give 8/16/32-bit PCM WAV or raw 16-bit PCM") from None
    rate, width, channels = w.getframerate(), w.getsampwidth(), w.getnchannels()
    if width not in _PCM_DTYPES:
        raise InputError(f"the WAV on stdin has {8 * width}-bit samples; give 8, 16 or 32-bit PCM")
    yield from resampled(_wav_frames(w, rate, width, channels, chunk_seconds), rate, sample_rate)


def _wav_frames(w: wave.Wave_read, rate: int, width: int, channels: int, chunk_seconds: float) -> Iterator[np.ndarray]:
    size = max(1, int(chunk_seconds * rate))
    scale = {1: 128.0, 2: 32768.0, 4: 2147483648.0}[width]
    while True:
        data = w.readframes(size)
        if not data:
            return
        x = np.frombuffer(data[: len(data) - len(data) % (width * channels)], dtype=_PCM_DTYPES[width]).astype(
            np.float32
        )
        if width == 1:
            x -= 128.0
        yield (x / scale).reshape(-1, channels).mean(axis=1)


class _Prepend:
    """A read-only byte stream with some already-read bytes put back in front."""

    def __init__(self, head: bytes, stream: BinaryIO):
        self.head, self.stream = head, stream

    def read(self, n: int = -1) -> bytes:
        if not self.head:
            return self.stream.read(n)
        if n < 0:
            out, self.head = self.head + self.stream.read(), b""
            return out
        out, self.head = self.head[:n], self.head[n:]
        return out + (self.stream.read(n - len(out)) if len(out) < n else b"")
