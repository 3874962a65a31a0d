"""DistributedDataParallel set-up from torchrun's environment: NCCL on GPU, gloo on CPU; one process = one rank."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass
class Dist:
    """This process's place in the job; a single process is rank 0 of 1."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's `obj` on every rank."""
        if not self.enabled:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's `obj`, in rank order, on every rank."""
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def all_true(self, flag: bool) -> bool:
        """True on every rank only if `flag` is true on every rank (keeps ranks in step when one must skip)."""
        if not self.enabled:
            return flag
        t = torch.tensor([1 if flag else 0], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MIN)
        return bool(t.item())

    def any_true(self, flag: bool) -> bool:
        """True on every rank if `flag` is true on any rank (a Ctrl-C seen by one rank stops them all at one step)."""
        return flag if not self.enabled else not self.all_true(not flag)

    def shard(self, batches: list[list[int]]) -> list[list[int]]:
        """This rank's batches: every world-th one, after dropping the tail so every rank takes as many steps."""
        if not self.enabled:
            return batches
        n = len(batches) - len(batches) % self.world
        return batches[self.rank : n : self.world]

    def close(self, clean: bool = True) -> None:
        """Leave the group; after a clean run, only once every rank is done (gloo aborts a rank torn down early)."""
        if self.enabled and dist.is_initialized():
            if clean:
                dist.barrier()
            dist.destroy_process_group()


def setup() -> Dist:
    """Join the process group torchrun describes in WORLD_SIZE/RANK/LOCAL_RANK; without them, a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(local % torch.cuda.device_count())
        device = torch.device("cuda", local % torch.cuda.device_count())
    else:
        device = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return Dist(rank=rank, world=world, local_rank=local, device=device)


def weights_checksum(model: torch.nn.Module) -> str:
    """A digest of the exact parameter bytes, to prove that ranks hold identical weights."""
    h = hashlib.sha256()
    for name, p in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(p.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]
