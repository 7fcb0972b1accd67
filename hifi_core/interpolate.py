"""High-level interpolation API: frames in, in-between frames out.

Frames are float tensors in [0, 1] (float32, or half precision, read as it is), [3, H, W] or
[B, 3, H, W] (B pairs); results come back on the CPU in the same layout. `interpolate` runs
the patch cascade for every pair and tau; `retime_schedule` / `retime_sequence` turn a clip
into a longer one (multiplier or target fps) with the originals kept and in-betweens at the
exact times.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import List, Optional, Sequence, Tuple, Union

import torch

from .cascade import CascadePlan, LevelContext, plan_cascade, run_cascade
from .errors import HiFIInputError, NonFiniteOutputError
from .config import ModelConfig
from .flow_base import flow_estimation_downscale
from .patches import MAX_AREA_FACTOR
from .memory import (FLOW_FIELD_CHANNELS, AdaptiveBatchSize, estimate_patch_bytes, flow_field_bytes,
                     frame_buffer_bytes, motion_base_bytes, pair_io_bytes, plan_patch_batch, sampler_window_rows)
from .model import HiFIModel
from .progress import CancelCheck, ProgressCallback, ProgressCounter
from .runtime import (PRECISION_CHOICES, PRECISIONS, CompiledOrEager, check_device, empty_device_cache,
                      prepare_backend, resolve_channels_last, resolve_precision)
from .timeline import retime_schedule
from .validation import check_number, check_pair, check_sequence, check_taus, finite_range

Number = Union[int, float, Fraction]


@dataclass
class CascadeSettings:
    """Sampling and patching knobs (the CLI flags and node widgets map onto these).

    Attributes:
        levels: pyramid levels (1 = no cascade), or "auto" (coarsest level about one patch).
        patch_size: (height, width) of the patches every level is denoised in; multiples of
            the model's alignment.
        overlap: minimum overlap of neighbouring patches in pixels.
        steps: DDIM steps per level (the paper uses 8; the cascade levels need 1-2).
        samples: samples averaged per level (paper: 4); their variance is the uncertainty.
        eta: DDIM stochasticity (0 = deterministic).
        seed: seed of all noise; the same seed gives bit-identical results on the CPU.
        feather: weight patches with linear ramps over the overlap instead of uniformly.
        patch_batch: patches per network call; None = planned from memory_budget.
        memory_budget: bytes for the network's working set; None = 80% of free memory.
        device: where to run ("cpu", "cuda", "cuda:1"); None = where the model is.
        precision: "auto" (default: bf16, else fp16, on CUDA; fp32 on a CPU), "fp32", "fp16",
            "bf16" (autocast).
        channels_last: channels_last memory format; None (default) = on CUDA and CPUs.
        compile: run the U-Net through torch.compile (falls back, with one warning, where no
            compiler works); pays on GPUs for long jobs, costs a minute of compiling first.
        adaptive_patches: lay each level out with the least denoised area, patches up to
            `patches.MAX_AREA_FACTOR` nominal patches in area as the patch batch allows (the
            batch then counts nominal patches' worth); False = fixed `patch_size` patches.
    """

    # 2 levels x 1 step: the bundled checkpoint's best setting on its held-out validation
    # (docs/training/README.md); more levels or steps cost time and, for now, quality.
    levels: Union[int, str] = 2
    patch_size: Tuple[int, int] = (256, 256)
    overlap: int = 32
    steps: int = 1
    samples: int = 1
    eta: float = 0.0
    seed: int = 0
    feather: bool = False
    patch_batch: Optional[int] = None
    memory_budget: Optional[int] = None
    device: Optional[Union[str, torch.device]] = None
    precision: str = "auto"
    channels_last: Optional[bool] = None
    compile: bool = False
    adaptive_patches: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.patch_size, (str, bytes)) or not hasattr(self.patch_size, "__len__") \
                or len(self.patch_size) != 2:
            raise HiFIInputError(f"patch_size={self.patch_size!r} must be (height, width)")
        self.patch_size = tuple(int(check_number(s, "patch_size", 1, 65536, integer=True)) for s in self.patch_size)
        self.steps = int(check_number(self.steps, "steps", 1, 1000, integer=True))
        self.samples = int(check_number(self.samples, "samples", 1, 1000, integer=True))
        self.overlap = int(check_number(self.overlap, "overlap", 0, 65536, integer=True))
        self.seed = int(check_number(self.seed, "seed", 0, 2 ** 63 - 1, integer=True))
        if self.levels != "auto":
            self.levels = int(check_number(self.levels, "levels", 1, 16, integer=True))
        # above 1 DDIM adds more noise than it removes (pure noise at eta = 1e6)
        self.eta = check_number(self.eta, "eta (0 = deterministic, 1 = ancestral)", 0.0, 1.0)
        if self.memory_budget is not None:
            self.memory_budget = int(check_number(self.memory_budget, "memory_budget", 1, 2 ** 60))
        if self.device is not None:
            self.device = check_device(self.device)
        if self.precision not in PRECISION_CHOICES:
            raise HiFIInputError(f"precision={self.precision!r} is unknown; use one of {PRECISION_CHOICES}")
        if self.patch_batch is not None:
            self.patch_batch = int(check_number(self.patch_batch, "patch_batch (or None)", 1, 4096, integer=True))

    def resolved_precision(self, device: torch.device) -> str:
        return resolve_precision(self.precision, device)


def _prepare(model: HiFIModel, settings: CascadeSettings) -> torch.device:
    """Put the model where the settings say and switch on what the device wants."""
    if settings.device is not None:
        model.to(settings.device)
    device = next(model.parameters()).device
    prepare_backend(device)
    if resolve_channels_last(settings.channels_last, device):
        model.to(memory_format=torch.channels_last)
    if settings.compile and model.compiled_unet is None:
        model.compiled_unet = CompiledOrEager(model.unet)
    return device


def level_context(model: HiFIModel, plan: CascadePlan, settings: CascadeSettings,
                   device: torch.device, counter: ProgressCounter,
                   cancel: Optional[CancelCheck]) -> LevelContext:
    """Everything `run_cascade` needs besides frames: planned patch batch, noise, hooks.

    One context serves a whole job (its batch size keeps any out-of-memory reduction); hosts
    that run the cascade level by level (the ComfyUI nodes) build it once with this function.
    """
    job = job_plan(model.config, plan, settings, device)
    precision, batch = job.precision, job.patch_batch
    return LevelContext(
        steps=settings.steps, samples=settings.samples, eta=settings.eta, overlap=settings.overlap,
        feather=settings.feather, seed=settings.seed,
        batcher=AdaptiveBatchSize(batch, on_out_of_memory=lambda: empty_device_cache(device)),
        precision=precision, channels_last=resolve_channels_last(settings.channels_last, device),
        counter=counter, cancel=cancel)


@dataclass(frozen=True)
class JobPlan:
    """How a job of frames this size runs under these settings, and the memory it plans with:
    what `level_context` uses and what the ComfyUI readout shows (one planner for both).

    Memory, in bytes: `patch_bytes` per patch and `working_bytes` for the patch batch (the
    U-Net's working set), `frame_buffer_bytes` (the cascade's frame-sized buffers, the
    output among them, and the flows it holds), `io_bytes` (the pair's two frames), `motion_bytes` (the motion base's
    peak while it estimates the pair's flows, before the cascade's buffers exist).
    `peak_bytes` is what the job adds to the process at its peak.
    `cascade` is the `CascadePlan`, `precision` "fp32", "fp16" or "bf16" ("auto" resolved for
    the device), `patch_batch` the patches per network call.
    """

    cascade: CascadePlan
    precision: str        # "fp32", "fp16" or "bf16" (precision "auto" resolved for the device)
    patch_batch: int      # patches per network call
    patch_bytes: int
    working_bytes: int
    frame_buffer_bytes: int
    io_bytes: int = 0
    motion_bytes: int = 0

    @property
    def peak_bytes(self) -> int:
        return self.io_bytes + max(self.motion_bytes, self.frame_buffer_bytes + self.working_bytes)


def plan_job(config: ModelConfig, height: int, width: int, settings: CascadeSettings,
             device: torch.device, *, frame_bytes: int = 4) -> JobPlan:
    """The plan of a job from a model's config (no weights needed): cascade levels and patch
    grids, precision on `device`, the patch batch from `settings` (its `patch_batch`, else the
    memory budget under `runtime`'s cap) and the memory (`JobPlan`).

    Args:
        config (ModelConfig): the model's config (`read_checkpoint_config` reads it from a file).
        height, width (int): the frame size.
        settings (CascadeSettings): levels, patch size, overlap, samples, precision, budget.
        device (torch.device): where the job runs (precision "auto" and the batch cap depend on it).
        frame_bytes (int, default 4): bytes per value of the input frames (2 for half precision).
    """
    cascade = plan_cascade(height, width, levels=settings.levels, patch_size=settings.patch_size,
                           overlap=settings.overlap, alignment=config.unet.alignment,
                           max_patch_pixels=max_patch_pixels(config, settings, device))
    return job_plan(config, cascade, settings, device, frame_bytes=frame_bytes)


def _nominal_batch(config: ModelConfig, settings: CascadeSettings, device: torch.device, dtype) -> int:
    """Nominal `patch_size` patches the budget (or `settings.patch_batch`) allows at once."""
    height, width = settings.patch_size
    return settings.patch_batch or plan_patch_batch(config.unet, height, width, budget_bytes=settings.memory_budget,
                                                    device=device, dtype=dtype)


def max_patch_pixels(config: ModelConfig, settings: CascadeSettings, device: torch.device) -> Optional[int]:
    """The largest patch area an adaptive layout may use: the nominal patches the batch holds,
    at most `MAX_AREA_FACTOR` of them (None for the fixed layout)."""
    if not settings.adaptive_patches:
        return None
    dtype = PRECISIONS[resolve_precision(settings.precision, device)]
    height, width = settings.patch_size
    return min(_nominal_batch(config, settings, device, dtype), MAX_AREA_FACTOR) * height * width


def job_plan(config: ModelConfig, cascade: CascadePlan, settings: CascadeSettings,
             device: torch.device, *, frame_bytes: int = 4) -> JobPlan:
    """`plan_job` for a cascade plan already made (what `level_context` is given)."""
    precision = resolve_precision(settings.precision, device)
    largest = max(cascade.grids, key=lambda g: g.patch_height * g.patch_width)
    dtype = PRECISIONS[precision]
    per_patch = estimate_patch_bytes(config.unet, largest.patch_height, largest.patch_width, dtype)
    if settings.adaptive_patches:  # as many large patches as the nominal ones hold in area
        nominal_area = settings.patch_size[0] * settings.patch_size[1]
        largest_area = largest.patch_height * largest.patch_width
        batch = max(1, _nominal_batch(config, settings, device, dtype) * nominal_area // largest_area)
    else:
        batch = settings.patch_batch or plan_patch_batch(config.unet, largest.patch_height, largest.patch_width,
                                                         budget_bytes=settings.memory_budget, device=device,
                                                         dtype=dtype)
    def level_buffers(level: int) -> int:
        grid = cascade.grids[level]
        return frame_buffer_bytes(grid.height, grid.width, settings.samples, config.diffusion,
                                  window_rows=sampler_window_rows(grid, batch), eta=settings.eta,
                                  base_bytes=min(frame_bytes, 4))

    io = pair_io_bytes(cascade.height, cascade.width, frame_bytes)
    # flows are estimated once per pair on the unpadded frames, area-reduced to FLOW_MAX_PIXELS
    # (then a float32 copy of both; unreduced frames are read as they are)
    base = config.diffusion.residual_base
    reduce = flow_estimation_downscale(cascade.height, cascade.width)
    flow_h, flow_w = cascade.height // reduce, cascade.width // reduce
    reduced = 2 * 3 * flow_h * flow_w * 4 if base in FLOW_FIELD_CHANNELS and reduce > 1 else 0
    motion = motion_base_bytes(flow_h, flow_w, base) + reduced
    # the flows are held while the coarser levels sample (with the warped average the next
    # level reads), and let go before the finest one does
    frames = level_buffers(-1)
    flows = flow_field_bytes(flow_h, flow_w, base)
    if flows and cascade.num_levels > 1:
        coarser = cascade.grids[-2]
        frames = max(frames, level_buffers(-2) + flows + 3 * coarser.height * coarser.width * 4)
    else:
        frames += flows
    return JobPlan(cascade, precision, batch, per_patch, per_patch * batch, frames, io, motion)


class Interpolator:
    """A model and its settings, ready to make in-betweens (in the spirit of FILM's
    `eval/interpolator.py`): it owns the device and precision, plans any frame size (`plan`,
    the same `JobPlan` the ComfyUI readout shows) and seeds every pair from (seed, pair
    index), so a clip split into any calls gives the same frames.

    Example:
        hifi = Interpolator(load_model("hifi-lean.safetensors"), CascadeSettings(seed=1))
        hifi.plan(1080, 1920).patch_batch
        middle = hifi(frame0[None], frame2[None], [0.5], pair=12)[0]   # [3, H, W]
    """

    def __init__(self, model: HiFIModel, settings: Optional[CascadeSettings] = None, *,
                 progress: Optional[ProgressCallback] = None, cancel: Optional[CancelCheck] = None):
        """
        Args:
            model (HiFIModel): the model (moved to `settings.device` when that is set).
            settings (CascadeSettings or None): None = `CascadeSettings()`.
            progress (callable or None): called with a `ProgressEvent` after every patch batch.
            cancel (callable or None): polled between patch batches; True (or raising) stops.
        """
        self.model, self.settings = model, settings or CascadeSettings()
        self.progress, self.cancel = progress, cancel
        self.device = _prepare(model, self.settings)

    def plan(self, height: int, width: int) -> JobPlan:
        """How frames of this size will run: cascade, precision, patch batch, memory."""
        return plan_job(self.model.config, height, width, self.settings, self.device)

    def __call__(self, frame0: torch.Tensor, frame2: torch.Tensor, taus: Sequence[float],
                 pair: int = 0) -> torch.Tensor:
        """In-betweens [T, 3, H, W] of one pair ([1, 3, H, W] frames) at `taus`; `pair`: its
        index in the clip (its noise's)."""
        out = interpolate(self.model, frame0, frame2, tau=[float(t) for t in taus], settings=self.settings,
                          progress=self.progress, cancel=self.cancel, pair_index=pair)
        return out[0]


    def run_levels(self, clip: torch.Tensor, pairs: Sequence[int], taus: Sequence[Sequence[float]], *,
                   start_level: int = 0, stop_level: Optional[int] = None,
                   previous: Optional[Sequence[Sequence[torch.Tensor]]] = None
                   ) -> Tuple[List[List[Tuple[torch.Tensor, torch.Tensor]]], int]:
        """Cascade levels start_level..stop_level for chosen pairs of a clip, as a host that
        splits the cascade across steps runs it (the ComfyUI nodes: base level, then upsampling).

        Args:
            clip: [N, 3, H, W] frames in [0, 1] (on the CPU; each pair moves to the device
                only while it is worked on).
            pairs: indices i of the pairs (i, i + 1) to run (also their noise's pair index).
            taus: per pair, its times in (0, 1).
            start_level, stop_level: the levels to run (stop_level None or past the plan: the
                last, full-resolution level).
            previous: per pair and tau, the estimate at start_level - 1 (when start_level > 0).

        Returns:
            (per pair, per tau: (estimate, variance) on the CPU; the last level run).
        """
        plan = plan_for(self.model, clip.shape[-2], clip.shape[-1], self.settings)
        last = plan.num_levels - 1 if stop_level is None else min(stop_level, plan.num_levels - 1)
        if start_level > last:
            raise HiFIInputError(f"the cascade has {plan.num_levels} levels; level {start_level} "
                                 "does not exist (the intermediate is already at full resolution)")
        units = sum(plan.patches_per_level()[start_level:last + 1]) * self.settings.steps * self.settings.samples
        counter = ProgressCounter(units * sum(len(t) for t in taus), self.progress)
        ctx = level_context(self.model, plan, self.settings, self.device, counter, self.cancel)
        results = cascade_pairs(self.model, [clip[i:i + 1] for i in pairs], [clip[i + 1:i + 2] for i in pairs],
                                taus, plan, ctx, self.device, start_level=start_level, stop_level=last,
                                previous=previous, pair_indices=pairs)
        return results, last


def plan_for(model: HiFIModel, height: int, width: int, settings: CascadeSettings) -> CascadePlan:
    """The cascade plan (levels, padding, patch grids) of `model` for a `height` x `width`
    frame under these settings, on the model's device (see `plan_job`)."""
    device = settings.device or next(model.parameters()).device
    return plan_job(model.config, height, width, settings, torch.device(device)).cascade


def units_per_pair(plan: CascadePlan, settings: CascadeSettings) -> int:
    """Patch evaluations for one pair and one tau (what a progress bar counts)."""
    return sum(plan.patches_per_level()) * settings.steps * settings.samples


def check_finite_estimate(estimate: torch.Tensor, ctx: LevelContext, pair: int, tau: float) -> None:
    """Refuse NaN or inf in a cascade result before anyone writes it (it would be black)."""
    if finite_range(estimate) is not None:
        return
    raise NonFiniteOutputError(
        f"the in-between of pair {pair} at tau {tau:g} holds NaN or inf values, so nothing was "
        f"written. Likely causes: half precision overflowing (precision {ctx.precision}: use fp32 "
        "or bf16), a DDIM eta outside [0, 1], or damaged checkpoint weights (reload the file)")


def cascade_pairs(model: HiFIModel, frames0: Sequence[torch.Tensor], frames2: Sequence[torch.Tensor],
                  taus_per_pair: Sequence[Sequence[float]], plan: CascadePlan, ctx: LevelContext,
                  device: torch.device, *, start_level: int = 0, stop_level: Optional[int] = None,
                  previous: Optional[Sequence[Sequence[torch.Tensor]]] = None,
                  pair_indices: Optional[Sequence[int]] = None
                  ) -> List[List[Tuple[torch.Tensor, torch.Tensor]]]:
    """Cascade levels [start_level, stop_level] for every pair and each of its taus.

    Args:
        frames0, frames2: per pair, [1, 3, H, W] frames (views into a clip are fine: each
            pair moves to `device` only while it is worked on).
        previous: per pair and tau, the estimate at level start_level - 1 (start_level > 0).
        pair_indices: each pair's index in its clip (default 0, 1, ...): with the seed, tau
            and level it fixes the pair's noise, so any split of a clip into calls agrees.

    Returns:
        Per pair, per tau: (estimate, variance) on the CPU at stop_level's size.
    """
    was_training = model.training
    model.eval()
    try:
        results = []
        pair_indices = range(len(frames0)) if pair_indices is None else pair_indices
        for row, (f0, f2, taus, pair) in enumerate(zip(frames0, frames2, taus_per_pair, pair_indices)):
            f0, f2 = f0.to(device), f2.to(device)
            row_results = []
            for column, tau in enumerate(taus):
                start = None if previous is None else previous[row][column].to(device)
                mean, var = run_cascade(model, f0, f2, float(tau), plan, ctx, start_level=start_level,
                                        start_estimate=start, stop_level=stop_level, pair=pair)
                check_finite_estimate(mean, ctx, row, float(tau))
                row_results.append((mean.cpu(), var.cpu()))
            results.append(row_results)
        return results
    finally:
        model.train(was_training)


def interpolate(model: HiFIModel, frame0: torch.Tensor, frame2: torch.Tensor,
                tau: Union[float, Sequence[float]] = 0.5, *, settings: Optional[CascadeSettings] = None,
                progress: Optional[ProgressCallback] = None, cancel: Optional[CancelCheck] = None,
                return_variance: bool = False, pair_index: int = 0):
    """In-between frames for one pair or a batch of pairs.

    Args:
        model: a `HiFIModel` (e.g. from `load_model`).
        frame0, frame2: [3, H, W] or [B, 3, H, W] float32 or half precision in [0, 1], same shape.
        tau: one time in (0, 1), or a list of times (all computed for every pair).
        settings: cascade settings (defaults: `CascadeSettings()`).
        progress: called with a `ProgressEvent` after every patch batch.
        cancel: checked between patch batches and steps; True (or raising) stops the job.
        return_variance: also return the per-pixel variance across samples.
        pair_index: the (first) pair's index in its clip; batch rows are pair_index,
            pair_index + 1, ... With the seed, tau and level it fixes each pair's noise
            (`level_sampler.noise_generator`): the same pair gives the same frame in any call.

    Returns:
        A tensor on the CPU, float32 (float16 for half-precision frames with one sample):
        [B, 3, H, W] for a single tau (no batch dim if the inputs had
        none), or [B, T, 3, H, W] for a list; with return_variance, a (frames, variance) tuple.

    Raises:
        HiFIInputError: bad frames or settings. Cancelled: the cancel check fired.
    """
    settings = settings or CascadeSettings()
    unbatched = frame0.dim() == 3 if isinstance(frame0, torch.Tensor) else False
    frame0, frame2 = check_pair(frame0, frame2)
    single_tau = not isinstance(tau, (list, tuple)) and getattr(tau, "ndim", 0) == 0
    taus = check_taus(tau)
    device = _prepare(model, settings)
    plan = plan_for(model, frame0.shape[-2], frame0.shape[-1], settings)
    counter = ProgressCounter(units_per_pair(plan, settings) * len(taus) * frame0.shape[0], progress)
    ctx = level_context(model, plan, settings, device, counter, cancel)
    pair_index = int(check_number(pair_index, "pair_index", 0, 2 ** 62, integer=True))
    results = cascade_pairs(model, frame0.split(1), frame2.split(1), [taus] * frame0.shape[0], plan, ctx, device,
                            pair_indices=range(pair_index, pair_index + frame0.shape[0]))
    def shaped(rows: torch.Tensor) -> torch.Tensor:  # [B, T, 3, H, W] -> what the caller passed
        if single_tau:
            rows = rows[:, 0]
            return rows[0] if unbatched else rows
        return rows

    frames = shaped(_gather(results, 0))
    if not return_variance:  # not gathered: with one sample it is a zero view, not a buffer
        return frames
    return frames, shaped(_gather(results, 1))


def _gather(results: List[List[Tuple[torch.Tensor, torch.Tensor]]], part: int) -> torch.Tensor:
    """[B, T, 3, H, W] of one part (0 = estimates, 1 = variances) of `cascade_pairs`' results;
    one pair at one tau is returned as a view, not copied (at 8K a copy is 400 MB at the peak)."""
    if len(results) == 1 and len(results[0]) == 1:
        return results[0][0][part][None]
    return torch.stack([torch.cat([r[part] for r in row]) for row in results])


def retime_sequence(model: HiFIModel, frames: torch.Tensor, *, multiplier: Optional[int] = None,
                    source_fps: Optional[Number] = None, target_fps: Optional[Number] = None,
                    settings: Optional[CascadeSettings] = None,
                    progress: Optional[ProgressCallback] = None,
                    cancel: Optional[CancelCheck] = None, end: Optional[str] = None) -> torch.Tensor:
    """The retimed sequence [M, 3, H, W]: originals kept, in-betweens inserted at their tau,
    on `hifi_core.timeline`'s schedule. Holds the whole clip in memory; for long videos use
    `hifi_core.retime` (streaming, resumable).

    Args:
        model (HiFIModel): the model.
        frames (torch.Tensor): the clip, [N, 3, H, W] float in [0, 1], N >= 2.
        multiplier (int or None): N x the frames; or give `target_fps` with `source_fps`.
        source_fps, target_fps (number or None): retime from one frame rate to another
            (NTSC rates as exact fractions, e.g. 24000/1001).
        settings (CascadeSettings or None): None = `CascadeSettings()`.
        progress (callable or None): called with a `ProgressEvent` after every patch batch.
        cancel (callable or None): polled between patch batches; True (or raising) stops.
        end (str or None): "duration" (hold the last frame to the source's duration) or
            "last_frame" (stop on it); None = `retime_schedule`'s default: a multiplier ends
            on the last frame, a frame rate keeps the duration.
    """
    frames = check_sequence(frames)
    schedule = retime_schedule(frames.shape[0], multiplier=multiplier, source_fps=source_fps,
                               target_fps=target_fps, end=end)
    pairs = sorted({o.index for o in schedule if not o.is_original})
    taus = [[o.tau for o in schedule if o.index == i and not o.is_original] for i in pairs]
    results, _ = Interpolator(model, settings, progress=progress, cancel=cancel).run_levels(frames, pairs, taus)
    made = {(i, t): m[0] for i, row_taus, row in zip(pairs, taus, results)
            for t, (m, _v) in zip(row_taus, row)}
    return torch.stack([frames[o.index] if o.is_original else made[(o.index, o.tau)]
                        for o in schedule])
