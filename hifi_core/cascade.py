"""The patch-based cascade: coarse-to-fine pyramid, overlapping patches, MultiDiffusion.

Layout: frames are [1, 3, h, w] float tensors in [0, 1] on the model's device; one pair and
one tau at a time (the frame-sized buffers are the only thing that grows with resolution).

Per pair, with N levels (level 0 = coarsest, scale 1/2**(N-1); level N-1 = full size):
1. The frame is padded (replicate) so every level is a whole multiple of the U-Net alignment,
   and downsampled by area averaging to each level.
2. Level 0 is denoised with a zero condition (the model's "base" mode).
3. Each finer level conditions on the bilinear x2 upsample of the previous estimate.
   A model with a flow residual base gets DIS flows computed once per pair (on the frames
   at up to about 1080p, `hifi_core.flow_base.estimate_flows`); each level warps its own
   frames with them, resized, and its condition carries the coarser level's *correction*
   of its own warped average:
   condition = up(estimate - coarser warped) + up(down(warped)), so that the base
   (condition + detail band of warped) = warped + up(correction). An untrained model thus
   returns each level's own flow average (no blur accumulates through the levels), and the
   base is exactly what training builds from a condition. With `network_frames="warped"`
   the network's frame channels get the two warped frames instead of the raw ones.
4. Every level is denoised patch by patch: the level is covered by overlapping patches (the
   last one flush with the edge); at *every* denoising step each patch's v-prediction is
   accumulated with its weight (uniform, or feathered linear ramps over the overlap) and
   divided by the summed weights (MultiDiffusion), and the DDIM update runs on the whole
   level. Noise is drawn once per level at full level size (on the CPU) from a generator
   seeded by (seed, pair index, tau, level) (`noise_generator`), so the result depends
   neither on the patch layout nor on how a job is split into calls (a whole clip, one pair
   per call, one level per node, a resumed file).
5. With K samples, the level's estimate is their mean (and their variance is kept as an
   uncertainty map); the padding is cropped at the end.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from .diffusion import ddim_sample, from_model_space, to_model_space
from .errors import HiFIInputError
from .flow_base import estimate_flows, warp_average, warp_frames
from .memory import AdaptiveBatchSize
from .model import HiFIModel
from .patches import Box, PatchGrid, make_patch_grid, patch_weight, plan_patch_grid
from .progress import CancelCheck, ProgressCounter, check_cancel
from .runtime import autocast_context

@dataclass(frozen=True)
class CascadePlan:
    """Sizes of every level for one frame size.

    Attributes:
        height, width (int): the frame's size.
        padded_height, padded_width (int): the finest level's size (the frame padded to the
            model's alignment times 2 ** (levels - 1), so every level halves exactly).
        level_sizes (tuple of (h, w)): every level's size, coarsest first.
        grids (tuple of PatchGrid): every level's patches, coarsest first.
    """

    height: int
    width: int
    padded_height: int
    padded_width: int
    level_sizes: Tuple[Tuple[int, int], ...]  # coarsest first
    grids: Tuple[PatchGrid, ...]

    @property
    def num_levels(self) -> int:
        return len(self.level_sizes)

    def patches_per_level(self) -> List[int]:
        return [len(g.boxes) for g in self.grids]


def resolve_levels(levels, height: int, width: int, patch_size: Tuple[int, int]) -> int:
    """An int, or "auto": enough levels that the coarsest level fits in about one patch."""
    if levels == "auto":
        ratio = max(height / patch_size[0], width / patch_size[1], 1.0)
        return 1 + max(0, math.ceil(math.log2(ratio)))
    if not isinstance(levels, int) or isinstance(levels, bool) or not 1 <= levels <= 8:
        raise HiFIInputError(f"levels={levels!r} must be an integer from 1 to 8, or 'auto'")
    return levels


def plan_cascade(height: int, width: int, *, levels, patch_size: Tuple[int, int], overlap: int,
                 alignment: int, max_patch_pixels: Optional[int] = None) -> CascadePlan:
    """Pad size, per-level sizes and patch grids for a frame of height x width.

    Args:
        height, width (int): the frame size.
        levels (int or "auto"): pyramid levels (1 = no cascade); "auto" = enough that the
            coarsest level is about one patch.
        patch_size ((int, int)): (height, width) of the patches; multiples of `alignment`.
        overlap (int): minimum overlap of neighbouring patches, 0 <= overlap < patch side.
        alignment (int): the model's size multiple (`HiFIModel.alignment`).
        max_patch_pixels (int or None): lay every level out with the least denoised area under
            this patch area (`patches.plan_patch_grid`); None = the fixed layout of
            `patch_size` patches, the last flush with the edge (`patches.make_patch_grid`).
    """
    ph, pw = patch_size
    if ph % alignment or pw % alignment or ph < alignment or pw < alignment:
        raise HiFIInputError(
            f"patch size {ph}x{pw} must be a positive multiple of {alignment} in both sides "
            f"for this model; try {max(alignment, ph // alignment * alignment)}x"
            f"{max(alignment, pw // alignment * alignment)}")
    if not 0 <= overlap < min(ph, pw):
        raise HiFIInputError(f"overlap={overlap} must be >= 0 and smaller than the patch ({ph}x{pw})")
    num_levels = resolve_levels(levels, height, width, patch_size)
    multiple = alignment * 2 ** (num_levels - 1)
    padded_h = math.ceil(height / multiple) * multiple
    padded_w = math.ceil(width / multiple) * multiple
    sizes = tuple((padded_h >> (num_levels - 1 - n), padded_w >> (num_levels - 1 - n))
                  for n in range(num_levels))
    if max_patch_pixels is None:
        grids = tuple(make_patch_grid(h, w, patch_size, overlap) for h, w in sizes)
    else:
        grids = tuple(plan_patch_grid(h, w, patch_size, overlap, alignment, max_patch_pixels) for h, w in sizes)
    return CascadePlan(height, width, padded_h, padded_w, sizes, grids)


def pad_to_plan(frame: torch.Tensor, plan: CascadePlan) -> torch.Tensor:
    pad_h, pad_w = plan.padded_height - frame.shape[-2], plan.padded_width - frame.shape[-1]
    if pad_h == 0 and pad_w == 0:
        return frame
    return F.pad(frame, (0, pad_w, 0, pad_h), mode="replicate")


def pad_flows_to_plan(flows: torch.Tensor, plan: CascadePlan) -> torch.Tensor:
    """Flows estimated on the unpadded frames, extended (edges replicated) over the padding.

    Flows are estimated on the frames as given, never on the padding: DIS's result depends on
    the frame size, and a few replicated rows moved flows by up to 13 px on a 960x540 object
    scene (the silenced cascade scored 1.5 dB under its own flow average). At a flow size
    1/k of the frame's, the padding is rounded up to whole flow pixels (k = 1 up to 1080p).
    """
    height, width = flows.shape[-2:]
    factor_h, factor_w = plan.height / height, plan.width / width
    pad_h = math.ceil((plan.padded_height - plan.height) / factor_h)
    pad_w = math.ceil((plan.padded_width - plan.width) / factor_w)
    if pad_h == 0 and pad_w == 0:
        return flows
    return F.pad(flows, (0, pad_w, 0, pad_h), mode="replicate")


def crop_to_plan(frame: torch.Tensor, plan: CascadePlan) -> torch.Tensor:
    return frame[..., :plan.height, :plan.width]


def resize_to_level(padded: torch.Tensor, plan: CascadePlan, level: int) -> torch.Tensor:
    """Area-downsample a padded full-size frame to a level's size."""
    factor = 2 ** (plan.num_levels - 1 - level)
    return F.avg_pool2d(padded, factor) if factor > 1 else padded


