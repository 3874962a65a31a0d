"""What `decode`/`align` accept: audio files, directories of audio, or JSONL manifests."""

from __future__ import annotations

import os
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
    """Expand inputs into (id, audio or features path, optional text); ids must be unique (files with the same
    name in different folders are told apart by their path, see `_ids_from_paths`)."""
    items: list[InputItem] = []
    from_file: set[int] = set()  # the items whose id is a file's stem (not a manifest's id)
    for raw in inputs:
        p = Path(raw)
        if p.is_dir():
            found = list_audio(p)
            if not found:
                raise InputError(f"directory {p} holds no audio files ({', '.join(AUDIO_SUFFIXES)})")
            from_file.update(range(len(items), len(items) + len(found)))
            items += [InputItem(f.stem, str(f)) for f in found]
        elif p.suffix == ".jsonl":
            before = len(items)
            for u in iter_manifest(p):
                text = u.text if u.phonemes is None else " ".join(u.phonemes)
                items.append(InputItem(u.id, u.audio, text, u.features, u.duration or None))
            if len(items) == before:
                raise InputError(f"manifest {p} holds no utterances")
        elif p.is_file() and p.suffix == ".npy":
            from_file.add(len(items))
            items.append(InputItem(p.stem, None, None, str(p)))
        elif p.is_file():
            from_file.add(len(items))
            items.append(InputItem(p.stem, str(p)))
        else:
            raise InputError(f"input {p} not found")
    _ids_from_paths(items, from_file)
    seen: set[str] = set()
    for it in items:
        if it.id in seen:
            raise InputError(f"two inputs share the id {it.id!r}; rename one or decode them separately")
        seen.add(it.id)
    return items


def _ids_from_paths(items: list[InputItem], from_file: set[int]) -> None:
    """Files whose stems collide (speech_commands/one/x.wav, speech_commands/seven/x.wav) take as id their path
    below the folder the colliding files share, without the suffix (one/x, seven/x); other ids stay stems."""
    by_id: dict[str, list[int]] = {}
    for i in from_file:
        by_id.setdefault(items[i].id, []).append(i)
    for clash in (ix for ix in by_id.values() if len(ix) > 1):
        paths = [Path(items[i].audio or items[i].features).resolve() for i in clash]
        root = Path(os.path.commonpath([p.parent for p in paths]))
        for i, p in zip(clash, paths):
            if p.parent != root:  # the same file given twice keeps its stem, and the duplicate is refused below
                items[i].id = p.relative_to(root).with_suffix("").as_posix()
