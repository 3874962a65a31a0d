"""`asrkit export`: a checkpoint written as ONNX or TorchScript, its format told by the option or the file's suffix."""

from __future__ import annotations

import sys
from pathlib import Path

from asrkit.errors import InputError
from asrkit.export.writer import export_model


SUFFIXES = {".onnx": "onnx", ".pt": "torchscript", ".ts": "torchscript", ".torchscript": "torchscript"}


def format_for(output: str | Path, fmt: str | None) -> str:
    """The format to write: `fmt`, else the one `output`'s suffix names (onnx by default); a suffix of the other
    format is refused rather than written under a misleading name."""
    named = SUFFIXES.get(Path(output).suffix.lower())
    if fmt not in (None, *set(SUFFIXES.values())):
        return fmt  # an unknown format: export_model names the ones it knows
    if fmt is None:
        return named or "onnx"
    if named is not None and named != fmt:
        raise InputError(
            f"{output} has the suffix of {named} files, but --format is {fmt}: give -o a {'.onnx' if fmt == 'onnx' else '.pt'} "
            f"name or --format {named}"
        )
    return fmt


def export_command(model: str | Path, fmt: str | None, output: str | Path) -> Path:
    """Export checkpoint `model` as `fmt` (onnx | torchscript; None: by `output`'s suffix) to `output`; says what it
    wrote on stderr."""
    fmt = format_for(output, fmt)
    out = export_model(model, fmt, output)
    size = out.stat().st_size / 1e6
    print(f"export: wrote {out} ({fmt}, {size:.1f} MB); decode with: asrkit decode --model {out} ...", file=sys.stderr)
    return out
