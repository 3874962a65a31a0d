"""Which checkpoint to decode with when none is named: $ASRKIT_MODEL, else the newest usable exp/*/best.pt."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from asrkit.errors import InputError
from asrkit.fsutil import TRAIN_LOCK, is_locked
from asrkit.models.runtime import load_acoustic_model


def resolve_model(
    model: str | Path | None, accept: Callable[[Path], str | None] | None = None
) -> tuple[Path, str | None]:
    """The checkpoint to decode with: `model`, else $ASRKIT_MODEL, else the newest exp/*/best.pt that can be used.

    Runs still training (their train.lock held) are skipped, and so is every checkpoint for which `accept(path)`
    gives a reason (a model that cannot read the inputs). Returns (path, why) where `why` says how it was chosen,
    and what was skipped, when it was not given explicitly.
    """
    if model is not None:
        return Path(model), None
    env = os.environ.get("ASRKIT_MODEL")
    if env:
        if not Path(env).is_file():
            raise InputError(f"$ASRKIT_MODEL names {env}, which does not exist")
        return Path(env), "from $ASRKIT_MODEL"
    found = sorted(Path("exp").glob("*/best.pt"), key=lambda p: p.stat().st_mtime, reverse=True)
    if not found:
        raise InputError("no model given: pass --model, set $ASRKIT_MODEL, or train one (looked for exp/*/best.pt)")
    skipped: list[str] = []
    for path in found:
        reason = "still training" if is_locked(path.parent / TRAIN_LOCK) else accept(path) if accept else None
        if reason is None:
            return path, "the newest exp/*/best.pt" + (f"; skipped {'; '.join(skipped)}" if skipped else "")
        skipped.append(f"{path} ({reason})")
    raise InputError(f"no model in exp/ can be used: {'; '.join(skipped)}; pass --model")


def pick_model(
    model: str | Path | None,
    reads_audio: bool = True,
    device: str | None = None,
    check: Callable[[object], str | None] | None = None,
):
    """`resolve_model` that also loads it: (path, why, AcousticModel). Picking by default, a model that cannot read
    the inputs is skipped: audio for one trained on precomputed features, and whatever `check(model)` gives a reason
    against (`asrkit.stream.encoder.streamable_reason` for a live stream)."""

    loaded: dict[Path, object] = {}

    def accept(path: Path) -> str | None:
        try:
            am = loaded[path] = load_acoustic_model(path, device)
        except InputError as e:
            return str(e)
        if reads_audio and getattr(am, "precomputed", False):
            return "trained on precomputed features, not audio"
        return check(am) if check else None

    path, why = resolve_model(model, accept)
    am = loaded.get(path) or load_acoustic_model(path, device)
    return path, why, am
