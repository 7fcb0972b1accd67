"""HiFI Merge (originals + full-resolution in-betweens -> retimed clip) and HiFI Interpolate.

Both assemble the output timeline the same way (`assemble`): for every (source index, tau)
of the schedule, tau 0 is the original frame and tau > 0 is the in-between of pair
(index, index + 1) at tau, except where
- a scene cut lies between the pair: the in-between repeats the nearer original ("repeat")
  or cross-fades the two ("blend"), so one shot is never morphed into the next;
- duplicates are dropped: a source frame that repeats its predecessor is removed together
  with the (static) in-betweens leading to it; the output rate stays, so it gets shorter.
Frames are ComfyUI IMAGE [B, H, W, C] at the boundary; alpha and grey are kept (images.py).
"""

from __future__ import annotations

import time

from typing import Callable, Dict, List, Optional, Sequence, Set, Tuple

import torch

from ..hifi_core.scenes import (DEFAULT_SCENE_THRESHOLD, DuplicateDetector, SceneCutDetector,
                                SceneSettings)
from . import comfy_bridge, engine, pace, widgets
from .inputs import build_schedule, pairs_and_taus
from .handles import INTERMEDIATE_TYPE, MODEL_TYPE, HiFIIntermediate, frames_key
from .images import SplitImage, blend_alpha, join_image, split_image, variance_to_image

CATEGORY = "HiFI"


def scene_cut_pairs(rgb: torch.Tensor, threshold: float, node: str) -> Set[int]:
    """Indices i such that a scene cut lies between source frames i and i + 1."""
    try:
        detector = SceneCutDetector(SceneSettings(threshold=float(threshold)))
    except ValueError as error:
        raise ValueError(f"{node}: input 'scene_threshold' {error}") from None
    return {i - 1 for i in range(rgb.shape[0]) if detector.update(rgb[i]) and i > 0}


def duplicate_frames(rgb: torch.Tensor) -> Set[int]:
    """Indices of source frames that repeat the last kept frame (never frame 0)."""
    detector = DuplicateDetector()
    return {i for i in range(rgb.shape[0]) if detector.update(rgb[i])}


def output_fps(source_fps: Optional[float], multiplier: Optional[int], target_fps: Optional[float],
               per_interval: int) -> float:
    """Frame rate of the assembled clip (0.0 when the source rate is unknown)."""
    if target_fps:
        return float(target_fps)
    if not source_fps:
        return 0.0
    return float(source_fps) * per_interval


def assemble(image: SplitImage, schedule: Sequence[Tuple[int, float]],
             estimate: Callable[[int, float], torch.Tensor], *, keep_originals: bool,
             cuts: Set[int], cut_mode: str, dropped: Set[int]) -> torch.Tensor:
    """The output IMAGE [M, H, W, C] in schedule order (see the module docstring)."""
    rgb, alpha = image.rgb, image.alpha
    out_rgb: List[torch.Tensor] = []
    out_alpha: List[torch.Tensor] = []
    for index, tau in schedule:
        if tau == 0:
            if not keep_originals or index in dropped:
                continue
            out_rgb.append(rgb[index:index + 1])
            if alpha is not None:
                out_alpha.append(alpha[index:index + 1])
            continue
        if index + 1 in dropped:
            continue
        if index in cuts and cut_mode == "repeat":
            nearer = index if tau < 0.5 else index + 1
            frame = rgb[nearer:nearer + 1]
        elif index in cuts and cut_mode == "blend":
            frame = rgb[index:index + 1] * (1 - tau) + rgb[index + 1:index + 2] * tau
        else:
            frame = estimate(index, tau).to(rgb)
        out_rgb.append(frame)
        if alpha is not None:
            out_alpha.append(blend_alpha(alpha[index:index + 1], alpha[index + 1:index + 2], tau))
    if not out_rgb:
        raise ValueError("the output would be empty: keep the originals, or choose a timeline "
                         "with in-between frames")
    return join_image(torch.cat(out_rgb), image.channels,
                      torch.cat(out_alpha) if out_alpha else None)


def per_interval(schedule: Sequence[Tuple[int, float]], frame_count: int, keep_originals: bool) -> int:
    """Output frames per source interval of a regular (multiplier or tau-list) timeline."""
    inbetweens = sum(1 for _i, tau in schedule if tau > 0) // max(1, frame_count - 1)
    return inbetweens + (1 if keep_originals else 0)


