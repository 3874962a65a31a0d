"""Which checkpoint `decode` and `asrkit.load` take when no --model is given."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from asrkit.models.choice import pick_model, resolve_model
from asrkit.errors import InputError
from asrkit.fsutil import TRAIN_LOCK, RunLock, is_locked


def _runs(root: Path, *names: str) -> dict[str, Path]:
    """exp/<name>/best.pt for each name, oldest first."""
    paths = {}
    for age, name in enumerate(reversed(names)):
        p = root / "exp" / name / "best.pt"
        p.parent.mkdir(parents=True)
        p.write_bytes(b"x")
        t = 1_700_000_000 - 100 * age
        os.utime(p, (t, t))
        paths[name] = p
    return paths


def test_is_locked_while_a_run_holds_the_lock(tmp_path: Path):
    lock = tmp_path / "exp" / TRAIN_LOCK
    assert not is_locked(lock)  # absent
    held = RunLock(lock, "experiment dir")
    assert is_locked(lock)
    held.release()
    assert lock.exists() and not is_locked(lock)  # a finished run leaves the file, not the lock


def test_the_default_model_skips_runs_still_training_and_models_that_cannot_read_the_input(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ASRKIT_MODEL", raising=False)
    paths = _runs(tmp_path, "digits", "phonemes", "training")  # newest last
    held = RunLock(paths["training"].parent / TRAIN_LOCK, "experiment dir")
    unfit = {Path("exp/phonemes/best.pt"): "trained on precomputed features, not audio"}
    path, why = resolve_model(None, lambda p: unfit.get(p))
    assert path == Path("exp/digits/best.pt")
    assert "exp/training/best.pt (still training)" in why and "exp/phonemes/best.pt (trained on precomputed" in why
    held.release()
    assert resolve_model(None, lambda p: unfit.get(p)) == (Path("exp/training/best.pt"), "the newest exp/*/best.pt")
    with pytest.raises(InputError, match=r"no model in exp/ can be used: .*digits/best.pt \(nope\).*; pass --model"):
        resolve_model(None, lambda p: "nope")
    assert resolve_model("given.pt", lambda p: "nope") == (
        Path("given.pt"),
        None,
    )  # an explicit model is never second-guessed


def test_pick_model_loads_what_it_checks_once_and_skips_feature_models_for_audio(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ASRKIT_MODEL", raising=False)
    _runs(tmp_path, "audio", "features")
    loads = []

    def fake_load(path, device=None):
        loads.append(Path(path))
        return SimpleNamespace(precomputed="features" in str(path), path=Path(path))

    monkeypatch.setattr("asrkit.models.choice.load_acoustic_model", fake_load)
    path, why, am = pick_model(None, reads_audio=True)
    assert path == am.path == Path("exp/audio/best.pt") and "features/best.pt (trained on precomputed features" in why
    assert loads == [Path("exp/features/best.pt"), Path("exp/audio/best.pt")]  # the chosen one is not loaded twice
    path, why, am = pick_model(None, reads_audio=False)  # .npy inputs: the newest takes them
    assert path == Path("exp/features/best.pt") and why == "the newest exp/*/best.pt"
