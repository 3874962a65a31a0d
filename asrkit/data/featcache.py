"""The prepared feature cache, feats/<split>.pt: every utterance's (frames × dims) float16 matrix, by id.

Stored packed: one (total frames × dims) tensor, the ids and the frame counts. A pickled dict of one small
tensor per utterance took 4.2 s to load for 50,000 echo strings (the weights-only unpickler pays per object);
the packed file loads in a fraction of that and is still read with `weights_only=True`.
Caches written before this format (the plain dict) are still read.
"""

from __future__ import annotations

from pathlib import Path

import torch

from asrkit.errors import InputError
from asrkit.fsutil import atomic_write

FORMAT = "asrkit-features-1"


def save_features(path: str | Path, feats: dict[str, torch.Tensor]) -> None:
    """Write `feats` (id → frames × dims) atomically in the packed format."""
    ids = list(feats)
    dims = {tuple(f.shape[1:]) for f in feats.values()}
    if len(dims) > 1:
        raise InputError(f"{path}: utterances with different feature shapes {sorted(dims)}")
    tail = dims.pop() if dims else (0,)
    data = torch.cat([feats[k] for k in ids]) if ids else torch.zeros((0, *tail), dtype=torch.float16)
    packed = {"format": FORMAT, "ids": ids, "lengths": torch.tensor([feats[k].shape[0] for k in ids], dtype=torch.long), "data": data}
    atomic_write(Path(path), lambda tmp: torch.save(packed, tmp))


def load_features(path: str | Path) -> dict[str, torch.Tensor]:
    """id → (frames × dims) views into one packed tensor; also reads the older one-tensor-per-id dict."""
    p = Path(path)
    try:
        obj = torch.load(p, weights_only=True)
    except FileNotFoundError:
        raise InputError(f"feature cache {p} not found; run `asrkit prepare` first") from None
    except Exception as e:  # a truncated or foreign file: the unpickler's error types vary
        raise InputError(f"feature cache {p} is unreadable ({type(e).__name__}); run `asrkit prepare` again") from None
    if not isinstance(obj, dict):
        raise InputError(f"feature cache {p} is not an asrkit feature cache; run `asrkit prepare` again")
    if obj.get("format") == FORMAT:
        lengths = obj["lengths"].tolist()
        if len(lengths) != len(obj["ids"]) or sum(lengths) != obj["data"].shape[0]:
            raise InputError(f"feature cache {p} is inconsistent (ids, lengths and frames disagree); run `asrkit prepare` again")
        return dict(zip(obj["ids"], obj["data"].split(lengths)))
    if all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        return obj
    raise InputError(f"feature cache {p} is not an asrkit feature cache; run `asrkit prepare` again")
