"""Memory planning for the patch cascade: how many patches to denoise at once.

`estimate_patch_bytes` is an analytic upper estimate of the inference working memory one
patch needs inside the U-Net (activations kept for skips plus the widest block's working
set); `plan_patch_batch` turns a budget (bytes, or the device's free memory) into a patch
batch size. On CUDA, `AdaptiveBatchSize` halves the batch on out-of-memory and retries, so a
wrong estimate costs speed, never the job.

The frame-sized buffers of the cascade (z and the residual base at the finest level; the
frames are read a block at a time) are separate and counted by `frame_buffer_bytes`; the
patch working memory does not grow with the frame size.
"""

from __future__ import annotations

import os
from typing import Callable, Optional, Sequence, TypeVar

import torch

from .config import MOTION_BASES, DiffusionConfig, UNetConfig
from .errors import HiFIInputError
from .patches import PatchGrid
from .runtime import is_out_of_memory, max_patch_batch, memory_budget

T = TypeVar("T")

# Measured on CPU fp32 (tests/test_memory.py checks the planner against peak RSS): the
# analytic count below misses allocator slack and temporaries, so we plan with a margin.
SAFETY_FACTOR = 2.0


def estimate_patch_bytes(config: UNetConfig, patch_height: int, patch_width: int,
                         dtype: torch.dtype = torch.float32) -> int:
    """Upper estimate of the U-Net's inference working memory for one patch, in bytes.

    Args:
        config (UNetConfig): the network (widths, blocks, attention, stem fold).
        patch_height, patch_width (int): the patch size in pixels.
        dtype (torch.dtype, default float32): the activations' type (half under fp16/bf16).
    """
    elem = torch.finfo(dtype).bits // 8
    pixels = patch_height * patch_width
    skips = 0
    widest = 0
    num_levels = len(config.channel_mults)
    stem_pixels = pixels / config.stem_factor ** 2  # a space-to-depth stem folds the patch first
    for level, (ch, blocks) in enumerate(zip(config.level_channels, config.blocks_per_level)):
        level_pixels = stem_pixels / 4 ** level
        skips += blocks * ch * level_pixels
        # A decoder block holds its concatenated input (2C), two intermediates and its output.
        working = 6 * ch * level_pixels
        if level >= num_levels - config.attention_levels:
            working += 5 * ch * level_pixels  # qkv (3C), attention output, projection
        widest = max(widest, working)
    # the input, its folded copy and the output at the patch's own size
    inputs = config.in_channels * pixels * (2 if config.stem_factor > 1 else 1) + config.out_channels * pixels
    return int((skips + widest + inputs) * elem * SAFETY_FACTOR)


def frame_buffer_bytes(height: int, width: int, samples: int = 1,
                       diffusion: Optional[DiffusionConfig] = None, *, window_rows: int = 0,
                       eta: float = 0.0, base_bytes: int = 4) -> int:
    """Frame-sized bytes the cascade holds at its peak (the finest level's sampling,
    `level_sampler.sample_level`) for one pair at this (padded) size, besides the two input
    frames (`pair_io_bytes`; read a block at a time, never copied) and the patch working set.

    Always z (which becomes the output) and the residual base, and with eta > 0 one step's
    fresh noise (`base_bytes` per value of each: 2 when the frames are half precision,
    `cascade.run_cascade`). In float32: a blend-base model's condition for the network
    (`diffusion` None: a blend-base model); warped network frames, the two warped frames;
    several samples, their sum and sum of squares. `window_rows`: the rows the sampler's row window spans (v and
    its weight, 4 channels; `sampler_window_rows`).
    """
    flow = diffusion is not None and diffusion.residual_base in MOTION_BASES
    float32_rgb = (0 if flow else 1) + (2 if samples > 1 else 0)
    if diffusion is not None and diffusion.network_frames == "warped":
        float32_rgb += 2
    compact_rgb = 2 + (1 if eta > 0 else 0)
    return int(height * width * 3 * (4 * float32_rgb + base_bytes * compact_rgb) + window_rows * width * 4 * 4)


