"""Sampling one cascade level with MultiDiffusion patches, rows updated as soon as they are final.

At every DDIM step each patch of the level's grid is predicted (in batches that halve on
out-of-memory), weighted (uniform or feathered over the overlap) and summed, and the sum is
divided by the summed weights (MultiDiffusion). The update is per pixel, so a row can be
updated as soon as no patch still to come reads it: patches run row by row, and only the
rows the current patches cover are accumulated (`RowWindow`). The level's frame-sized
buffers are z (updated in place, and at the end the estimate) and the residual base; the
frames are read a patch at a time (`PaddedFrame`), so at 8K nothing else frame-sized exists.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Optional, Sequence, Tuple

import numpy as np
import torch

from .diffusion import DDIMStep, ddim_steps, ddim_times, ddim_update_, from_model_space, logsnr_schedule, to_model_space
from .errors import HiFIInputError
from .memory import AdaptiveBatchSize, sampler_window_rows
from .model import HiFIModel
from .padded_frame import PaddedFrame, as_padded
from .patches import Box, PatchGrid, patch_weight
from .progress import CancelCheck, ProgressCounter, check_cancel
from .runtime import autocast_context


@dataclass
class LevelContext:
    """What a level's denoising needs besides the frames: sampling knobs and hooks."""

    steps: int
    samples: int
    eta: float
    overlap: int
    feather: bool
    seed: int
    batcher: AdaptiveBatchSize
    precision: str = "fp32"
    channels_last: bool = False
    counter: Optional[ProgressCounter] = None
    cancel: Optional[CancelCheck] = None


def noise_generator(seed: int, pair: int, tau: float, level: int) -> torch.Generator:
    """The CPU generator of one pair's noise at one tau and level: a pure function of its
    arguments (tau to a millionth, so the same time from any schedule's arithmetic agrees)."""
    words = np.random.SeedSequence([int(seed), int(pair), round(float(tau) * 1_000_000), int(level)])
    return torch.Generator().manual_seed(int(words.generate_state(1, np.uint64)[0]) >> 1)


class RowWindow:
    """Weighted v and weights summed over the rows that patches have reached but that are not
    final yet: rows [top, top + filled) of a level `width` wide, kept at the start of one
    buffer of `capacity` rows (allocated once: growing a buffer holds the old and the new at
    once, at 8K 100 MB more at the peak)."""

    def __init__(self, channels: int, width: int, device: torch.device, capacity: int):
        self.top, self.filled = 0, 0
        self.v = torch.zeros(1, channels, capacity, width, device=device)
        self.weight = torch.zeros(1, 1, capacity, width, device=device)

    def add(self, y: int, x: int, v: torch.Tensor, weight: torch.Tensor) -> None:
        height, width = v.shape[-2:]
        start, stop = y - self.top, y - self.top + height
        if stop > self.v.shape[-2]:  # more rows than planned (`sampler_window_rows`): grow
            extra = stop - self.v.shape[-2]
            self.v = torch.cat([self.v, self.v.new_zeros(*self.v.shape[:2], extra, self.v.shape[-1])], dim=-2)
            self.weight = torch.cat([self.weight, self.weight.new_zeros(1, 1, extra, self.weight.shape[-1])], dim=-2)
        self.filled = max(self.filled, stop)
        self.v[..., start:stop, x:x + width] += v * weight
        self.weight[..., start:stop, x:x + width] += weight

    def finished(self, stop: int) -> torch.Tensor:
        """The merged v of rows [top, stop), which no patch will reach again (a view: hand it
        back with `release` once used)."""
        count = stop - self.top
        return self.v[..., :count, :].div_(self.weight[..., :count, :])

    def release(self, stop: int) -> None:
        """Rows [top, stop) leave: the rest moves to the buffer's start, the freed rows are zeroed."""
        count, rest = stop - self.top, max(0, self.filled - (stop - self.top))
        for buffer in (self.v, self.weight):
            # forward, in pieces no longer than the shift: no piece overlaps its own source
            for first in range(0, rest, max(count, 1)):
                last = min(rest, first + count)
                buffer[..., first:last, :] = buffer[..., count + first:count + last, :]
            buffer[..., rest:rest + count, :].zero_()
        self.top, self.filled = stop, rest


