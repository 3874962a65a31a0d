"""`asrkit decode --stream`: audio from a file or stdin in chunks, partial transcripts as they change."""

from __future__ import annotations

import json
import sys
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, TextIO

import numpy as np

from asrkit.errors import InputError
from asrkit.stream.session import StreamingRecognizer, StreamResult

_PCM_DTYPES = {1: np.uint8, 2: np.int16, 4: np.int32}


def _chunks_of(x: np.ndarray, size: int) -> Iterator[np.ndarray]:
    for i in range(0, len(x), size):
        yield x[i : i + size]


def file_chunks(path: str | Path, sample_rate: int, chunk_seconds: float) -> Iterator[np.ndarray]:
    """Mono float32 chunks of an audio file at `sample_rate` (a file at another rate is resampled whole first)."""
    import soundfile as sf

    from asrkit.audio import audio_info, load_audio

    p = Path(path)
    _, rate = audio_info(p)  # a missing, empty or damaged file is one InputError naming it
    if rate != sample_rate:
        yield from _chunks_of(load_audio(p, sample_rate).numpy(), max(1, int(chunk_seconds * sample_rate)))
        return
    with sf.SoundFile(str(p)) as f:
        size = max(1, int(chunk_seconds * f.samplerate))
        for block in f.blocks(blocksize=size, dtype="float32", always_2d=True):
            yield block.mean(axis=1)


def pcm_chunks(stream: BinaryIO, sample_rate: int, chunk_seconds: float, raw_rate: int | None = None) -> Iterator[np.ndarray]:
    """Mono float32 chunks from a byte stream: a WAV (PCM) file, or raw 16-bit little-endian mono PCM at `raw_rate`."""
    head = stream.read(4)
    if head == b"RIFF":
        yield from _wav_chunks(_Prepend(head, stream), sample_rate, chunk_seconds)
        return
    rate = raw_rate or sample_rate
    if rate != sample_rate:
        raise InputError(f"raw audio at {rate} Hz: this model wants {sample_rate} Hz; resample it first (e.g. sox ... -r {sample_rate})")
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
    if rate != sample_rate:
        raise InputError(f"the WAV on stdin is at {rate} Hz: this model wants {sample_rate} Hz; resample it first")
    if width not in _PCM_DTYPES:
        raise InputError(f"the WAV on stdin has {8 * width}-bit samples; give 8, 16 or 32-bit PCM")
    size = max(1, int(chunk_seconds * rate))
    scale = {1: 128.0, 2: 32768.0, 4: 2147483648.0}[width]
    while True:
        data = w.readframes(size)
        if not data:
            return
        x = np.frombuffer(data[: len(data) - len(data) % (width * channels)], dtype=_PCM_DTYPES[width]).astype(np.float32)
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


def stream_decode(
    model: str | Path | None,
    source: str | Path,
    chunk_ms: float = 100.0,
    beam: int = 10,
    raw_rate: int | None = None,
    out: TextIO | None = None,
    as_json: bool = False,
) -> StreamResult:
    """Stream `source` (a path, or "-" for stdin) through a unidirectional model, printing partials and the final text.

    Lines: `partial<TAB>seconds<TAB>text` each time the transcript changes, then `final<TAB>seconds<TAB>text`
    (with `as_json`, one JSON object per event; the final one adds word times and the real-time factor).
    """
    from asrkit.audio import check_samples
    from asrkit.decode.run import pick_model
    from asrkit.stream.encoder import streamable_reason

    if chunk_ms <= 0:
        raise InputError(f"--chunk-ms must be positive, got {chunk_ms}")
    path, why, am = pick_model(model, stream=True)
    if why:
        print(f"decode: using {path} ({why})", file=sys.stderr)
    reason = streamable_reason(am)
    if reason:
        raise InputError(f"cannot stream {path}: {reason}")
    out = out or sys.stdout
    rec = StreamingRecognizer(am, beam)
    chunks = (
        pcm_chunks(sys.stdin.buffer, am.sample_rate, chunk_ms / 1000, raw_rate)
        if str(source) == "-"
        else file_chunks(source, am.sample_rate, chunk_ms / 1000)
    )
    for chunk in chunks:
        check_samples(chunk, am.sample_rate, f"audio {source}", offset=rec.audio_seconds)
        ev = rec.push(chunk)
        if ev is not None:
            _print(out, ev.audio_seconds, ev.text, "partial", as_json)
    result = rec.finish()
    extra = {}
    if as_json:
        extra = {"words": [w.as_dict() for w in result.hypothesis.words], "rtf": round(result.rtf, 4)}
    _print(out, result.audio_seconds, result.hypothesis.text, "final", as_json, extra)
    return result


def _print(out: TextIO, seconds: float, text: str, kind: str, as_json: bool, extra: dict | None = None) -> None:
    if as_json:
        out.write(json.dumps({"event": kind, "seconds": round(seconds, 3), "text": text, **(extra or {})}, ensure_ascii=False) + "\n")
    else:
        out.write(f"{kind}\t{seconds:.2f}\t{text}\n")
    out.flush()
