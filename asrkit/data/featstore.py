"""The prepared feature store, feats/<split>/: every utterance's (frames × dims) float16 matrix, read lazily.

A split is cut into shards of SHARD_UTTERANCES utterances in manifest order. Shard k is `shard-0000k.npy` (its
utterances' frames one after another) and `shard-0000k.json` (their ids and frame counts, and the sums the CMVN
statistics are made of). Each file is written under a temporary name and renamed, the array first, so an index on
disk means a complete shard: a killed `prepare` keeps its finished shards and the next run computes only the rest,
on as many worker processes as asked. `index.json`, written last, says that the split is complete.

Readers map the arrays (`np.load(mmap_mode="r")`): the frames stay in the page cache, shared by every process
that reads them (torchrun's ranks on one machine), and out of each process's private memory. Training reads one
more file per split, the features normalised for the recipe's CMVN (`normalized`), made once and mapped the same way.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from asrkit.errors import InputError
from asrkit.fsutil import atomic_write, atomic_write_text

FORMAT = "asrkit-features-2"
SHARD_UTTERANCES = 128
INDEX = "index.json"
OPEN_SHARDS = 64  # mapped shards kept open per store: a 960 h corpus has thousands, more than the default fd limit


def shard_name(k: int) -> str:
    return f"shard-{k:05d}"


def shard_ranges(n: int, size: int | None = None) -> list[tuple[int, int]]:
    """[start, end) of each shard of a split of `n` utterances (SHARD_UTTERANCES each, the last one fewer)."""
    size = size or SHARD_UTTERANCES
    return [(a, min(a + size, n)) for a in range(0, n, size)]


def _save_npy(path: Path, data: np.ndarray) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:  # np.save on a name would append .npy to the temporary name
            np.save(f, data)

    atomic_write(path, write)


def write_shard(
    folder: Path, k: int, ids: Sequence[str], feats: Sequence[torch.Tensor], stats: dict | None = None
) -> None:
    """Shard k of a split: the frames (as float16), then its index; `stats` are CMVN sums to keep beside them."""
    dims = {tuple(f.shape[1:]) for f in feats}
    if len(dims) > 1:
        raise InputError(f"{folder}: utterances with different feature shapes {sorted(dims)}")
    data = np.concatenate([f.to(torch.float16).numpy() for f in feats]) if feats else np.zeros((0, 0), np.float16)
    _save_npy(folder / f"{shard_name(k)}.npy", data)
    index = {
        "format": FORMAT,
        "ids": list(ids),
        "lengths": [int(f.shape[0]) for f in feats],
        "dims": int(data.shape[1]),
    }
    if stats is not None:
        index["stats"] = stats
    atomic_write_text(folder / f"{shard_name(k)}.json", json.dumps(index))


def read_shard_index(folder: Path, k: int) -> dict | None:
    """Shard k's index when the shard is complete and readable, else None (to be computed again)."""
    try:
        index = json.loads((folder / f"{shard_name(k)}.json").read_text())
    except (OSError, ValueError):
        return None
    ok = isinstance(index, dict) and index.get("format") == FORMAT and (folder / f"{shard_name(k)}.npy").is_file()
    return index if ok and len(index.get("ids", ())) == len(index.get("lengths", ())) else None


def finish_split(folder: Path, shards: int) -> None:
    """Write the split's index.json once all its shards are complete."""
    lengths = [read_shard_index(folder, k) for k in range(shards)]
    if any(s is None for s in lengths):
        raise InputError(f"{folder}: a shard is missing or unreadable; run `asrkit prepare` again")
    dims = {s["dims"] for s in lengths if s["ids"]}
    if len(dims) > 1:
        raise InputError(f"{folder}: shards with different feature dimensions {sorted(dims)}")
    index = {
        "format": FORMAT,
        "shards": shards,
        "utterances": sum(len(s["ids"]) for s in lengths),
        "frames": sum(sum(s["lengths"]) for s in lengths),
        "dims": dims.pop() if dims else 0,
    }
    atomic_write_text(folder / INDEX, json.dumps(index))


def write_store(folder: str | Path, feats: Mapping[str, torch.Tensor]) -> None:
    """A whole split at once, id → (frames × dims), as a complete store (for tools and tests; `prepare` writes
    shard by shard). What the folder held before is replaced."""
    folder = Path(folder)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    ids = list(feats)
    ranges = shard_ranges(len(ids))
    for k, (a, b) in enumerate(ranges):
        write_shard(folder, k, ids[a:b], [feats[i] for i in ids[a:b]])
    finish_split(folder, len(ranges))