class PatchDenoiser:
    """One level's MultiDiffusion DDIM step over its patch grid, applied to z in place.

    Only the base and z are held in model/diffusion space; the frames ([0, 1], tensors or
    `PaddedFrame`s) and the condition are converted patch by patch.
    """

    def __init__(self, model: HiFIModel, frame0, frame2, base: torch.Tensor, tau: float, grid: PatchGrid,
                 ctx: LevelContext, *, condition: Optional[torch.Tensor], has_condition: bool, level: int,
                 num_levels: int):
        self.model, self.base, self.condition = model, base, condition
        self.frame0, self.frame2 = as_padded(frame0), as_padded(frame2)
        self.grid, self.ctx, self.has_condition = grid, ctx, has_condition
        self.level, self.num_levels, self.sample = level, num_levels, 0
        device = self.device = base.device
        self.cond_mask = torch.tensor([has_condition], device=device)
        self.tau = torch.tensor([float(tau)], device=device)
        self.weight = patch_weight(grid.patch_height, grid.patch_width, ctx.overlap, ctx.feather).to(device)
        self.boxes = sorted(grid.boxes)  # row by row: rows above the next patch are final

    def _batch(self, tensors: Sequence[torch.Tensor]) -> torch.Tensor:
        batch = torch.cat(list(tensors))
        return batch.contiguous(memory_format=torch.channels_last) if self.ctx.channels_last else batch

    def crops(self, tensor: torch.Tensor, boxes: Sequence[Box]) -> torch.Tensor:
        ph, pw = self.grid.patch_height, self.grid.patch_width
        return self._batch([tensor[..., y:y + ph, x:x + pw] for y, x in boxes])

    def frame_crops(self, frame: PaddedFrame, boxes: Sequence[Box]) -> torch.Tensor:
        ph, pw = self.grid.patch_height, self.grid.patch_width
        return to_model_space(self._batch([frame.block(y, y + ph, x, x + pw) for y, x in boxes]))

    def condition_crops(self, boxes: Sequence[Box]) -> torch.Tensor:  # HiFIModel.network_condition
        if self.model.network_sees_base:
            return self.crops(self.base, boxes).float()
        if not self.has_condition:
            return torch.zeros_like(self.crops(self.base, boxes), dtype=torch.float32)
        return to_model_space(self.crops(self.condition, boxes))

    def clamp_x(self, rows: slice):
        base = self.base[..., rows, :].float()

        def clamp(y: torch.Tensor) -> torch.Tensor:
            x = self.model.from_diffusion_space(y, base, inplace=True).clamp_(-1.0, 1.0)
            return self.model.to_diffusion_space(x, base, inplace=True)
        return clamp

    def step(self, z: torch.Tensor, step: DDIMStep, logsnr: torch.Tensor, fresh: Optional[torch.Tensor]) -> None:
        """Predict every patch from z and update z in place, a finished band of rows at a time."""
        grid, ctx, boxes = self.grid, self.ctx, self.boxes
        capacity = sampler_window_rows(grid, ctx.batcher.batch_size)
        window, done = RowWindow(z.shape[1], grid.width, self.device, capacity), [0]

        def update(stop: int) -> None:
            top = window.top
            if stop <= top:
                return
            rows = slice(top, stop)
            band_fresh = None if fresh is None else fresh[..., rows, :]
            with _in_float32(z[..., rows, :]) as band:
                ddim_update_(band, window.finished(stop), step, self.clamp_x(rows), band_fresh)
            window.release(stop)

        def work(chunk: Sequence[Box]) -> None:
            check_cancel(ctx.cancel)
            n = len(chunk)
            with torch.inference_mode(), autocast_context(self.device, ctx.precision):
                v = self.model.predict_v(
                    self.crops(z, chunk).float(), logsnr.to(self.device), self.frame_crops(self.frame0, chunk),
                    self.frame_crops(self.frame2, chunk), self.condition_crops(chunk),
                    self.cond_mask.expand(n), self.tau.expand(n)).float()
            for i, (y, x) in enumerate(chunk):
                window.add(y, x, v[i:i + 1], self.weight)
            del v
            done[0] += n
            update(boxes[done[0]][0] if done[0] < len(boxes) else grid.height)
            if ctx.counter is not None:
                ctx.counter.advance(n, level=self.level, num_levels=self.num_levels, step=step.index,
                                    num_steps=ctx.steps, sample=self.sample, num_samples=ctx.samples,
                                    patches_done=done[0], patches_total=len(boxes))

        ctx.batcher.run(boxes, work)


def _to_unit_range_(model: HiFIModel, z: torch.Tensor, base: torch.Tensor, band_rows: int = 256) -> torch.Tensor:
    """z (holding the x estimate in diffusion space) to [0, 1] in place, a band of rows at a
    time: a float16 base and z are worked on as float32 a band at a time, not whole."""
    for top in range(0, z.shape[-2], band_rows):
        with _in_float32(z[..., top:top + band_rows, :]) as rows:
            model.from_diffusion_space(rows, base[..., top:top + band_rows, :].float(), inplace=True).clamp_(-1.0, 1.0)
            from_model_space(rows, inplace=True)
    return z


