"""HiFI Base Sample and HiFI Patch-Cascade Upsample: the cascade as explicit graph nodes.

Base Sample decides the output timeline (multiplier, target fps or an explicit tau list),
then denoises the coarsest pyramid level of every in-between with a zero condition.
Patch-Cascade Upsample continues from there: one level per node (chain several), or every
remaining level in one node. Both pass a ``HIFI_INTERMEDIATE`` (see handles.py); frames come
in as ComfyUI IMAGE [B, H, W, C] and previews go out the same way.
"""

from __future__ import annotations

from typing import Sequence, Tuple

import torch
import torch.nn.functional as F

from . import comfy_bridge, engine, widgets
from .handles import INTERMEDIATE_TYPE, MODEL_TYPE, HiFIIntermediate, frames_key
from .images import split_image, variance_to_image
from .inputs import build_schedule, pairs_and_taus

CATEGORY = "HiFI"
UPSAMPLE_MODES = ("to full resolution", "next level")


def preview(estimates: Sequence[Sequence[torch.Tensor]], frame_size: Tuple[int, int]) -> torch.Tensor:
    """All estimates as one IMAGE batch, scaled to the frame size (nearest, to show the level)."""
    flat = [t for row in estimates for t in row]
    if not flat:
        return torch.zeros(1, frame_size[0], frame_size[1], 3)
    batch = torch.cat(flat)
    if tuple(batch.shape[-2:]) != tuple(frame_size):
        scale = frame_size[0] / batch.shape[-2]
        up = F.interpolate(batch, scale_factor=scale, mode="nearest") if scale > 1 else batch
        batch = up[..., :frame_size[0], :frame_size[1]]
        if tuple(batch.shape[-2:]) != tuple(frame_size):  # a padded coarse level: fit exactly
            batch = F.interpolate(batch, size=frame_size, mode="nearest")
    return batch.permute(0, 2, 3, 1).contiguous().clamp(0, 1)


class HiFIBaseSample:
    """Coarsest cascade level of every in-between the chosen timeline needs."""

    CATEGORY = CATEGORY
    RETURN_TYPES = (INTERMEDIATE_TYPE, "IMAGE")
    RETURN_NAMES = ("intermediate", "preview")
    OUTPUT_TOOLTIPS = ("In-betweens at the coarsest level with their pairs, taus and timeline: "
                       "connect to Patch-Cascade Upsample.",
                       "The coarse in-betweens, scaled up to the frame size for a look.")
    FUNCTION = "sample"
    DESCRIPTION = ("Chooses the output timeline (multiplier, target fps or a tau list) and "
                   "denoises the coarsest pyramid level of every in-between frame.")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "hifi_model": (MODEL_TYPE, {"tooltip": "The model from HiFI Load Model."}),
                "frames": ("IMAGE", {"tooltip": "The clip, in order (at least two frames)."}),
                "levels": widgets.levels(),
                "multiplier": widgets.multiplier(),
                "target_fps": widgets.target_fps(),
                "steps": widgets.steps(1, "at the base level"),
                "samples": widgets.samples(),
                "seed": widgets.seed(),
                "eta": widgets.eta(),
                "patch_width": widgets.patch_side("width", 512),
                "patch_height": widgets.patch_side("height", 512),
                "overlap": widgets.overlap(),
            },
            "optional": {
                "fps": widgets.source_fps(),
                "taus": ("STRING", {"default": "", "tooltip": (
                    "Optional comma-separated in-between times for every pair, e.g. '0.5' or "
                    "'0.25, 0.5, 0.75'. Overrides multiplier and target_fps when not empty.")}),
            },
        }

    def sample(self, hifi_model, frames, levels, multiplier, target_fps, steps, samples, seed,
               eta, patch_width, patch_height, overlap, fps=None, taus=""):
        node = "HiFI Base Sample"
        image = split_image(frames, "frames", node, min_frames=2)
        count = image.rgb.shape[0]
        schedule, mult, target = build_schedule(count, multiplier=multiplier, target_fps=target_fps,
                                                fps=fps, taus_text=taus or "", node=node)
        pairs, pair_taus = pairs_and_taus(schedule)
        settings = engine.make_settings(hifi_model, levels=levels, patch_width=patch_width,
                                        patch_height=patch_height, overlap=overlap, steps=steps,
                                        samples=samples, seed=seed, eta=eta)
        frame_size = tuple(image.rgb.shape[-2:])
        num_levels = engine.num_levels(hifi_model, frame_size, settings)
        estimates, variances, _ = engine.run_levels(
            hifi_model, image.rgb, pairs, pair_taus, settings, start_level=0, stop_level=0,
            progress=comfy_bridge.ComfyProgress())
        result = HiFIIntermediate(
            frame_count=count, frame_size=frame_size, frames_key=frames_key(image.rgb), pairs=pairs,
            taus=pair_taus, level=0, num_levels=num_levels, estimates=estimates,
            variances=variances, schedule=tuple(schedule), source_fps=fps, target_fps=target,
            multiplier=mult, model_name=hifi_model.name)
        if num_levels == 1:  # level 0 is already the full size: crop the padding now
            result.estimates = [[e[..., :frame_size[0], :frame_size[1]] for e in row] for row in estimates]
            result.variances = [[v[..., :frame_size[0], :frame_size[1]] for v in row] for row in variances]
        return (result, preview(result.estimates, frame_size))


