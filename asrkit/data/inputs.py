"""What `decode`/`align` accept: audio files, directories of audio, or JSONL manifests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from asrkit.audio import AUDIO_SUFFIXES, list_audio
from asrkit.data.manifest import iter_manifest
from asrkit.errors import InputError


@dataclass
class InputItem:
    id: str
    audio: str | None
    text: str | None = None
    features: str | None = None  # precomputed (frames, dim) .npy, for models trained on such features
    duration: float | None = None  # seconds, when a manifest says so (sorting into batches needs no audio read)


def collect_inputs(inputs: list[str | Path]) -> list[InputItem]:
    """Expand inputs into (id, audio or features path, optional text); ids must be unique."""
    items: list[InputItem] = []
    for raw in inputs:
        p = Path(raw)
        if p.is_dir():
            found = list_audio(p)
            if not found:
                raise InputError(f"directory {p} holds no audio files ({', '.join(AUDIO_SUFFIXES)})")
            items += [InputItem(f.stem, str(f)) for f in found]
        elif p.suffix == ".jsonl":
            before = len(items)
            for u in iter_manifest(p):
                text = u.text if u.phonemes is None else " ".join(u.phonemes)
                items.append(InputItem(u.id, u.audio, text, u.features, u.duration or None))
            if len(items) == before:
                raise InputError(f"manifest {p} holds no utterances")
        elif p.is_file() and p.suffix == ".npy":
            items.append(InputItem(p.stem, None, None, str(p)))
        elif p.is_file():
            items.append(InputItem(p.stem, str(p)))
        else:
            raise InputError(f"input {p} not found")
    seen: set[str] = set()
    for it in items:
        if it.id in seen:
            raise InputError(f"two inputs share the id {it.id!r}; rename one or decode them separately")
        seen.add(it.id)
    return items
