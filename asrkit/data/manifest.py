"""The Utterance record and JSONL manifests (DESIGN: id, audio, duration, sample_rate, text, speaker)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from asrkit.errors import InputError
from asrkit.fsutil import atomic_write_text


@dataclass
class Utterance:
    id: str
    audio: str | None = None
    duration: float = 0.0
    sample_rate: int = 0
    text: str | None = None
    speaker: str | None = None
    label: str | None = None
    phonemes: list[str] | None = None
    features: str | None = None
    extra: dict = field(default_factory=dict)

    def to_json(self) -> str:
        d = {k: v for k, v in asdict(self).items() if v is not None and k != "extra"}
        d.update(self.extra)
        return json.dumps(d, ensure_ascii=False)

    def resolve(self, base: Path) -> Utterance:
        """A copy whose relative `audio`/`features` paths are made absolute against `base`."""
        u = replace(self, extra=dict(self.extra))
        for key in ("audio", "features"):
            v = getattr(u, key)
            if v is not None and not os.path.isabs(v):
                # normpath, not Path.resolve: resolve's per-component syscalls were 2.5 s of a 50,000-line manifest
                setattr(u, key, os.path.normpath(os.path.join(base, v)))
        return u


_FIELDS = {f for f in Utterance.__dataclass_fields__ if f != "extra"}


def parse_line(line: str, where: str) -> Utterance:
    try:
        d = json.loads(line)
    except json.JSONDecodeError as e:
        raise InputError(f"{where}: malformed JSON ({e.msg})") from None
    if not isinstance(d, dict):
        raise InputError(f"{where}: expected a JSON object")
    if not isinstance(d.get("id"), str) or not d["id"]:
        raise InputError(f"{where}: missing or empty 'id'")
    if d.get("audio") is None and d.get("features") is None:
        raise InputError(f"{where}: utterance {d['id']!r} has neither 'audio' nor 'features'")
    known = {k: v for k, v in d.items() if k in _FIELDS}
    extra = {k: v for k, v in d.items() if k not in _FIELDS}
    try:
        u = Utterance(**known, extra=extra)
        u.duration = float(u.duration)
        u.sample_rate = int(u.sample_rate)
    except (TypeError, ValueError) as e:
        raise InputError(f"{where}: bad field type ({e})") from None
    return u


def iter_manifest(path: str | Path, resolve: bool = True) -> Iterator[Utterance]:
    """Stream utterances from a JSONL manifest; errors name the file and line."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"manifest {p} not found")
    base = p.resolve().parent
    seen: set[str] = set()
    with p.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            u = parse_line(line, f"{p}:{n}")
            if u.id in seen:
                raise InputError(f"{p}:{n}: duplicate utterance id {u.id!r}")
            seen.add(u.id)
            yield u.resolve(base) if resolve else u


def read_manifest(path: str | Path, resolve: bool = True) -> list[Utterance]:
    return list(iter_manifest(path, resolve))


def write_manifest(path: str | Path, utts: Iterable[Utterance], relative_to_manifest: bool = True) -> None:
    """Write atomically; audio/feature paths under the manifest's folder are stored relative to it."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    base = p.resolve().parent
    lines = []
    for u in utts:
        if relative_to_manifest:
            u = Utterance(**asdict(u))
            for key in ("audio", "features"):
                v = getattr(u, key)
                if v is not None and os.path.isabs(v):
                    try:
                        setattr(u, key, str(Path(v).resolve().relative_to(base)))
                    except ValueError:
                        pass
        lines.append(u.to_json())
    atomic_write_text(p, "\n".join(lines) + ("\n" if lines else ""))