def split_stats(folder: Path, shards: int) -> list[dict]:
    """The CMVN sums kept in each shard's index."""
    return [s["stats"] for k in range(shards) if (s := read_shard_index(folder, k)) and "stats" in s]


class FeatureStore(Mapping[str, torch.Tensor]):
    """A prepared split's features by utterance id, read from the mapped shards on demand."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        try:
            index = json.loads((self.folder / INDEX).read_text())
        except FileNotFoundError:
            raise InputError(
                f"feature store {self.folder} is incomplete (no {INDEX}); run `asrkit prepare` again"
            ) from None
        except (OSError, ValueError) as e:
            raise InputError(
                f"feature store {self.folder / INDEX} is unreadable ({e}); run `asrkit prepare` again"
            ) from None
        if not isinstance(index, dict) or index.get("format") != FORMAT:
            raise InputError(f"{self.folder} is not an asrkit feature store ({FORMAT}); run `asrkit prepare` again")
        self.dims = int(index["dims"])
        self._where: dict[str, tuple[int, int, int]] = {}  # id → (shard, first frame, frames)
        for k in range(index["shards"]):
            s = read_shard_index(self.folder, k)
            if s is None:
                raise InputError(
                    f"feature store {self.folder}: {shard_name(k)} is missing or unreadable; run `asrkit prepare` again"
                )
            offset = 0
            for uid, n in zip(s["ids"], s["lengths"]):
                self._where[uid] = (k, offset, n)
                offset += n
        if len(self._where) != index["utterances"]:
            raise InputError(
                f"feature store {self.folder} is inconsistent (index and shards disagree); run `asrkit prepare` again"
            )
        self._open: OrderedDict[int, np.ndarray] = OrderedDict()

    def _shard(self, k: int) -> np.ndarray:
        if k in self._open:
            self._open.move_to_end(k)
            return self._open[k]
        path = self.folder / f"{shard_name(k)}.npy"
        try:
            a = np.load(path, mmap_mode="r")
        except (OSError, ValueError) as e:
            raise InputError(f"feature store {path} is unreadable ({e}); run `asrkit prepare` again") from None
        self._open[k] = a
        if len(self._open) > OPEN_SHARDS:
            self._open.popitem(last=False)
        return a

    def rows(self, uid: str) -> np.ndarray:
        """The utterance's frames as a read-only view of the mapped shard."""
        k, offset, n = self._where[uid]
        return self._shard(k)[offset : offset + n]

    def frames(self, uid: str) -> int:
        return self._where[uid][2]

    def __getitem__(self, uid: str) -> torch.Tensor:
        return torch.from_numpy(np.array(self.rows(uid)))

    def __iter__(self) -> Iterator[str]:
        return iter(self._where)

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, uid: object) -> bool:
        return uid in self._where


def normalized(
    store: FeatureStore, ids: Sequence[str], norm: Callable[[torch.Tensor], torch.Tensor], key: str
) -> np.ndarray:
    """The utterances `ids` normalised by `norm`, one after another as float16 with a zero row at the end, in a
    mapped file beside the store (`norm-<hash>.npy`, named by `key` and the ids): written once, by the first process
    that needs it while the others wait, and read by all of them from the page cache."""
    import fcntl  # lazy: POSIX-only, and only the shared normalised copy needs it

    digest = hashlib.sha1(key.encode())
    for f in sorted(store.folder.glob("shard-*.npy")):  # a store written again, or a shard changed, is normalised again
        st = f.stat()
        digest.update(f"{f.name} {st.st_size} {st.st_mtime_ns}\n".encode())
    for uid in ids:
        digest.update(uid.encode() + b"\n")
    path = store.folder / f"norm-{digest.hexdigest()[:16]}.npy"
    lock = os.open(store.folder / ".norm.lock", os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # torchrun's ranks: one writes, the others find it done
        if not path.is_file():
            for old in store.folder.glob("norm-*.npy"):
                old.unlink()  # another recipe's normalisation: one at a time, the store must not grow with every run
            total = sum(store.frames(uid) for uid in ids)

            def write(tmp: str) -> None:
                out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=(total + 1, store.dims))
                row = 0
                for uid in ids:
                    f = norm(torch.from_numpy(np.array(store.rows(uid), dtype=np.float32)))
                    out[row : row + len(f)] = f.numpy()
                    row += len(f)
                out[row] = 0
                out.flush()
                del out

            atomic_write(path, write)
    finally:
        os.close(lock)
    return np.load(path, mmap_mode="r")
