"""Shared fixtures: the real recordings in ../shared/data and the installed `asrkit` command."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("ASRKIT_SHARED_DATA", ROOT.parent / "shared" / "data"))


def shared(sub: str) -> Path:
    """A folder of ../shared/data, or skip the test with the reason."""
    p = SHARED_DATA / sub
    if not p.exists():
        pytest.skip(f"{p} is absent: this test needs the shared real-speech data (../shared/data)")
    return p


def asrkit_cmd() -> list[str]:
    exe = Path(sys.executable).parent / "asrkit"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("asrkit")
    if not found:
        pytest.skip("the asrkit command is not installed (run make setup)")
    return [found]


def run_cli(*args: str, cwd: Path | None = None, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the installed asrkit command; on failure show its stderr."""
    proc = subprocess.run(
        [*asrkit_cmd(), *args], cwd=cwd, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=600
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"asrkit {' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture
def fsdd_slice(tmp_path: Path) -> Path:
    """An FSDD-layout folder with two speakers' recordings of every digit, indices 0-14."""
    src = shared("fsdd") / "recordings"
    dst = tmp_path / "fsdd" / "recordings"
    dst.mkdir(parents=True)
    for spk in ("jackson", "george"):
        for d in range(10):
            for i in range(15):
                shutil.copy(src / f"{d}_{spk}_{i}.wav", dst)
    return dst.parent
