"""The packed feature cache: round trip, the older dict format, and clear errors on bad files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from asrkit.data.featcache import FORMAT, load_features, save_features
from asrkit.errors import InputError


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


def test_mixed_dims_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="different feature shapes"):
        save_features(tmp_path / "f.pt", {"a": torch.zeros(3, 5), "b": torch.zeros(3, 6)})
    assert not (tmp_path / "f.pt").exists()


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
