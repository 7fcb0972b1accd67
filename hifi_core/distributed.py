"""torchrun process groups, shared by the trainer (DDP) and the distributed file retime.

`torchrun` (on one machine or several) starts one process per rank and sets RANK,
WORLD_SIZE, LOCAL_RANK and the rendezvous variables; `init_distributed` joins that group.
Without torchrun (WORLD_SIZE unset or 1) it returns a world of one and nothing is started.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Optional

import torch


@dataclass
class Dist:
    """This process's place in the group: its rank, the number of ranks, its local rank
    (its index on its own machine, which picks its GPU)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def torchrun_world() -> int:
    """WORLD_SIZE as torchrun set it (1 without torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def init_distributed(device: str = "cpu", *, backend: Optional[str] = None,
                     timeout: Optional[timedelta] = None) -> Dist:
    """Join the torchrun process group when WORLD_SIZE > 1.

    Args:
        device: the device this rank computes on; picks the default backend (NCCL for CUDA,
            gloo otherwise).
        backend: force a backend ("gloo" for collectives on CPU objects whatever the device).
        timeout: how long a collective may wait for the other ranks (torch's default if None).
    """
    if torchrun_world() <= 1:
        return Dist()
    import torch.distributed as dist

    if not dist.is_initialized():
        backend = backend or ("nccl" if device.startswith("cuda") else "gloo")
        dist.init_process_group(backend=backend, **({"timeout": timeout} if timeout is not None else {}))
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def barrier(d: Dist) -> None:
    if d.world > 1:
        torch.distributed.barrier()


def close_distributed(d: Optional[Dist]) -> None:
    """Leave the process group (no-op for a world of one)."""
    if d is not None and d.world > 1 and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def rank_device(requested: Optional[str], local_rank: int) -> Optional[str]:
    """The device of a rank: with CUDA present, "auto"/None/"cuda" become cuda:LOCAL_RANK (one GPU
    per process on each machine); anything else (e.g. "cpu", "cuda:1") is kept as given."""
    if requested in (None, "auto", "cuda") and torch.cuda.is_available():
        return f"cuda:{local_rank % torch.cuda.device_count()}"
    return requested
