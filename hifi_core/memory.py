"""Memory planning for the patch cascade: how many patches to denoise at once.

`estimate_patch_bytes` is an analytic upper estimate of the inference working memory one
patch needs inside the U-Net (activations kept for skips plus the widest block's working
set); `plan_patch_batch` turns a budget (bytes, or the device's free memory) into a patch
batch size. On CUDA, `AdaptiveBatchSize` halves the batch on out-of-memory and retries, so a
wrong estimate costs speed, never the job.

The frame-sized buffers of the cascade (frames, noise, accumulators at each level) are
separate and counted by `frame_buffer_bytes`; the patch working memory does not grow with the
frame size.
"""

from __future__ import annotations

import os
from typing import Callable, Optional, Sequence, TypeVar

import torch

from .config import MOTION_BASES, DiffusionConfig, UNetConfig
from .errors import HiFIInputError

T = TypeVar("T")

# Measured on CPU fp32 (tests/test_memory.py checks the planner against peak RSS): the
# analytic count below misses allocator slack and temporaries, so we plan with a margin.
SAFETY_FACTOR = 2.0


def estimate_patch_bytes(config: UNetConfig, patch_height: int, patch_width: int,
                         dtype: torch.dtype = torch.float32) -> int:
    """Upper estimate of the U-Net's inference working memory for one patch, in bytes."""
    elem = torch.finfo(dtype).bits // 8
    pixels = patch_height * patch_width
    skips = 0
    widest = 0
    num_levels = len(config.channel_mults)
    for level, (ch, blocks) in enumerate(zip(config.level_channels, config.blocks_per_level)):
        level_pixels = pixels / 4 ** level
        skips += blocks * ch * level_pixels
        # A decoder block holds its concatenated input (2C), two intermediates and its output.
        working = 6 * ch * level_pixels
        if level >= num_levels - config.attention_levels:
            working += 5 * ch * level_pixels  # qkv (3C), attention output, projection
        widest = max(widest, working)
    inputs = config.in_channels * pixels
    return int((skips + widest + inputs) * elem * SAFETY_FACTOR)


def frame_buffer_bytes(height: int, width: int, samples: int = 1,
                       diffusion: Optional[DiffusionConfig] = None) -> int:
    """Frame-sized float32 bytes the cascade allocates at its peak (the finest level's
    sampling) for one pair at full resolution, besides the two input frames and the output
    (`pair_io_bytes`).

    `diffusion`: the model's settings (None: a blend-base model). With a flow base the
    network sees the base, so the finest level's condition and warped average become the
    base (`cascade.level_base`); a blend-base model keeps its condition for the network;
    warped network frames add the two warped frames.
    """
    flow = diffusion is not None and diffusion.residual_base in MOTION_BASES
    # the residual base, z and the v accumulator; with several samples also their sum and
    # sum of squares (one sample keeps neither)
    rgb = 3 + (2 if samples > 1 else 0) + (0 if flow else 1)
    if diffusion is not None and diffusion.network_frames == "warped":
        rgb += 2
    return int(height * width * (3 * rgb + 1) * 4)  # + the patch weights (1 channel)


def pair_io_bytes(height: int, width: int) -> int:
    """The two float32 RGB input frames and the interpolated output."""
    return 3 * height * width * 3 * 4


def available_memory(device: torch.device) -> int:
    """Free bytes on the device (CUDA: driver's free memory; CPU: MemAvailable)."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 * 1024 ** 3  # unknown platform: assume a modest 4 GiB


def plan_patch_batch(config: UNetConfig, patch_height: int, patch_width: int, *,
                     budget_bytes: Optional[int] = None, device: torch.device = torch.device("cpu"),
                     dtype: torch.dtype = torch.float32, max_batch: int = 64) -> int:
    """Largest patch batch whose estimated working memory fits the budget (at least 1).

    Args:
        budget_bytes: memory allowed for the U-Net's working set; None = 80% of the device's
            free memory.
    """
    if budget_bytes is None:
        budget_bytes = int(available_memory(device) * 0.8)
    if budget_bytes <= 0:
        raise HiFIInputError(f"memory budget {budget_bytes} bytes must be positive")
    per_patch = estimate_patch_bytes(config, patch_height, patch_width, dtype)
    return max(1, min(max_batch, budget_bytes // per_patch))


def is_out_of_memory(error: BaseException) -> bool:
    """True for CUDA / CPU allocator out-of-memory errors."""
    if isinstance(error, (torch.cuda.OutOfMemoryError, MemoryError)):
        return True
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()


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


def empty_device_cache(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


def current_rss_bytes() -> int:
    """Resident set size of this process (Linux), for benchmarks and tests."""
    with open(f"/proc/{os.getpid()}/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
