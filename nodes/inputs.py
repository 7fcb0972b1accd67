"""What the nodes' inputs name, resolved once for every node and route: the video file a
Load/Retime Video node reads, the checkpoint file a Load Model combo entry means, and the output
timeline a multiplier, target fps or tau list asks for. Node modules import this, never each
other.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from ..hifi_core import PRESETS, retime_schedule
from ..hifi_core.checkpoint import DEFAULT_CHECKPOINT_NAME
from ..hifi_core.validation import check_taus
from . import comfy_bridge

PRESET_PREFIX = "preset:"


def resolve_video_path(video: str, path: str, node: str) -> Path:
    """The file to read: `path` when given (absolute, or relative to the input folder)."""
    if path and path.strip():
        candidate = Path(path.strip().strip('"')).expanduser()
        if not candidate.is_absolute() and comfy_bridge.input_directory() is not None:
            inside = Path(comfy_bridge.input_directory()) / candidate
            candidate = inside if inside.exists() else candidate
        if not candidate.is_file():
            raise ValueError(f"{node}: input 'path' {path!r} is not a video file; give an absolute "
                             "path or a file name inside ComfyUI's input folder, or clear it to use "
                             "'video'")
        return candidate
    if not video:
        raise ValueError(f"{node}: input 'video' is empty; upload a video into ComfyUI's input "
                         "folder or type a file path into 'path'")
    candidate = Path(comfy_bridge.annotated_input_path(video))
    if not candidate.is_file():
        raise ValueError(f"{node}: input 'video' {video!r} is not in ComfyUI's input folder; "
                         "upload it again or type its path into 'path'")
    return candidate


def checkpoint_choices():
    """The combo's entries: model-folder files, bundled files, then the presets."""
    names = list(comfy_bridge.model_folder_files())
    for bundled in comfy_bridge.bundled_checkpoints():
        if bundled not in names:
            names.append(bundled)
    if DEFAULT_CHECKPOINT_NAME in names:  # the trained default first: it is the combo's default
        names.remove(DEFAULT_CHECKPOINT_NAME)
        names.insert(0, DEFAULT_CHECKPOINT_NAME)
    return names + [PRESET_PREFIX + name for name in PRESETS]


def resolve_checkpoint(name: str) -> Path:
    """The file a combo entry names; model folder first, then the pack's checkpoints/."""
    found = comfy_bridge.model_folder_path(name)
    if found is not None:
        return Path(found)
    bundled = comfy_bridge.BUNDLED_CHECKPOINT_DIR / name
    if bundled.is_file():
        return bundled
    raise FileNotFoundError(
        f"HiFI Load Model: input 'checkpoint' {name!r} was not found in ComfyUI's models/hifi "
        f"folder nor in the pack's checkpoints/ folder. Put the .safetensors file in "
        f"ComfyUI/models/hifi/ and refresh, or pick one of: {', '.join(checkpoint_choices())}")


def build_schedule(frame_count: int, *, multiplier: int, target_fps: float,
                   fps: Optional[float], taus_text: str, node: str
                   ) -> Tuple[List[Tuple[int, float]], Optional[int], Optional[float]]:
    """The output timeline [(source index, tau)] plus (multiplier, target fps) it follows."""
    if taus_text.strip():
        try:
            taus = check_taus([float(t) for t in taus_text.replace(";", ",").split(",") if t.strip()])
        except ValueError as error:
            raise ValueError(f"{node}: input 'taus' ({taus_text!r}) must be a comma-separated list "
                             f"of times strictly between 0 and 1, e.g. '0.25, 0.5, 0.75' ({error})") from None
        taus = sorted(set(taus))
        schedule = [(i, t) for i in range(frame_count - 1) for t in [0.0, *taus]]
        return schedule + [(frame_count - 1, 0.0)], None, None
    if target_fps > 0:
        if not fps or fps <= 0:
            raise ValueError(f"{node}: input 'fps' (the source frame rate) is missing, and "
                             f"target_fps={target_fps} needs it: connect Load Video's 'fps' output "
                             "to it, or set target_fps to 0 and use the multiplier")
        plan = retime_schedule(frame_count, source_fps=fps, target_fps=target_fps)
        return [(o.index, o.tau) for o in plan], None, float(target_fps)
    plan = retime_schedule(frame_count, multiplier=int(multiplier))
    return [(o.index, o.tau) for o in plan], int(multiplier), None


def pairs_and_taus(schedule: Sequence[Tuple[int, float]]) -> Tuple[Tuple[int, ...], Tuple[Tuple[float, ...], ...]]:
    pairs = sorted({index for index, tau in schedule if tau > 0})
    taus = tuple(tuple(sorted({tau for index, tau in schedule if index == i and tau > 0})) for i in pairs)
    return tuple(pairs), taus
