"""How the nodes call hifi_core: settings from widgets, ComfyUI hooks, per-level cascade runs.

Frames here are hifi_core frames ([B, 3, H, W] float32 in [0, 1], CPU); nothing in this
module does model maths: it builds `CascadeSettings`, attaches ComfyUI's progress bar,
interrupt check and free-memory figure, and runs the levels a node owns through a
`hifi_core.Interpolator` (which owns device, precision, plan and patch batch).
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch

from ..hifi_core import CascadeSettings, runtime
from ..hifi_core.interpolate import Interpolator, plan_for
from . import comfy_bridge
from .handles import HiFIModelHandle

MIB = 1024 * 1024


def memory_budget(device: torch.device, budget_mb: int, free_bytes: Optional[int] = None) -> int:
    """Bytes for the U-Net's working set: the widget if set, else `runtime.memory_budget` of
    `free_bytes` (default: ComfyUI's free figure now). The readout asks the same function."""
    if free_bytes is None and budget_mb <= 0:
        free_bytes = comfy_bridge.free_memory_bytes(device)
    return runtime.memory_budget(device, int(budget_mb) * MIB if budget_mb > 0 else None, free_bytes=free_bytes)


def make_settings(handle: HiFIModelHandle, *, levels: int, patch_width: int, patch_height: int,
                  overlap: int, steps: int, samples: int, seed: int, eta: float = 0.0,
                  feather: bool = False, patch_batch: int = 0, memory_budget_mb: int = 0
                  ) -> CascadeSettings:
    """CascadeSettings from node widgets (levels 0 = auto, patch_batch 0 = from memory)."""
    return CascadeSettings(
        levels="auto" if levels == 0 else int(levels),
        patch_size=(int(patch_height), int(patch_width)), overlap=int(overlap), steps=int(steps),
        samples=int(samples), eta=float(eta), seed=int(seed) % (2 ** 63), feather=bool(feather),
        patch_batch=int(patch_batch) if patch_batch > 0 else None,
        memory_budget=memory_budget(handle.device, memory_budget_mb),
        device=None, precision=handle.precision)


def plan(handle: HiFIModelHandle, frame_size: Tuple[int, int], settings: CascadeSettings):
    return plan_for(handle.model, frame_size[0], frame_size[1], settings)


def run_levels(handle: HiFIModelHandle, rgb: torch.Tensor, pairs: Sequence[int],
               taus: Sequence[Sequence[float]], settings: CascadeSettings, *, start_level: int,
               stop_level: Optional[int], previous: Optional[Sequence[Sequence[torch.Tensor]]] = None,
               progress: Optional[comfy_bridge.ComfyProgress] = None
               ) -> Tuple[List[List[torch.Tensor]], List[List[torch.Tensor]], int]:
    """Cascade levels start_level..stop_level for every pair (i, i + 1) and tau.

    Args:
        rgb: the whole clip [N, 3, H, W] on the CPU.
        previous: estimates at level start_level - 1 (per pair, per tau), when start_level > 0.

    Returns:
        (estimates, variances, last level run); estimates per pair per tau, [1, 3, h, w] CPU.
    """
    hifi = Interpolator(handle.ready(), settings, progress=progress, cancel=comfy_bridge.cancel_check())
    results, last = hifi.run_levels(rgb, pairs, taus, start_level=start_level, stop_level=stop_level,
                                    previous=previous)
    estimates = [[mean for mean, _ in row] for row in results]
    variances = [[var for _, var in row] for row in results]
    return estimates, variances, last


def num_levels(handle: HiFIModelHandle, frame_size: Tuple[int, int], settings: CascadeSettings) -> int:
    return plan(handle, frame_size, settings).num_levels