def sampler_window_rows(grid: PatchGrid, patch_batch: int) -> int:
    """Rows of a level's grid the sampler's row window spans at most: a patch for every patch
    row one batch reaches (the rows above the batch's first patch are final before it runs)."""
    columns = len({x for _, x in grid.boxes})
    return min(grid.height, grid.patch_height * (1 + -(-(patch_batch - 1) // columns)))


# The motion base's peak while it estimates one pair's flows (RIFE's IFNet, DIS, the mixture),
# as growth of a fresh process's peak RSS, pages pinned (`experiments/motion_memory.py`), plus
# the 21 MiB of OpenCV a run loads: (fixed bytes, bytes per pixel of the flow estimation size).
# Frames reduced for the estimate (above FLOW_MAX_PIXELS) are counted apart by the plan.
# "rife": 119 / 153 / 210 / 263 MiB at 360p / 540p / 720p / 1080p, the highest of three runs
# (glibc's heap varies them by up to 25 MiB); the line through 540p and 1080p, the sizes the
# benchmarks report, lies 29 MiB under 720p's (the line above all four overstated 540p's whole
# job by half). DIS alone ("flow"): 30 / 52 / 83 / 172. Before RIFE read the frames through
# `PaddedFrame`s and made its tau-flows in place, "rife" was 307 at 1080p (with its copies).
# 2-core AMD EPYC, torch 2.13.0 CPU, 2026-12-02.
MOTION_BASE_BYTES = {"rife": (116 * 2 ** 20, 71 * 2 ** 20 / 1e6), "flow": (12 * 2 ** 20, 77 * 2 ** 20 / 1e6)}


def motion_base_bytes(flow_height: int, flow_width: int, base: str) -> int:
    """Peak bytes of estimating one pair's flows at this size with this base (0 for the blend)."""
    if base not in MOTION_BASE_BYTES:
        return 0
    fixed, per_pixel = MOTION_BASE_BYTES[base]
    return int(fixed + per_pixel * flow_height * flow_width)


# channels of the flows a motion base hands the cascade (float32, at the estimation size):
# the mixture of RIFE's and DIS's fields, or DIS's two flows
FLOW_FIELD_CHANNELS = {"rife": 11, "flow": 4}


def flow_field_bytes(flow_height: int, flow_width: int, base: str) -> int:
    """The flows the cascade holds from the motion base to its finest level (0 for the blend)."""
    return FLOW_FIELD_CHANNELS.get(base, 0) * flow_height * flow_width * 4


def pair_io_bytes(height: int, width: int, frame_bytes: int = 4) -> int:
    """The two RGB input frames (`frame_bytes` per value: 4 float32, 2 half precision); the
    output is the sampler's z (`frame_buffer_bytes`)."""
    return 2 * height * width * 3 * frame_bytes


def plan_patch_batch(config: UNetConfig, patch_height: int, patch_width: int, *,
                     budget_bytes: Optional[int] = None, device: torch.device = torch.device("cpu"),
                     dtype: torch.dtype = torch.float32, max_batch: Optional[int] = None) -> int:
    """Largest patch batch whose estimated working memory fits the budget (at least 1): what
    every run uses, and what the ComfyUI readout shows.

    Args:
        config (UNetConfig): the network.
        patch_height, patch_width (int): the patch size in pixels.
        device (torch.device, default cpu): where it runs (sets the cap and the free memory).
        dtype (torch.dtype, default float32): the activations' type.
        budget_bytes: memory allowed for the U-Net's working set; None = `runtime.memory_budget`
            (80% of the device's free memory).
        max_batch: the cap; None = `runtime.max_patch_batch` (4 on a CPU, 64 on CUDA).
    """
    budget_bytes = memory_budget(device, budget_bytes)
    max_batch = max_patch_batch(device) if max_batch is None else max_batch
    per_patch = estimate_patch_bytes(config, patch_height, patch_width, dtype)
    return max(1, min(max_batch, budget_bytes // per_patch))


class AdaptiveBatchSize:
    """Runs work in chunks, halving the chunk size on out-of-memory and retrying.

    The reduced size is kept for later calls, so one OOM does not repeat at every step.
    """

    def __init__(self, batch_size: int, on_out_of_memory: Optional[Callable[[], None]] = None):
        if batch_size < 1:
            raise HiFIInputError(f"patch batch size {batch_size} must be at least 1")
        self.batch_size = batch_size
        self._on_oom = on_out_of_memory

    def run(self, items: Sequence[T], work: Callable[[Sequence[T]], None]) -> None:
        start = 0
        while start < len(items):
            chunk = items[start:start + self.batch_size]
            try:
                work(chunk)
            except Exception as error:  # noqa: BLE001 - filtered just below
                if not is_out_of_memory(error):
                    raise
                if self.batch_size == 1:
                    raise HiFIInputError(
                        "out of memory with a patch batch of 1: use a smaller patch size, "
                        "fp16/bf16 precision, or a smaller model") from error
                self.batch_size //= 2
                if self._on_oom is not None:
                    self._on_oom()
                continue
            start += len(chunk)


def current_rss_bytes() -> int:
    """Resident set size of this process (Linux), for benchmarks and tests."""
    with open(f"/proc/{os.getpid()}/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