def level_inputs(model: HiFIModel, frame0: torch.Tensor, frame2: torch.Tensor, flows: Optional[torch.Tensor],
                 tau, warped_frames: Optional[Tuple[torch.Tensor, torch.Tensor]] = None
                 ) -> Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
    """(network frame0, network frame2, warped average) for frames [B, 3, h, w] at one size.

    The network sees the raw frames, or with `network_frames="warped"` both frames warped to
    tau; the warped average (the flow residual base) is None without flows. `warped_frames`:
    both frames already warped to tau (training warps them on a larger context), used instead
    of warping here.
    """
    if flows is None:
        return frame0, frame2, None
    if warped_frames is None and not model.sees_warped_frames:
        return frame0, frame2, warp_average(frame0, frame2, flows, tau)
    warped0, warped2 = warped_frames if warped_frames is not None else warp_frames(frame0, frame2, flows)
    if flows.shape[1] == 4:
        t = torch.as_tensor(tau, dtype=warped0.dtype, device=warped0.device).reshape(-1, 1, 1, 1)
        average = warped0 + (warped2 - warped0) * t
    else:  # RIFE's fusion weight and the mixture of bases weigh the average, not tau
        average = warp_average(frame0, frame2, flows, tau)
    return (warped0, warped2, average) if model.sees_warped_frames else (frame0, frame2, average)


