"""`asrkit decode --stream`: audio from a file or stdin in chunks through a unidirectional model, partial transcripts
printed as they change, the final one (the offline search's) at the end."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, TextIO

from asrkit.align.timing import ctm_lines
from asrkit.audio import check_samples
from asrkit.commands.decode import check_given, recipe_options, resolve_options
from asrkit.errors import InputError, Interrupted
from asrkit.fsutil import atomic_write_text, check_writable
from asrkit.models.choice import pick_model
from asrkit.stream.encoder import streamable_reason
from asrkit.stream.session import StreamingRecognizer, StreamResult
from asrkit.stream.sources import file_chunks, pcm_chunks


def stream_decode(
    model: str | Path | None,
    source: str | Path,
    settings: dict[str, Any] | None = None,
    recipe: str | Path | None = None,
    chunk_ms: float = 100.0,
    raw_rate: int | None = None,
    out: TextIO | None = None,
    as_json: bool = False,
    output: str | Path | None = None,
    ctm: str | Path | None = None,
) -> StreamResult:
    """Stream `source` (a path, or "-" for stdin) through a unidirectional model, printing partials and the final text.

    Lines: `partial<TAB>seconds<TAB>text` each time the transcript changes, then `final<TAB>seconds<TAB>text`
    (with `as_json`, one JSON object per event; the final one adds word times and the real-time factor).
    `settings` and `recipe`: the final search's DecodeOptions, as `asrkit decode` takes them (beam, lm, lexicon, ...);
    `output`: also write the final transcript there as `asrkit decode` writes it (`id<TAB>text`, the id being the
    file's stem or "stdin"); `ctm`: its words as NIST CTM. Both are written on Ctrl-C too.
    """
    if chunk_ms <= 0:
        raise InputError(f"--chunk-ms must be positive, got {chunk_ms}")
    given = {k: v for k, v in (settings or {}).items() if v is not None}
    base = recipe_options(recipe)
    check_given(given, base)
    for dest, option in ((output, "--output"), (ctm, "--ctm")):
        if dest is not None:
            check_writable(dest, option)  # before the model loads and the stream starts
    path, why, am = pick_model(model, check=streamable_reason)
    if why:
        print(f"decode: using {path} ({why})", file=sys.stderr)
    reason = streamable_reason(am)
    if reason:
        raise InputError(f"cannot stream {path}: {reason}")
    out = out or sys.stdout
    rec = StreamingRecognizer(am, options=resolve_options(given, base, am.recipe))
    chunks = (
        pcm_chunks(sys.stdin.buffer, am.sample_rate, chunk_ms / 1000, raw_rate)
        if str(source) == "-"
        else file_chunks(source, am.sample_rate, chunk_ms / 1000)
    )
    stopped = False
    try:
        for chunk in chunks:
            check_samples(chunk, am.sample_rate, f"audio {source}", offset=rec.audio_seconds)
            ev = rec.push(chunk)
            if ev is not None:
                _print(out, ev.audio_seconds, ev.text, "partial", as_json)
    except KeyboardInterrupt:  # Ctrl-C ends a live stream: what was heard still gets its final line
        stopped = True
    result = rec.finish()
    extra = {}
    if as_json:
        extra = {"words": [w.as_dict() for w in result.hypothesis.words], "rtf": round(result.rtf, 4)}
    _print(out, result.audio_seconds, result.hypothesis.text, "final", as_json, extra)
    _write_final(result, "stdin" if str(source) == "-" else Path(source).stem, output, ctm)
    if stopped:
        raise Interrupted(
            f"stream stopped by Ctrl-C after {result.audio_seconds:.2f} s of audio (its transcript is the final line)"
        )
    return result


def _write_final(result: StreamResult, utt: str, output: str | Path | None, ctm: str | Path | None) -> None:
    """The final transcript as `asrkit decode` writes it, and its words as CTM."""
    if output is not None:
        atomic_write_text(output, f"{utt}\t{result.hypothesis.text}\n")
    if ctm is not None:
        rows = ctm_lines(utt, result.hypothesis.words)
        atomic_write_text(ctm, "\n".join(rows) + ("\n" if rows else ""))


def _print(out: TextIO, seconds: float, text: str, kind: str, as_json: bool, extra: dict | None = None) -> None:
    if as_json:
        out.write(
            json.dumps({"event": kind, "seconds": round(seconds, 3), "text": text, **(extra or {})}, ensure_ascii=False)
            + "\n"
        )
    else:
        out.write(f"{kind}\t{seconds:.2f}\t{text}\n")
    out.flush()
