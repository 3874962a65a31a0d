"""Data files shipped inside the package: the demo's FSDD recordings and Speech Commands digit-word clips."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def fsdd_root() -> Path:
    """Return the folder holding the embedded FSDD data (it contains `recordings/`, `LICENSE`, `ATTRIBUTION.md`)."""
    return Path(str(files("asrkit") / "assets" / "fsdd"))


def speech_commands_root() -> Path:
    """Return the folder holding the embedded Speech Commands digit-word clips (`<word>/*.wav` and the official lists)."""
    return Path(str(files("asrkit") / "assets" / "speech_commands"))