def level_flow_average(padded0: torch.Tensor, padded2: torch.Tensor, flows: torch.Tensor, tau: float,
                       plan: CascadePlan, level: int) -> torch.Tensor:
    """The flow-warped average at a level's size (flows from any level, resized)."""
    return warp_average(resize_to_level(padded0, plan, level), resize_to_level(padded2, plan, level), flows, tau)


def upsample_estimate(estimate: torch.Tensor) -> torch.Tensor:
    """Bilinear x2: the condition for the next finer level."""
    return F.interpolate(estimate, scale_factor=2.0, mode="bilinear", align_corners=False)


def level_condition(estimate: torch.Tensor, coarser_warped: Optional[torch.Tensor] = None,
                    warped: Optional[torch.Tensor] = None) -> torch.Tensor:
    """A level's condition from the coarser level's estimate (all [B, 3, h, w] in [0, 1]).

    Without a flow base: the estimate upsampled. With one: the coarser level's correction of
    its warped average, upsampled, on this level's warped average seen through the same
    down/up operators (the model adds the detail band back: `HiFIModel.base_estimate`).
    Bilinear upsampling is linear, so this is one call.
    """
    if warped is None:
        return upsample_estimate(estimate)
    return upsample_estimate(estimate - coarser_warped + F.avg_pool2d(warped, 2))


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


