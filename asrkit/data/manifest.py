"""The Utterance record and JSONL manifests (id, audio or features, duration, sample_rate, text, speaker)."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from asrkit.errors import InputError
from asrkit.jsonlines import json_object_with_id
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


_STR_FIELDS = ("audio", "text", "speaker", "label", "features")


def parse_line(line: str, where: str) -> Utterance:
    """One JSONL manifest line → Utterance; any problem raises InputError naming `where` (file:line)."""
    d = json_object_with_id(line, where, '{"id": ..., "audio": ...}')
    uid = d["id"]
    if d.get("audio") is None and d.get("features") is None:
        raise InputError(f"{where}: utterance {uid!r} has neither 'audio' nor 'features'")
    for k in _STR_FIELDS:
        if d.get(k) is not None and not isinstance(d[k], str):
            raise InputError(f"{where}: bad field type in utterance {uid!r}: {k!r} must be a string, got {d[k]!r:.60}")
    ph = d.get("phonemes")
    if ph is not None and not (isinstance(ph, list) and all(isinstance(x, str) for x in ph)):
        raise InputError(f"{where}: bad field type in utterance {uid!r}: 'phonemes' must be a list of strings")
    known = {k: v for k, v in d.items() if k in _FIELDS}
    extra = {k: v for k, v in d.items() if k not in _FIELDS}
    for k, v in (("duration", d.get("duration", 0.0)), ("sample_rate", d.get("sample_rate", 0))):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise InputError(
                f"{where}: bad field type in utterance {uid!r}: {k!r} must be a number >= 0, got {v!r:.60}"
            )
    if isinstance(known.get("sample_rate"), float) and not float(known["sample_rate"]).is_integer():
        raise InputError(
            f"{where}: bad field type in utterance {uid!r}: 'sample_rate' must be a whole number, got {known['sample_rate']!r}"
        )
    u = Utterance(**known, extra=extra)
    u.duration = float(u.duration)
    u.sample_rate = int(u.sample_rate)
    return u


def iter_manifest(path: str | Path, resolve: bool = True) -> Iterator[Utterance]:
    """Stream utterances from a JSONL manifest; errors name the file and line."""
    p = Path(path)
    if p.is_dir():
        raise InputError(f"manifest {p} is a directory, not a JSONL file")
    if not p.is_file():
        raise InputError(f"manifest {p} not found")
    base = p.resolve().parent
    seen: dict[str, int] = {}
    with p.open("rb") as f:
        for n, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise InputError(f"{p}:{n}: not UTF-8 text; a manifest has one JSON object per line") from None
            if not line.strip():
                continue
            u = parse_line(line, f"{p}:{n}")
            if u.id in seen:
                raise InputError(f"{p}:{n}: duplicate utterance id {u.id!r} (first on line {seen[u.id]})")
            seen[u.id] = n
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
