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


def run_cli(
    *args: str, cwd: Path | None = None, check: bool = True, env: dict | None = None
) -> subprocess.CompletedProcess:
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


def digits_recipe_dict() -> dict:
    """recipes/digits.yaml as a dict, with the FSDD recordings as its only voices, no VTLP, per-utterance CMVN (in
    training and decoding), no consistency training and the stacked-frame front-end: the small pipeline tests' base
    (the extra voices and their augmentation are tested in test_digit_voices.py, consistency training in
    test_train.py)."""
    import yaml

    base = yaml.safe_load((ROOT / "recipes" / "digits.yaml").read_text())
    base["data"]["digits"] = {"sources": ["fsdd"]}
    base["features"].pop("vtlp", None)
    base["features"]["cmvn"] = "utterance"
    base["decode"].pop("cmvn", None)  # read as trained
    base["train"].pop("consistency", None)  # two views per batch would double the small tests' training time
    base["model"].update(
        frontend="stack", dropout=0.1
    )  # stacked frames learn fastest: the small tests train for seconds
    return base


# ---- a real (tiny) model, trained once per test session ----------------------------------------------------

TINY_SPEAKER = "jackson"


@pytest.fixture(scope="session")
def tiny_digits_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-layer BiLSTM trained for ~20 s on one speaker's embedded FSDD recordings (8 kHz, no resampling)."""
    import torch

    from asrkit.assets import fsdd_root
    from asrkit.config import recipe_from_dict
    from asrkit.data.prepare import prepare
    from asrkit.train.trainer import train

    tmp = tmp_path_factory.mktemp("chunked_tiny")
    src, dst = fsdd_root() / "recordings", tmp / "fsdd" / "recordings"
    dst.mkdir(parents=True)
    for d in range(10):
        for i in range(6):
            shutil.copy(src / f"{d}_{TINY_SPEAKER}_{i}.flac", dst)
        shutil.copy(src / f"{d}_george_0.flac", dst)  # the held-out speaker the split needs
    base = digits_recipe_dict()
    base["data"].update(
        root=str(tmp / "fsdd"),
        out_dir=str(tmp / "data"),
        sample_rate=8000,
        test_speakers=["george"],
        dev_indices=[5],
        speed_perturb=[],
        connected={
            "per_split": {"train": 150, "dev": 5, "test": 1},
            "min_words": 2,
            "max_words": 5,
            "gap_seconds": [0.05, 0.5],
        },
    )
    base["features"].update(specaugment=None)
    base["model"].update(name="bilstm", frontend="stack", hidden=64, layers=1, subsample=3, dropout=0.0)
    base["train"].update(exp_dir=str(tmp / "exp"), epochs=20, batch_seconds=20, lr=0.02, threads=1)
    recipe = recipe_from_dict(base)
    threads = torch.get_num_threads()
    try:
        prepare(recipe, quiet=True)
        train(recipe, quiet=True)
    finally:
        torch.set_num_threads(threads)
    return tmp / "exp" / "best.pt"


@pytest.fixture(autouse=True)
def _torch_threads():
    """Each test starts with the process's thread count and leaves it so: a test that pins one thread (or trains a
    recipe with train.threads) must not change the float rounding of the tests after it."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)