def denoise_level(model: HiFIModel, frame0: torch.Tensor, frame2: torch.Tensor,
                  condition: Optional[torch.Tensor], tau: float, grid: PatchGrid, level: int,
                  num_levels: int, ctx: LevelContext, warped: Optional[torch.Tensor] = None
                  ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Denoise one pyramid level with MultiDiffusion patches (`level_base`, then `sample_level`).

    Args:
        frame0, frame2: [1, 3, h, w] in [0, 1] at this level's size: the frames the network
            sees (`level_inputs`: raw, or warped to tau).
        condition: [1, 3, h, w] in [0, 1] (the upsampled previous estimate) or None (base).
        tau: interpolation time.
        grid: the level's patch grid (from `plan_cascade`).
        warped: [1, 3, h, w] in [0, 1], the level's flow-warped average (`level_flow_average`),
            needed when the model's residual base is the flow average.

    Returns:
        (mean, variance) over the samples, each [1, 3, h, w]; mean in [0, 1].
    """
    base = level_base(model, frame0, frame2, condition, tau, warped)
    return sample_level(model, frame0, frame2, base, tau, grid, level, num_levels, ctx,
                        condition=condition, has_condition=condition is not None)


def level_base(model: HiFIModel, frame0: torch.Tensor, frame2: torch.Tensor, condition: Optional[torch.Tensor],
               tau: float, warped: Optional[torch.Tensor] = None, *, reuse_condition: bool = False,
               reuse_warped: bool = False) -> torch.Tensor:
    """A level's residual base in model space: `HiFIModel.base_estimate` for one level (one
    condition mask), built in place. Arguments as `denoise_level`'s; `reuse_condition` and
    `reuse_warped` hand those [0, 1] buffers over to become model-space ones (at 8K each is
    a frame of memory the caller then need not keep).
    """
    if model.uses_flow and warped is None:
        raise HiFIInputError("this model needs the flow-warped average for its residual base: "
                             "run it through run_cascade, which computes it")
    device = frame0.device
    tau_t = torch.tensor([float(tau)], device=device)
    reference = model.base_reference(frame0, frame2, tau_t, warped)
    # in place where the buffer is ours: a fresh blend, or a buffer handed over
    reference = to_model_space(reference, inplace=reference is not warped or reuse_warped)
    cond = None if condition is None else to_model_space(condition, inplace=reuse_condition)
    return model.base_from_reference(reference, cond, torch.tensor([condition is not None], device=device),
                                     inplace=True)


class PatchDenoiser:
    """The MultiDiffusion v-prediction of one level: `(z, logsnr, step) -> v` for `ddim_sample`.

    At every step each patch of the grid is predicted (in batches, `ctx.batcher`, which halves
    on out-of-memory), weighted (uniform or feathered over the overlap), accumulated and
    divided by the summed weights, so the update runs on the whole level. Only the base is
    held in model space: the frames and the condition are converted patch by patch (`crops`),
    since frame-sized buffers set the memory at 4K-8K.
    """

    def __init__(self, model: HiFIModel, frame0: torch.Tensor, frame2: torch.Tensor, base: torch.Tensor,
                 tau: float, grid: PatchGrid, ctx: LevelContext, *, condition: Optional[torch.Tensor],
                 has_condition: bool, level: int, num_levels: int):
        self.model, self.frame0, self.frame2, self.base, self.condition = model, frame0, frame2, base, condition
        self.grid, self.ctx, self.has_condition = grid, ctx, has_condition
        self.level, self.num_levels, self.sample = level, num_levels, 0
        device = self.device = frame0.device
        self.cond_mask = torch.tensor([has_condition], device=device)
        self.tau = torch.tensor([float(tau)], device=device)
        self.weight = patch_weight(grid.patch_height, grid.patch_width, ctx.overlap, ctx.feather).to(device)
        self.weight_sum = torch.zeros(1, 1, grid.height, grid.width, device=device)
        for y, x in grid.boxes:
            self.weight_sum[..., y:y + grid.patch_height, x:x + grid.patch_width] += self.weight

    def crops(self, tensor: torch.Tensor, boxes: Sequence[Box]) -> torch.Tensor:
        grid = self.grid
        batch = torch.cat([tensor[..., y:y + grid.patch_height, x:x + grid.patch_width] for y, x in boxes])
        return batch.contiguous(memory_format=torch.channels_last) if self.ctx.channels_last else batch

    def condition_crops(self, boxes: Sequence[Box]) -> torch.Tensor:  # HiFIModel.network_condition
        if self.model.network_sees_base:
            return self.crops(self.base, boxes)
        if not self.has_condition:
            return torch.zeros_like(self.crops(self.base, boxes))
        return to_model_space(self.crops(self.condition, boxes))

    def clamp_x(self, y: torch.Tensor) -> torch.Tensor:  # in place: ddim_sample hands over its x estimate
        x = self.model.from_diffusion_space(y, self.base, inplace=True).clamp_(-1.0, 1.0)
        return self.model.to_diffusion_space(x, self.base, inplace=True)

    def __call__(self, z: torch.Tensor, logsnr: torch.Tensor, step: int) -> torch.Tensor:
        grid, ctx, v_sum, done = self.grid, self.ctx, torch.zeros_like(z), [0]

        def work(boxes: Sequence[Box]) -> None:
            check_cancel(ctx.cancel)
            n = len(boxes)
            with torch.inference_mode(), autocast_context(self.device, ctx.precision):
                v = self.model.predict_v(
                    self.crops(z, boxes), logsnr.to(self.device), to_model_space(self.crops(self.frame0, boxes)),
                    to_model_space(self.crops(self.frame2, boxes)), self.condition_crops(boxes),
                    self.cond_mask.expand(n), self.tau.expand(n)).float()
            for i, (y, x) in enumerate(boxes):
                v_sum[..., y:y + grid.patch_height, x:x + grid.patch_width] += v[i:i + 1] * self.weight
            done[0] += n
            if ctx.counter is not None:
                ctx.counter.advance(n, level=self.level, num_levels=self.num_levels, step=step,
                                    num_steps=ctx.steps, sample=self.sample, num_samples=ctx.samples,
                                    patches_done=done[0], patches_total=len(grid.boxes))

        ctx.batcher.run(grid.boxes, work)
        return v_sum.div_(self.weight_sum)


def sample_level(model: HiFIModel, frame0: torch.Tensor, frame2: torch.Tensor, base: torch.Tensor, tau: float,
                 grid: PatchGrid, level: int, num_levels: int, ctx: LevelContext, *,
                 condition: Optional[torch.Tensor] = None, has_condition: bool = False, pair: int = 0
                 ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Sample one level around its residual base (`level_base`); (mean, variance) in [0, 1].

    `condition` ([0, 1]) is needed only by models whose network sees the condition rather
    than the base (`HiFIModel.network_sees_base`); `has_condition`: an upsampling level;
    `pair`: the pair's index in its clip (with ctx.seed, tau and level it seeds the noise).
    """
    device = frame0.device
    if has_condition and condition is None and not model.network_sees_base:
        raise HiFIInputError("this model's network sees the condition: pass it to sample_level")
    diffusion = model.config.diffusion
    denoiser = PatchDenoiser(model, frame0, frame2, base, tau, grid, ctx, condition=condition,
                             has_condition=has_condition, level=level, num_levels=num_levels)
    total = total_sq = None  # allocated from the second sample on: one sample needs no sums
    generator = noise_generator(ctx.seed, pair, tau, level)
    for sample in range(ctx.samples):
        denoiser.sample = sample
        noise = torch.randn(frame0.shape, generator=generator, dtype=torch.float32).to(device)
        y_hat = ddim_sample(denoiser, noise, steps=ctx.steps, eta=ctx.eta,
                            logsnr_min=diffusion.logsnr_min, logsnr_max=diffusion.logsnr_max,
                            generator=generator, clamp_x=denoiser.clamp_x, cancel=ctx.cancel)
        del noise
        # to [0, 1] in place: y_hat is ours, a frame-sized buffer
        x_hat = from_model_space(model.from_diffusion_space(y_hat, base, inplace=True).clamp_(-1.0, 1.0),
                                 inplace=True)
        del y_hat
        if ctx.samples == 1:  # no spread; a zero view, not a frame-sized buffer
            return x_hat, torch.zeros((), device=device).expand_as(x_hat)
        if total is None:
            total, total_sq = torch.zeros_like(x_hat), torch.zeros_like(x_hat)
        total += x_hat
        total_sq += x_hat * x_hat
    mean = total / ctx.samples
    variance = torch.clamp(total_sq / ctx.samples - mean * mean, min=0.0)
    return mean, variance


