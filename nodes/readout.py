"""The Patch-Cascade Upsample node's readout: patch grid and memory for given widget values.

The web extension (web/hifi.js) asks the `/hifi/estimate` route (routes.py) for this while the
user edits widgets; the numbers come from hifi_core itself (`plan_cascade` through
`hifi_core.interpolate.plan_job`, the planner the run itself uses), so the readout and the run
always agree. Sizes are pixels, memory is bytes.
"""

from __future__ import annotations

from typing import Optional

import torch

from ..hifi_core import CascadeSettings, get_preset, read_checkpoint_config
from ..hifi_core.interpolate import plan_job
from ..hifi_core.timeline import retime_schedule
from . import pace
from .engine import memory_budget
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
    """Per-level patch grids and the memory the run will plan with on `device` (JSON-ready):
    `hifi_core.interpolate.plan_job`, the planner `level_context` uses, for the settings the
    nodes would build from these widgets (`free_bytes`: the host's free-memory figure)."""
    config, model_label = model_config(checkpoint)
    budget = None if patch_batch > 0 else memory_budget(device, int(memory_budget_mb), free_bytes)
    settings = CascadeSettings(levels="auto" if int(levels) == 0 else int(levels),
                               patch_size=(int(patch_height), int(patch_width)), overlap=int(overlap),
                               samples=max(1, int(samples)), precision=precision,
                               patch_batch=int(patch_batch) if patch_batch > 0 else None, memory_budget=budget)
    job = plan_job(config, int(height), int(width), settings, device)
    plan = job.cascade
    rows = []
    for number, ((h, w), grid) in enumerate(zip(plan.level_sizes, plan.grids)):
        ys = sorted({y for y, _ in grid.boxes})
        xs = sorted({x for _, x in grid.boxes})
        rows.append({"level": number + 1, "height": h, "width": w, "rows": len(ys),
                     "columns": len(xs), "patches": len(grid.boxes),
                     "patch": [grid.patch_height, grid.patch_width],
                     "overlap_work": round(grid.overlap_work_fraction, 3)})
    return {"model": model_label, "levels": rows, "patch_bytes": job.patch_bytes, "patch_batch": job.patch_batch,
            "budget_bytes": budget, "working_bytes": job.working_bytes, "frame_buffer_bytes": job.frame_buffer_bytes,
            "io_bytes": job.io_bytes, "motion_bytes": job.motion_bytes, "peak_bytes": job.peak_bytes,
            "padded": [plan.padded_height, plan.padded_width]}


def eta_readout(*, checkpoint: str, device, width: int, height: int, levels: int, steps: int,
                samples: int, frame_count: int = 0, multiplier: int = 2, target_fps: float = 0.0,
                fps: float = 0.0) -> dict:
    """Seconds per in-between from this machine's last run at these settings (scaled to the
    frame size) and, when the clip's length is known, how many in-betweens and the ETA."""
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
