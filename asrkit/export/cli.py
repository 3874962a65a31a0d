"""`asrkit export`: the function the CLI's export command calls."""

from __future__ import annotations

import sys
from pathlib import Path

from asrkit.export.writer import export_model


def export_command(model: str | Path, fmt: str, output: str | Path) -> Path:
    """Export checkpoint `model` as `fmt` (onnx | torchscript) to `output`; says what it wrote on stderr."""
    out = export_model(model, fmt, output)
    size = out.stat().st_size / 1e6
    print(f"export: wrote {out} ({fmt}, {size:.1f} MB); decode with: asrkit decode --model {out} ...", file=sys.stderr)
    return out
