"""The feature cache of data dirs prepared before the feature store: both older formats read, clear errors on bad files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from asrkit.data.featcache import FORMAT, load_features
from asrkit.errors import InputError


def save_features(path: Path, feats: dict[str, torch.Tensor]) -> None:
    """The packed cache as asrkit wrote it before the store."""
    dims = {tuple(f.shape[1:]) for f in feats.values()}
    data = torch.cat(list(feats.values())) if feats else torch.zeros((0, 5), dtype=torch.float16)
    assert len(dims) <= 1
    torch.save(
        {
            "format": FORMAT,
            "ids": list(feats),
            "lengths": torch.tensor([len(f) for f in feats.values()], dtype=torch.long),
            "data": data,
        },
        path,
    )


def _feats() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {f"u{i}": torch.randn(n, 5, generator=g).half() for i, n in enumerate([7, 1, 30, 12])}


def test_round_trip_keeps_ids_order_and_values(tmp_path: Path) -> None:
    feats = _feats()
    save_features(tmp_path / "f.pt", feats)
    back = load_features(tmp_path / "f.pt")
    assert list(back) == list(feats)
    assert all(torch.equal(back[k], feats[k]) and back[k].dtype == torch.float16 for k in feats)
    raw = torch.load(tmp_path / "f.pt", weights_only=True)
    assert raw["format"] == FORMAT and raw["data"].shape == (50, 5)  # packed, not one tensor per id


def test_empty_split_round_trips(tmp_path: Path) -> None:
    save_features(tmp_path / "f.pt", {})
    assert load_features(tmp_path / "f.pt") == {}


def test_older_dict_caches_are_still_read(tmp_path: Path) -> None:
    feats = _feats()
    torch.save(feats, tmp_path / "old.pt")
    back = load_features(tmp_path / "old.pt")
    assert all(torch.equal(back[k], feats[k]) for k in feats)


@pytest.mark.parametrize("content", [b"", b"not a torch file", None])
def test_bad_files_give_one_clear_error(tmp_path: Path, content: bytes | None) -> None:
    p = tmp_path / "f.pt"
    if content is None:  # a real cache cut short, as a full disk or a kill would leave it
        save_features(p, _feats())
        p.write_bytes(p.read_bytes()[:200])
    else:
        p.write_bytes(content)
    with pytest.raises(InputError, match="run `asrkit prepare` again"):
        load_features(p)


def test_foreign_objects_and_missing_files(tmp_path: Path) -> None:
    torch.save({"weights": [1, 2]}, tmp_path / "foreign.pt")
    with pytest.raises(InputError, match="not an asrkit feature cache"):
        load_features(tmp_path / "foreign.pt")
    packed = {"format": FORMAT, "ids": ["a", "b"], "lengths": torch.tensor([2, 2]), "data": torch.zeros(3, 4)}
    torch.save(packed, tmp_path / "bad.pt")
    with pytest.raises(InputError, match="inconsistent"):
        load_features(tmp_path / "bad.pt")
    with pytest.raises(InputError, match="not found"):
        load_features(tmp_path / "missing.pt")
