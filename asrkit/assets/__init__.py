"""Data files shipped inside the package (the embedded FSDD demo recordings)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def fsdd_root() -> Path:
    """Return the folder holding the embedded FSDD data (it contains `recordings/`, `LICENSE`, `ATTRIBUTION.md`)."""
    return Path(str(files("asrkit") / "assets" / "fsdd"))
