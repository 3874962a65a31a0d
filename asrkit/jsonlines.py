"""JSON lines whose objects carry an utterance id: the one reader behind manifests, `decode --json` output and
score's references."""

from __future__ import annotations

import json
from pathlib import Path

from asrkit.errors import InputError


def json_object_with_id(line: str, where: str, expected: str) -> dict:
    """One JSON line that must be an object with a non-empty string 'id' (by default its audio or features file's
    stem); InputError naming `where` otherwise.

    `expected` describes the object in the error for a non-object (e.g. `{"id": ..., "audio": ...}`).
    """
    try:
        d = json.loads(line)
    except json.JSONDecodeError as e:
        raise InputError(f"{where}: malformed JSON ({e.msg}, column {e.colno})") from None
    except RecursionError:
        raise InputError(f"{where}: malformed JSON (nested too deeply)") from None
    if not isinstance(d, dict):
        raise InputError(f"{where}: expected a JSON object {expected}, got {type(d).__name__}")
    if d.get("id") is None:  # a line without an id takes its file's stem, as a file given on the command line does
        source = next((d[k] for k in ("audio", "features") if isinstance(d.get(k), str) and d[k].strip()), None)
        if source is not None:
            d["id"] = Path(source).stem
    if not isinstance(d.get("id"), str) or not d["id"].strip():
        raise InputError(
            f"{where}: missing or empty 'id'" + ("" if d.get("id") is not None else " (and no 'audio' to take it from)")
        )
    return d