@contextmanager
def _in_float32(band: torch.Tensor) -> Iterator[torch.Tensor]:
    """`band` (a view of z) to work on in place in float32: itself, or a float32 copy of a
    compact z's band that is written back when the work is done."""
    work = band if band.dtype == torch.float32 else band.float()
    yield work
    if work is not band:
        band.copy_(work)


# values of noise drawn at once into a compact z: a multiple of 16 (see `draw_noise`), 4 MB
NOISE_CHUNK_VALUES = 1 << 20


def draw_noise(shape: Tuple[int, ...], generator: torch.Generator, dtype: torch.dtype,
               device: torch.device) -> torch.Tensor:
    """Unit Gaussian noise of `shape` in `dtype`: the numbers of one whole float32 draw from
    `generator` (rounded to `dtype`), drawn a chunk at a time in memory order, so a float16 z
    never has a float32 twin (at 8K 400 MB). CPU `torch.randn` draws in blocks of 16 values
    (a last partial block redraws the final 16), so chunks of whole blocks, the last one
    taking the remainder, continue one draw exactly
    (tests/test_frame_buffers.py checks it for the installed torch)."""
    if dtype == torch.float32:
        return torch.randn(shape, generator=generator, dtype=torch.float32).to(device)
    out = torch.empty(shape, dtype=dtype, device=device)
    flat, start = out.view(-1), 0
    while start < flat.numel():
        stop = flat.numel() if flat.numel() - start < 2 * NOISE_CHUNK_VALUES else start + NOISE_CHUNK_VALUES
        flat[start:stop] = torch.randn(stop - start, generator=generator)
        start = stop
    return out


def sample_level(model: HiFIModel, frame0, frame2, base: torch.Tensor, tau: float, grid: PatchGrid, level: int,
                 num_levels: int, ctx: LevelContext, *, condition: Optional[torch.Tensor] = None,
                 has_condition: bool = False, pair: int = 0) -> Tuple[torch.Tensor, torch.Tensor]:
    """Sample one level around its residual base (model space, `cascade.level_base`; float32,
    or float16 to save memory); returns (mean, variance) in [0, 1] over `ctx.samples` samples.
    z, which becomes the mean of one sample, is held in the base's dtype (updated in float32
    a band at a time); several samples' mean and variance are float32.

    `frame0`, `frame2`: what the network sees at this level, [1, 3, h, w] in [0, 1] (tensors
    or `PaddedFrame`s); `condition` ([0, 1]) is needed only by models whose network sees the
    condition rather than the base (`HiFIModel.network_sees_base`); `has_condition`: an
    upsampling level; `pair`: the pair's index in its clip (with ctx.seed, tau and level it
    seeds the noise).
    """
    device = base.device
    if has_condition and condition is None and not model.network_sees_base:
        raise HiFIInputError("this model's network sees the condition: pass it to sample_level")
    diffusion = model.config.diffusion
    denoiser = PatchDenoiser(model, frame0, frame2, base, tau, grid, ctx, condition=condition,
                             has_condition=has_condition, level=level, num_levels=num_levels)
    steps = ddim_steps(ctx.steps, ctx.eta, diffusion.logsnr_min, diffusion.logsnr_max)
    times = ddim_times(ctx.steps)
    total = total_sq = None  # allocated from the second sample on: one sample needs no sums
    generator = noise_generator(ctx.seed, pair, tau, level)
    shape = (1, 3, grid.height, grid.width)
    for sample in range(ctx.samples):
        denoiser.sample = sample
        z = draw_noise(shape, generator, base.dtype, device)  # compact like the base (`run_cascade`)
        for step in steps:
            check_cancel(ctx.cancel)
            fresh = None  # drawn in the order a whole-frame sampler draws it, compact like z
            if ctx.eta > 0 and not step.last:
                fresh = draw_noise(shape, generator, base.dtype, device)
            logsnr = logsnr_schedule(times[step.index], diffusion.logsnr_min, diffusion.logsnr_max)
            denoiser.step(z, step, logsnr, fresh)
            del fresh
        x_hat = _to_unit_range_(model, z, base)
        if ctx.samples == 1:  # no spread; a zero view, not a frame-sized buffer
            return x_hat, torch.zeros((), device=device).expand_as(x_hat)
        if total is None:
            total, total_sq = (torch.zeros_like(x_hat, dtype=torch.float32) for _ in range(2))
        x_hat = x_hat.float()
        total += x_hat
        total_sq += x_hat * x_hat
        del z, x_hat
    mean = total / ctx.samples
    variance = torch.clamp(total_sq / ctx.samples - mean * mean, min=0.0)
    return mean, variance
