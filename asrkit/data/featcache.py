"""The feature cache of data dirs prepared before the feature store (asrkit.data.featstore): feats/<split>.pt,
read whole into memory so that such a data dir still trains without being prepared again.

Format "asrkit-features-1": one packed (total frames × dims) float16 tensor, the ids and the frame counts; and
before it, a plain dict of one tensor per id. Both are read with `weights_only=True`.
"""

from __future__ import annotations

from pathlib import Path

import torch

from asrkit.errors import InputError

FORMAT = "asrkit-features-1"


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
            raise InputError(
                f"feature cache {p} is inconsistent (ids, lengths and frames disagree); run `asrkit prepare` again"
            )
        return dict(zip(obj["ids"], obj["data"].split(lengths)))
    if all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        return obj
    raise InputError(f"feature cache {p} is not an asrkit feature cache; run `asrkit prepare` again")
