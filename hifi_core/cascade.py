"""The patch-based cascade: coarse-to-fine pyramid, overlapping patches, MultiDiffusion.

Layout: frames are [1, 3, h, w] float tensors in [0, 1] on the model's device (float32, or
half precision); one pair and one tau at a time. What grows with resolution is the finest
level's z and residual base and the caller's two frames: nothing else frame-sized is held
(at 8K a float32 frame is 400 MB).

Per pair, with N levels (level 0 = coarsest, scale 1/2**(N-1); level N-1 = full size):
1. The frame is padded (replicate) so every level is a whole multiple of the U-Net alignment,
   and downsampled by area averaging to each level. Neither is a copy at full size: a
   `PaddedFrame` reads the caller's frame a block at a time, padding on the fly.
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
   the network's frame channels get the two warped frames instead of the raw ones. The
   base is built a band of rows at a time (`build_level_base`), so the warped average and
   the condition never exist whole at the finest level.
4. Every level is denoised patch by patch: the level is covered by overlapping patches (the
   last one flush with the edge); at *every* denoising step each patch's v-prediction is
   accumulated with its weight (uniform, or feathered linear ramps over the overlap) and
   divided by the summed weights (MultiDiffusion), and the DDIM update runs on every row as
   soon as no patch still reads it, in place (`level_sampler`). Noise is drawn once per level at full level size (on the CPU) from a generator
   seeded by (seed, pair index, tau, level) (`noise_generator`), so the result depends
   neither on the patch layout nor on how a job is split into calls (a whole clip, one pair
   per call, one level per node, a resumed file).
5. With K samples, the level's estimate is their mean (and their variance is kept as an
   uncertainty map); the padding is cropped at the end.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F

from .diffusion import to_model_space
from .errors import HiFIInputError
from .allocator import return_freed_memory
from .flow_base import estimate_flows, warp_average, warp_frames
from .level_sampler import LevelContext, sample_level
from .model import HiFIModel
from .padded_frame import PaddedFrame, as_padded
from .patches import PatchGrid, make_patch_grid, plan_patch_grid
from .progress import check_cancel

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


def resize_to_level(padded, plan: CascadePlan, level: int):
    """Area-downsample a padded full-size frame (a tensor or a `PaddedFrame`) to a level's size.

    A `PaddedFrame` comes back as a float32 tensor below full size; at full size it stays
    itself, unless it is an unpadded float32 frame, which is returned as it is (no copy)."""
    factor = 2 ** (plan.num_levels - 1 - level)
    if isinstance(padded, torch.Tensor):
        return F.avg_pool2d(padded, factor) if factor > 1 else padded
    if factor > 1:
        return padded.downsampled(factor)
    stored = padded.frame
    if stored.dtype == torch.float32 and tuple(stored.shape[-2:]) == (padded.height, padded.width):
        return stored
    return padded


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
               tau: float, warped: Optional[torch.Tensor] = None) -> torch.Tensor:
    """A level's residual base in model space: `HiFIModel.base_estimate` for one level (one
    condition mask), on whole tensors (training; the cascade builds it in bands,
    `build_level_base`). Arguments as `denoise_level`'s; neither is written to.
    """
    if model.uses_flow and warped is None:
        raise HiFIInputError("this model needs the flow-warped average for its residual base: "
                             "run it through run_cascade, which computes it")
    device = frame0.device
    tau_t = torch.tensor([float(tau)], device=device)
    reference = model.base_reference(frame0, frame2, tau_t, warped)
    reference = to_model_space(reference, inplace=reference is not warped)  # a fresh blend is ours
    cond = None if condition is None else to_model_space(condition)
    return model.base_from_reference(reference, cond, torch.tensor([condition is not None], device=device),
                                     inplace=True)


# rows of a level's residual base built at once, and the rows read beyond them: the x2
# area-down / bilinear-up operators of the condition and the detail band reach 2 rows out
BASE_BAND_ROWS = 128
BASE_BAND_HALO = 4


@dataclass
class LevelBase:
    """A level's residual base (model space) and what else a caller asked to keep ([0, 1]):
    the flow-warped average (the next level's `coarser_warped`), the condition."""

    base: torch.Tensor
    warped: Optional[torch.Tensor] = None
    condition: Optional[torch.Tensor] = None


def build_level_base(model: HiFIModel, frame0, frame2, flows: Optional[torch.Tensor], tau: float,
                     estimate: Optional[torch.Tensor] = None, coarser_warped: Optional[torch.Tensor] = None, *,
                     keep_warped: bool = False, keep_condition: bool = False,
                     band_rows: int = BASE_BAND_ROWS, base_dtype: torch.dtype = torch.float32) -> LevelBase:
    """`level_base` of `level_condition`, built a band of rows at a time, so the warped average
    and the condition never exist whole (at 8K each is 400 MB): equal to the whole-frame
    functions.

    Args:
        frame0, frame2: the level's frames, [1, 3, h, w] tensors or `PaddedFrame`s in [0, 1].
        flows: `estimate_flows`' flows padded to the plan (a flow model), or None.
        estimate: the coarser level's estimate ([0, 1], half size), None on the coarsest level.
        coarser_warped: the coarser level's warped average (a flow model with an estimate).
        keep_warped, keep_condition: also return those whole ([0, 1]).
        base_dtype: the base's storage (float16 halves it; the sampler reads it as float32).
    """
    if model.uses_flow and flows is None:
        raise HiFIInputError("this model needs the flow-warped average for its residual base: "
                             "run it through run_cascade, which computes it")
    height, width = frame0.shape[-2:]
    source0, source2 = as_padded(frame0), as_padded(frame2)
    device = source0.device
    tau_t = torch.tensor([float(tau)], device=device)
    mask = torch.tensor([estimate is not None], device=device)
    out = LevelBase(torch.empty(1, 3, height, width, device=device, dtype=base_dtype))
    if keep_warped and model.uses_flow:
        out.warped = torch.empty(1, 3, height, width, device=device)
    if keep_condition and estimate is not None:
        out.condition = torch.empty(1, 3, height, width, device=device)
    for top in range(0, height, band_rows):
        bottom = min(height, top + band_rows)
        first, stop = max(0, top - BASE_BAND_HALO), min(height, bottom + BASE_BAND_HALO)
        keep = slice(top - first, bottom - first)
        if model.uses_flow:
            reference = warp_average(source0, source2, flows, tau, rows=(first, stop))
        else:
            reference = model.base_reference(source0.block(first, stop), source2.block(first, stop), tau_t)
        if out.warped is not None:
            out.warped[..., top:bottom, :] = reference[..., keep, :]
        cond = None
        if estimate is not None:
            coarse = slice(first // 2, (stop + 1) // 2)
            cond = level_condition(estimate[..., coarse, :],
                                   None if coarser_warped is None else coarser_warped[..., coarse, :],
                                   reference if model.uses_flow else None)[..., :stop - first, :]
            if out.condition is not None:
                out.condition[..., top:bottom, :] = cond[..., keep, :]
            cond = to_model_space(cond, inplace=True)
        reference = to_model_space(reference, inplace=True)
        out.base[..., top:bottom, :] = model.base_from_reference(reference, cond, mask, inplace=True)[..., keep, :]
    return out


def run_cascade(model: HiFIModel, frame0: torch.Tensor, frame2: torch.Tensor, tau: float,
                plan: CascadePlan, ctx: LevelContext,
                start_level: int = 0, start_estimate: Optional[torch.Tensor] = None,
                stop_level: Optional[int] = None, pair: int = 0) -> Tuple[torch.Tensor, torch.Tensor]:
    """Run levels [start_level, stop_level] of the cascade for one pair and one tau.

    Args:
        model (HiFIModel): the model.
        frame0, frame2: [1, 3, H, W] full-size frames in [0, 1], float32 or half precision
            (read a patch or a band at a time, never copied or converted whole; with half
            precision frames the residual base and the estimate are float16 too).
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
        is the finest level, else padded level size. The finest estimate is a view of the
        sampler's buffer (the padding cropped), not a copy.
    """
    stop_level = plan.num_levels - 1 if stop_level is None else stop_level
    if not 0 <= start_level <= stop_level < plan.num_levels:
        raise HiFIInputError(
            f"cascade levels {start_level}..{stop_level} are outside 0..{plan.num_levels - 1}")
    if start_level > 0 and start_estimate is None:
        raise HiFIInputError(f"level {start_level} needs the estimate of level {start_level - 1}")
    # half-precision frames: the caller chose compact frames, so the base and z (the result)
    # are kept as compact (their rounding, under 2.5e-4 of the range, is a quarter of a
    # 10-bit step)
    base_dtype = torch.float16 if frame0.dtype in (torch.float16, torch.bfloat16) else torch.float32
    padded0 = PaddedFrame(frame0, plan.padded_height, plan.padded_width)
    padded2 = PaddedFrame(frame2, plan.padded_height, plan.padded_width)
    flows = warped = None
    if model.uses_flow:  # once per pair, at most about 1080p: cheap at any frame size
        flows = pad_flows_to_plan(estimate_flows(frame0, frame2, tau, base=model.motion_base), plan)
        if start_level > 0:
            warped = level_flow_average(padded0, padded2, flows, tau, plan, start_level - 1)
    estimate, variance = start_estimate, None
    for level in range(start_level, stop_level + 1):
        check_cancel(ctx.cancel)
        return_freed_memory()  # the coarser level's sampling leftovers, before this level's base
        f0, f2 = resize_to_level(padded0, plan, level), resize_to_level(padded2, plan, level)
        if level > 0 and tuple(s * 2 for s in estimate.shape[-2:]) != tuple(f0.shape[-2:]):
            raise HiFIInputError(
                f"the estimate passed to level {level} is {tuple(estimate.shape[-2:])}, expected "
                f"{tuple(s // 2 for s in f0.shape[-2:])}: chain the cascade levels in order with "
                "the same frames and settings")
        # no finer level needs the finest warped average; a network that sees the base does
        # not need the condition (at 8K each would be 400 MB more while the level samples)
        built = build_level_base(model, f0, f2, flows, tau, estimate if level > 0 else None, warped,
                                 keep_warped=level < stop_level, keep_condition=not model.network_sees_base,
                                 base_dtype=base_dtype)
        estimate, warped = None, built.warped
        net0, net2 = f0, f2
        if model.sees_warped_frames and flows is not None:  # whole warped frames: not a shipped model
            net0, net2 = warp_frames(as_padded(f0).block(0, f0.shape[-2]), as_padded(f2).block(0, f2.shape[-2]), flows)
        del f0, f2
        if level == stop_level:  # the flows' last reader has run (at 1080p 11 channels, 92 MB)
            flows = None
        return_freed_memory()  # the base's bands and the last level's leftovers, before the patches
        estimate, variance = sample_level(model, net0, net2, built.base, tau, plan.grids[level], level,
                                          plan.num_levels, ctx, condition=built.condition,
                                          has_condition=level > 0, pair=pair)
        del net0, net2, built
    if stop_level == plan.num_levels - 1:
        return crop_to_plan(estimate, plan), crop_to_plan(variance, plan)
    return estimate, variance