class HiFIMerge:
    """Put originals and full-resolution in-betweens together in time order."""

    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE", "FLOAT")
    RETURN_NAMES = ("frames", "fps")
    OUTPUT_TOOLTIPS = ("The retimed clip in time order.",
                       "Its frame rate (0 when the source fps was not connected to Base Sample).")
    FUNCTION = "merge"
    DESCRIPTION = ("Assembles the retimed clip from the originals and the full-resolution "
                   "in-betweens, following the timeline chosen in Base Sample, with scene-cut "
                   "and duplicate-frame handling.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "frames": ("IMAGE", {"tooltip": "The same clip that went into HiFI Base Sample."}),
            "intermediate": (INTERMEDIATE_TYPE, {"tooltip": (
                "Full-resolution in-betweens from HiFI Patch-Cascade Upsample.")}),
            "keep_originals": widgets.keep_originals(),
            "scene_cuts": widgets.scene_cuts(),
            "scene_threshold": widgets.scene_threshold(DEFAULT_SCENE_THRESHOLD),
            "duplicates": widgets.duplicates(),
        }}

    def merge(self, frames, intermediate, keep_originals, scene_cuts, scene_threshold, duplicates):
        node = "HiFI Merge"
        if not isinstance(intermediate, HiFIIntermediate):
            raise ValueError(f"{node}: input 'intermediate' must come from HiFI Patch-Cascade Upsample")
        if not intermediate.is_full_resolution:
            raise ValueError(
                f"{node}: input 'intermediate' is at cascade level {intermediate.level + 1} of "
                f"{intermediate.num_levels}, not full resolution; set the Patch-Cascade Upsample's "
                "mode to 'to full resolution' or chain more Upsample nodes")
        image = split_image(frames, "frames", node, min_frames=2)
        if frames_key(image.rgb) != intermediate.frames_key:
            raise ValueError(f"{node}: input 'frames' is not the clip the intermediate was made from; "
                             "connect the same IMAGE as Base Sample's")
        cuts = scene_cut_pairs(image.rgb, scene_threshold, node) if scene_cuts != "off" else set()
        dropped = duplicate_frames(image.rgb) if duplicates == "drop" else set()
        out = assemble(image, intermediate.schedule,
                       lambda i, t: intermediate.estimate(i, t)[0:1], keep_originals=keep_originals,
                       cuts=cuts, cut_mode=scene_cuts, dropped=dropped)
        fps = output_fps(intermediate.source_fps, intermediate.multiplier, intermediate.target_fps,
                         per_interval(intermediate.schedule, intermediate.frame_count, keep_originals))
        return (out, fps)


class HiFIInterpolate:
    """All in one: frames in, retimed frames out (multiplier or target fps)."""

    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE", "FLOAT", "IMAGE", "VIDEO")
    RETURN_NAMES = ("frames", "fps", "uncertainty", "video")
    OUTPUT_TOOLTIPS = ("The retimed clip: originals with in-betweens in time order.",
                       "Its frame rate (0 when the source fps is not connected and a multiplier is used).",
                       "Per-pixel spread across samples of every in-between (white = unsure; "
                       "needs samples > 1).",
                       "The retimed clip as a core VIDEO at its frame rate (for Save Video); "
                       "needs the source fps.")
    FUNCTION = "interpolate"
    DESCRIPTION = ("Frame interpolation with HiFI's patch-based cascaded diffusion in one node: "
                   "multiplier or target fps, scene cuts never interpolated across.")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "hifi_model": (MODEL_TYPE, {"tooltip": "The model from HiFI Load Model."}),
                "frames": ("IMAGE", {"tooltip": "The clip, in order (at least two frames)."}),
                "multiplier": widgets.multiplier(),
                "target_fps": widgets.target_fps(),
                "levels": widgets.levels(),
                "patch_width": widgets.patch_side("width"),
                "patch_height": widgets.patch_side("height"),
                "overlap": widgets.overlap(),
                "steps": widgets.steps(1, "per cascade level"),
                "samples": widgets.samples(),
                "seed": widgets.seed(),
                "scene_cuts": widgets.scene_cuts(),
                "scene_threshold": widgets.scene_threshold(DEFAULT_SCENE_THRESHOLD),
            },
            "optional": {
                "fps": widgets.source_fps(),
            },
        }

    def interpolate(self, hifi_model, frames, multiplier, target_fps, levels, patch_width,
                    patch_height, overlap, steps, samples, seed, scene_cuts, scene_threshold,
                    fps=None):
        node = "HiFI Interpolate"
        image = split_image(frames, "frames", node, min_frames=2)
        count = image.rgb.shape[0]
        schedule, mult, target = build_schedule(count, multiplier=multiplier, target_fps=target_fps,
                                                fps=fps, taus_text="", node=node)
        cuts = scene_cut_pairs(image.rgb, scene_threshold, node) if scene_cuts != "off" else set()
        # In-betweens across a cut are never computed: they are repeats or blends.
        needed = [(i, t) for i, t in schedule if t > 0 and i not in cuts]
        pairs, taus = pairs_and_taus(needed)
        settings = engine.make_settings(hifi_model, levels=levels, patch_width=patch_width,
                                        patch_height=patch_height, overlap=overlap, steps=steps,
                                        samples=samples, seed=seed)
        made: Dict[Tuple[int, float], Tuple[torch.Tensor, torch.Tensor]] = {}
        if pairs:
            started = time.monotonic()
            estimates, variances, _ = engine.run_levels(
                hifi_model, image.rgb, pairs, taus, settings, start_level=0, stop_level=None,
                progress=comfy_bridge.ComfyProgress())
            height, width = image.rgb.shape[-2:]
            pace.record(pace.pace_key(hifi_model.name, hifi_model.device, settings.levels, steps, samples),
                        width, height, sum(len(t) for t in taus), time.monotonic() - started)
            for i, row_taus, row_e, row_v in zip(pairs, taus, estimates, variances):
                for t, e, v in zip(row_taus, row_e, row_v):
                    made[(i, t)] = (e, v)
        out = assemble(image, schedule, lambda i, t: made[(i, t)][0], keep_originals=True,
                       cuts=cuts, cut_mode=scene_cuts, dropped=set())
        fps_out = output_fps(fps, mult, target, per_interval(schedule, count, True))
        if made:
            variance = torch.cat([made[key][1] for key in sorted(made)])
        else:  # every pair is a cut: nothing uncertain
            variance = torch.zeros(1, 3, *image.rgb.shape[-2:])
        return (out, fps_out, variance_to_image(variance), comfy_bridge.video_from_frames(out, fps_out))
