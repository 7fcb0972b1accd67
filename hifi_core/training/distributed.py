"""torchrun / DDP: the process group, barriers, and the loss as a module DDP can wrap."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from ..model import HiFIModel

# ---------------------------------------------------------------- distributed

@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str) -> Dist:
    """Join the torchrun process group when WORLD_SIZE > 1 (gloo on CPU, NCCL on CUDA)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def barrier(d: Dist) -> None:
    if d.world > 1:
        torch.distributed.barrier()


class _LossModule(torch.nn.Module):
    """Wraps HiFIModel.loss as forward so DDP's gradient hooks see the call."""

    def __init__(self, model: HiFIModel, norm: str = "l1"):
        super().__init__()
        self.model, self.norm = model, norm

    def forward(self, *args):
        *args, pixel_weight = args
        return self.model.loss(*args, norm=self.norm, pixel_weight=pixel_weight)