class HiFIPatchCascadeUpsample:
    """The next cascade level(s): overlapping patches, merged at every step."""

    CATEGORY = CATEGORY
    RETURN_TYPES = (INTERMEDIATE_TYPE, "IMAGE", "IMAGE")
    RETURN_NAMES = ("intermediate", "preview", "uncertainty")
    OUTPUT_TOOLTIPS = ("In-betweens at the new level (at full resolution: connect to HiFI Merge).",
                       "The in-betweens at the new level, scaled to the frame size.",
                       "Per-pixel spread across samples (white = unsure); needs samples > 1.")
    FUNCTION = "upsample"
    DESCRIPTION = ("Refines in-betweens to the next pyramid level (or all the way to full "
                   "resolution) with overlapping patches merged at every denoising step; memory "
                   "depends on the patch size, not the frame size.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "hifi_model": (MODEL_TYPE, {"tooltip": "The same model as the Base Sample's."}),
            "frames": ("IMAGE", {"tooltip": "The same clip that went into HiFI Base Sample."}),
            "intermediate": (INTERMEDIATE_TYPE, {"tooltip": (
                "From HiFI Base Sample or a previous Patch-Cascade Upsample.")}),
            "mode": (list(UPSAMPLE_MODES), {"default": UPSAMPLE_MODES[0], "tooltip": (
                "to full resolution: run every remaining level here. next level: one level per "
                "node, so you can chain nodes with different settings per level.")}),
            "patch_width": widgets.patch_side("width"),
            "patch_height": widgets.patch_side("height"),
            "overlap": widgets.overlap(),
            "feather": widgets.feather(),
            "patch_batch": widgets.patch_batch(),
            "memory_budget_mb": widgets.memory_budget_mb(),
            "steps": widgets.steps(1, "per cascade level"),
            "samples": widgets.samples(),
            "seed": widgets.seed(),
            "eta": widgets.eta(),
        }}

    def upsample(self, hifi_model, frames, intermediate, mode, patch_width, patch_height, overlap,
                 feather, patch_batch, memory_budget_mb, steps, samples, seed, eta):
        node = "HiFI Patch-Cascade Upsample"
        if not isinstance(intermediate, HiFIIntermediate):
            raise ValueError(f"{node}: input 'intermediate' must come from HiFI Base Sample or "
                             "another Patch-Cascade Upsample")
        if mode not in UPSAMPLE_MODES:
            raise ValueError(f"{node}: input 'mode' {mode!r} is unknown; choose {UPSAMPLE_MODES}")
        image = split_image(frames, "frames", node, min_frames=2)
        if frames_key(image.rgb) != intermediate.frames_key:
            raise ValueError(f"{node}: input 'frames' is not the clip the intermediate was made from "
                             f"({intermediate.frame_count} frames of {intermediate.frame_size[1]}x"
                             f"{intermediate.frame_size[0]}); connect the same IMAGE as Base Sample's")
        if intermediate.is_full_resolution:
            raise ValueError(f"{node}: input 'intermediate' is already at full resolution (level "
                             f"{intermediate.level + 1} of {intermediate.num_levels}); connect it "
                             "to HiFI Merge instead")
        settings = engine.make_settings(hifi_model, levels=intermediate.num_levels,
                                        patch_width=patch_width, patch_height=patch_height,
                                        overlap=overlap, steps=steps, samples=samples, seed=seed,
                                        eta=eta, feather=feather, patch_batch=patch_batch,
                                        memory_budget_mb=memory_budget_mb)
        start = intermediate.level + 1
        stop = None if mode == UPSAMPLE_MODES[0] else start
        estimates, variances, last = engine.run_levels(
            hifi_model, image.rgb, intermediate.pairs, intermediate.taus, settings,
            start_level=start, stop_level=stop, previous=intermediate.estimates,
            progress=comfy_bridge.ComfyProgress())
        result = HiFIIntermediate(
            frame_count=intermediate.frame_count, frame_size=intermediate.frame_size,
            frames_key=intermediate.frames_key, pairs=intermediate.pairs, taus=intermediate.taus,
            level=last, num_levels=intermediate.num_levels, estimates=estimates,
            variances=variances, schedule=intermediate.schedule,
            source_fps=intermediate.source_fps, target_fps=intermediate.target_fps,
            multiplier=intermediate.multiplier, model_name=hifi_model.name)
        uncertainty = preview(variances, intermediate.frame_size).permute(0, 3, 1, 2)
        height, width = intermediate.frame_size
        # The frame size lets the web readout show this clip's real patch grid after a run.
        return {"ui": {"hifi_frame": [{"width": width, "height": height}]},
                "result": (result, preview(estimates, intermediate.frame_size),
                           variance_to_image(uncertainty))}
