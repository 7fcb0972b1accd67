"""Widget definitions shared by several HiFI nodes (one place for ranges and tooltips).

Each function returns a ComfyUI input spec tuple `(TYPE, options)`. Saved workflows store
widget values by position, so a node's inputs must never be renamed or reordered once
released; add new ones at the end of "optional".
"""

from __future__ import annotations

from ..hifi_core import PRESETS

MAX_SEED = 0xFFFFFFFFFFFFFFFF
SCENE_CUT_CHOICES = ("repeat", "blend", "off")
DUPLICATE_CHOICES = ("keep", "drop")
# Patch sides step by 32: a multiple of every preset's alignment (2**(levels-1) of its U-Net).
PATCH_STEP = 32
assert all(PATCH_STEP % cfg.unet.alignment == 0 for cfg in PRESETS.values())


def levels(default: int = 2):
    return ("INT", {"default": default, "min": 0, "max": 8, "tooltip": (
        "Pyramid levels of the patch cascade. 1 = no cascade; 2 is the bundled checkpoint's best "
        "setting (3 for 8K keeps the optical flow on a 1080p-sized level); 0 = auto (enough "
        "levels that the coarsest fits in about one patch).")})


def multiplier(default: int = 2):
    return ("INT", {"default": default, "min": 2, "max": 16, "tooltip": (
        "Output frames per input interval: 2 doubles the frame rate (one in-between per pair), "
        "4 adds three. Ignored when target_fps is above 0.")})


def target_fps():
    return ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1000.0, "step": 0.001, "tooltip": (
        "Retime to this frame rate (e.g. 23.976 -> 60) with in-betweens at the exact times; "
        "the clip keeps its duration. 0 = use the multiplier. Needs the source fps.")})


def source_fps():
    return ("FLOAT", {"forceInput": True, "tooltip": (
        "Frame rate of the input frames (connect Load Video's fps). Needed for target_fps and "
        "to report the output frame rate.")})


def steps(default: int, what: str):
    return ("INT", {"default": default, "min": 1, "max": 100, "tooltip": (
        f"Denoising steps {what}. The paper uses 8 at the base level and 1-2 per cascade level; "
        "the bundled checkpoint scores the same at 1 and 2, so 1 is the fast choice. Time grows "
        "linearly with steps.")})


def samples(default: int = 1):
    return ("INT", {"default": default, "min": 1, "max": 16, "tooltip": (
        "Samples averaged per frame (paper: 4). More samples give a cleaner, sharper-on-average "
        "result and the uncertainty map; time grows linearly.")})


def seed():
    return ("INT", {"default": 0, "min": 0, "max": MAX_SEED, "control_after_generate": True,
                    "tooltip": "Seed of the diffusion noise; the same seed reproduces the result."})


def eta():
    return ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip": (
        "DDIM stochasticity: 0 is deterministic (recommended), 1 is ancestral sampling.")})


def patch_side(side: str, default: int = 256):
    return ("INT", {"default": default, "min": PATCH_STEP, "max": 4096, "step": PATCH_STEP,
                    "tooltip": (f"Nominal patch {side} in pixels. Memory depends on the patch size, not "
                                "the frame size: smaller patches fit smaller GPUs (paper: 512x768). "
                                "Each level is laid out with the least repeated work in patches of up "
                                "to 4 nominal ones in area (2x a side), as the patch batch's memory "
                                "allows; a level that fits is denoised in one piece.")})


def overlap(default: int = 32):
    return ("INT", {"default": default, "min": 0, "max": 1024, "step": 8, "tooltip": (
        "Minimum overlap between neighbouring patches in pixels; overlapping predictions are "
        "averaged at every step (MultiDiffusion), which hides seams.")})


def feather():
    return ("BOOLEAN", {"default": False, "tooltip": (
        "Weight patches with linear ramps over the overlap instead of a uniform average.")})


def patch_batch():
    return ("INT", {"default": 0, "min": 0, "max": 256, "tooltip": (
        "Nominal patches' worth per network call (larger patches count for several). 0 = as "
        "many as memory_budget_mb allows; halves by itself after a GPU out-of-memory error.")})


def memory_budget_mb():
    return ("INT", {"default": 0, "min": 0, "max": 1 << 20, "step": 256, "tooltip": (
        "Memory for the network's working set in MiB. 0 = 80% of the free memory ComfyUI "
        "reports for the device.")})


def scene_cuts():
    return (list(SCENE_CUT_CHOICES), {"default": "repeat", "tooltip": (
        "At a scene cut the model must not morph one shot into the next. repeat: in-betweens "
        "repeat the nearer original; blend: a cross-fade; off: interpolate anyway.")})


def scene_threshold(default: float):
    return ("FLOAT", {"default": default, "min": 0.01, "max": 1.0, "step": 0.01, "tooltip": (
        "How different two frames must be to count as a cut (mean absolute difference of "
        "downscaled grey frames, 0-1). Lower finds more cuts.")})


def duplicates():
    return (list(DUPLICATE_CHOICES), {"default": "keep", "tooltip": (
        "Frames identical to their predecessor (screen recordings, animation on twos). keep: "
        "leave them; drop: remove repeated frames from the output.")})


def keep_originals():
    return ("BOOLEAN", {"default": True, "tooltip": (
        "Keep the input frames in the output (normal). Off: output only the new in-betweens.")})
