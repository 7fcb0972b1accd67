"""torchrun / DDP: the loss as a module DDP can wrap; the process group (re-exported here) is
`hifi_core.distributed`'s."""

from __future__ import annotations

import torch

from ..distributed import Dist, barrier, init_distributed  # noqa: F401 - the trainer's names
from ..model import HiFIModel

# the process group (Dist, init_distributed, barrier) lives in hifi_core.distributed, shared with
# the distributed retime
__all__ = ["Dist", "_LossModule", "barrier", "init_distributed"]


class _LossModule(torch.nn.Module):
    """Wraps HiFIModel.loss as forward so DDP's gradient hooks see the call."""

    def __init__(self, model: HiFIModel, norm: str = "l1"):
        super().__init__()
        self.model, self.norm = model, norm

    def forward(self, *args):
        *args, pixel_weight = args
        return self.model.loss(*args, norm=self.norm, pixel_weight=pixel_weight)