def run_cascade(model: HiFIModel, frame0: torch.Tensor, frame2: torch.Tensor, tau: float,
                plan: CascadePlan, ctx: LevelContext,
                start_level: int = 0, start_estimate: Optional[torch.Tensor] = None,
                stop_level: Optional[int] = None, pair: int = 0) -> Tuple[torch.Tensor, torch.Tensor]:
    """Run levels [start_level, stop_level] of the cascade for one pair and one tau.

    Args:
        model (HiFIModel): the model.
        frame0, frame2: [1, 3, H, W] full-size frames in [0, 1].
        tau (float): the time in (0, 1).
        plan (CascadePlan): `plan_cascade` for the frame size.
        ctx (LevelContext): steps, samples, patch batch, precision, hooks (`level_context`).
        start_level (int, default 0): the first level to run.
        start_estimate: the estimate at level start_level - 1 (its level's size), required
            when start_level > 0; this is how the ComfyUI graph chains one node per level.
        stop_level: last level to run (default: the finest).
        pair: the pair's index in its clip (seeds its noise with ctx.seed, `noise_generator`).

    Returns:
        (estimate, variance) at stop_level's size; cropped to the frame size when stop_level
        is the finest level, else padded level size.
    """
    stop_level = plan.num_levels - 1 if stop_level is None else stop_level
    if not 0 <= start_level <= stop_level < plan.num_levels:
        raise HiFIInputError(
            f"cascade levels {start_level}..{stop_level} are outside 0..{plan.num_levels - 1}")
    if start_level > 0 and start_estimate is None:
        raise HiFIInputError(f"level {start_level} needs the estimate of level {start_level - 1}")
    padded0, padded2 = pad_to_plan(frame0, plan), pad_to_plan(frame2, plan)
    flows = warped = None
    if model.uses_flow:  # once per pair, at most about 1080p: cheap at any frame size
        flows = pad_flows_to_plan(estimate_flows(frame0, frame2, tau, base=model.motion_base), plan)
        if start_level > 0:
            warped = level_flow_average(padded0, padded2, flows, tau, plan, start_level - 1)
    estimate, variance = start_estimate, None
    for level in range(start_level, stop_level + 1):
        check_cancel(ctx.cancel)
        f0 = resize_to_level(padded0, plan, level)
        f2 = resize_to_level(padded2, plan, level)
        if level > 0 and tuple(s * 2 for s in estimate.shape[-2:]) != tuple(f0.shape[-2:]):
            raise HiFIInputError(
                f"the estimate passed to level {level} is {tuple(estimate.shape[-2:])}, expected "
                f"{tuple(s // 2 for s in f0.shape[-2:])}: chain the cascade levels in order with "
                "the same frames and settings")
        coarser_warped = warped
        net0, net2, warped = level_inputs(model, f0, f2, flows, tau)
        del f0, f2  # with warped network frames the raw ones are no longer needed
        condition = None if level == 0 else level_condition(estimate, coarser_warped, warped)
        del coarser_warped
        estimate = None  # it lives on in the condition
        has_condition, finest = condition is not None, level == stop_level
        # Only the base needs to outlive this: a network that sees the base does not need the
        # condition, and no finer level needs the finest warped average, so their buffers
        # become the base's (at 8K, two frames of memory less while the level samples).
        base = level_base(model, net0, net2, condition, tau, warped,
                          reuse_condition=model.network_sees_base, reuse_warped=finest)
        if model.network_sees_base:
            condition = None
        if finest:
            warped = None
        estimate, variance = sample_level(model, net0, net2, base, tau, plan.grids[level], level,
                                          plan.num_levels, ctx, condition=condition, has_condition=has_condition,
                                          pair=pair)
        del net0, net2, base, condition
    if stop_level == plan.num_levels - 1:
        return crop_to_plan(estimate, plan), crop_to_plan(variance, plan)
    return estimate, variance
