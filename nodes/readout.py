"""The Patch-Cascade Upsample node's readout: patch grid and memory for given widget values.

The web extension (web/hifi.js) asks the `/hifi/estimate` route (routes.py) for this while the
user edits widgets; the numbers come from hifi_core itself (`plan_cascade`,
`estimate_patch_bytes`, `plan_patch_batch` with `runtime`'s budget and cap, `frame_buffer_bytes` +
`pair_io_bytes`), so the readout and the run always agree. Sizes are pixels, memory is bytes.
"""

from __future__ import annotations

from typing import Optional

import torch

from ..hifi_core import get_preset, plan_cascade, read_checkpoint_config, runtime
from ..hifi_core.memory import estimate_patch_bytes, frame_buffer_bytes, pair_io_bytes, plan_patch_batch
from .inputs import PRESET_PREFIX, resolve_checkpoint

FALLBACK_PRESET = "small"


def model_config(checkpoint: Optional[str]):
    """The ModelConfig behind a Load Model combo value (metadata only, no weights read)."""
    if not checkpoint:
        return get_preset(FALLBACK_PRESET), f"{PRESET_PREFIX}{FALLBACK_PRESET} (no model connected)"
    if checkpoint.startswith(PRESET_PREFIX):
        return get_preset(checkpoint[len(PRESET_PREFIX):]), checkpoint
    return read_checkpoint_config(resolve_checkpoint(checkpoint)), checkpoint


def cascade_readout(*, checkpoint: Optional[str], width: int, height: int, levels: int,
                    patch_width: int, patch_height: int, overlap: int, patch_batch: int = 0,
                    memory_budget_mb: int = 0, precision: str = "fp32", samples: int = 1,
                    free_bytes: Optional[int] = None, device: torch.device = torch.device("cpu")) -> dict:
    """Per-level patch grids and the memory the run will plan with on `device` (JSON-ready);
    `free_bytes`: the host's free-memory figure (ComfyUI's), as the run's budget uses."""
    config, model_label = model_config(checkpoint)
    plan = plan_cascade(int(height), int(width), levels="auto" if int(levels) == 0 else int(levels),
                        patch_size=(int(patch_height), int(patch_width)), overlap=int(overlap),
                        alignment=config.unet.alignment)
    dtype = runtime.PRECISIONS[runtime.resolve_precision(precision, device)]
    largest = max(plan.grids, key=lambda g: g.patch_height * g.patch_width)
    per_patch = estimate_patch_bytes(config.unet, largest.patch_height, largest.patch_width, dtype)
    if patch_batch > 0:
        batch, budget = int(patch_batch), None
    else:
        budget = runtime.memory_budget(device, int(memory_budget_mb) * 2 ** 20 if memory_budget_mb > 0 else None,
                                       free_bytes=free_bytes)
        batch = plan_patch_batch(config.unet, largest.patch_height, largest.patch_width,
                                 budget_bytes=budget, device=device, dtype=dtype)
    rows = []
    for number, ((h, w), grid) in enumerate(zip(plan.level_sizes, plan.grids)):
        ys = sorted({y for y, _ in grid.boxes})
        xs = sorted({x for _, x in grid.boxes})
        rows.append({"level": number + 1, "height": h, "width": w, "rows": len(ys),
                     "columns": len(xs), "patches": len(grid.boxes),
                     "patch": [grid.patch_height, grid.patch_width],
                     "overlap_work": round(grid.overlap_work_fraction, 3)})
    working = per_patch * batch
    frames = (frame_buffer_bytes(plan.padded_height, plan.padded_width, samples, config.diffusion)
              + pair_io_bytes(plan.padded_height, plan.padded_width))
    return {"model": model_label, "levels": rows, "patch_bytes": per_patch, "patch_batch": batch,
            "budget_bytes": budget, "working_bytes": working, "frame_buffer_bytes": frames,
            "total_bytes": working + frames, "padded": [plan.padded_height, plan.padded_width]}


def eta_readout(*, checkpoint: str, device, width: int, height: int, levels: int, steps: int,
                samples: int, frame_count: int = 0, multiplier: int = 2, target_fps: float = 0.0,
                fps: float = 0.0) -> dict:
    """Seconds per in-between from this machine's last run at these settings (scaled to the
    frame size) and, when the clip's length is known, how many in-betweens and the ETA."""
    from ..hifi_core.timeline import retime_schedule
    from . import pace

    key = pace.pace_key(checkpoint or "", device, "auto" if int(levels) == 0 else int(levels), steps, samples)
    found = pace.estimate(key, int(width), int(height))
    result = {"seconds_per_inbetween": None, "measured_at": None, "inbetweens": None, "eta_seconds": None}
    if found:
        result.update(found)
    if frame_count >= 2:
        if target_fps > 0 and fps > 0:
            schedule = retime_schedule(int(frame_count), source_fps=fps, target_fps=target_fps)
        else:
            schedule = retime_schedule(int(frame_count), multiplier=max(1, int(multiplier)))
        result["inbetweens"] = sum(1 for frame in schedule if frame.tau > 0)
        if found:
            result["eta_seconds"] = result["inbetweens"] * found["seconds_per_inbetween"]
    return result
