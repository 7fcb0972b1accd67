"""Input checks shared by every entry point (API, CLI, nodes).

Each check raises `HiFIInputError` with a message that names the input and says how to fix
it. Accepted frames: float tensors, [3, H, W] or [B, 3, H, W], RGB, values in [0, 1].
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Tuple, Union

import torch

from .errors import HiFIInputError

MIN_SIDE = 4
RANGE_TOLERANCE = 1e-3


# frame dtypes used as they come (the cascade reads them a block at a time as float32)
KEPT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def check_frames(frames, name: str) -> torch.Tensor:
    """Validate one frame or a batch; returns a [B, 3, H, W] float tensor: float32, or the
    half-precision frame as it is (half the memory at 8K; 10-bit values survive it)."""
    if not isinstance(frames, torch.Tensor):
        raise HiFIInputError(f"{name} must be a torch.Tensor, got {type(frames).__name__}")
    if frames.dim() == 3:
        frames = frames.unsqueeze(0)
    if frames.dim() == 4 and frames.shape[0] == 0:
        raise HiFIInputError(f"{name} is an empty batch (shape {tuple(frames.shape)}); give at least one frame")
    if frames.dim() != 4:
        raise HiFIInputError(
            f"{name} has shape {tuple(frames.shape)}; expected [3, H, W] or [B, 3, H, W] "
            "(ComfyUI IMAGE batches are [B, H, W, C]: permute them with .permute(0, 3, 1, 2))")
    channels = frames.shape[1]
    if channels == 1:
        raise HiFIInputError(
            f"{name} is grayscale (1 channel); HiFI needs RGB: repeat the channel three times "
            "(frames.expand(-1, 3, -1, -1)) or convert the image to RGB")
    if channels == 4:
        raise HiFIInputError(
            f"{name} has 4 channels (RGBA); HiFI interpolates RGB: drop or composite the alpha "
            "channel first (frames[:, :3])")
    if channels != 3:
        raise HiFIInputError(
            f"{name} has {channels} channels in dimension 1; expected 3 (RGB) in layout "
            "[B, 3, H, W]")
    if not frames.is_floating_point():
        raise HiFIInputError(
            f"{name} has dtype {frames.dtype}; convert to float in [0, 1] first "
            "(e.g. frames.float() / 255 for 8-bit images)")
    height, width = frames.shape[-2:]
    if height < MIN_SIDE or width < MIN_SIDE:
        raise HiFIInputError(f"{name} is {height}x{width} pixels; frames must be at least "
                             f"{MIN_SIDE}x{MIN_SIDE}")
    value_range = finite_range(frames)
    if value_range is None:
        raise HiFIInputError(f"{name} contains NaN or infinite values; fix the source frames")
    low, high = value_range
    if low < -RANGE_TOLERANCE or high > 1 + RANGE_TOLERANCE:
        hint = " (it looks like 0-255 data: divide by 255)" if high > 1.5 else ""
        raise HiFIInputError(
            f"{name} has values in [{low:.3g}, {high:.3g}]; frames must be in [0, 1]{hint}")
    if frames.dtype in KEPT_DTYPES and low >= 0.0 and high <= 1.0:
        return frames  # no copy: at 8K each frame is 400 MB, and nothing downstream writes to it
    return frames.float().clamp(0.0, 1.0)


# values scanned at once: a reduction over half precision works in float32, and whole
# frames would cost a float32 copy of each (400 MB at 8K) just to be checked
SCAN_CHUNK_VALUES = 1 << 22


def _scan_chunks(values: torch.Tensor) -> Sequence[torch.Tensor]:
    """Views of about `SCAN_CHUNK_VALUES` values covering a tensor. A strided tensor (a cropped
    frame, e.g. the cascade's estimate without its padding) is split in row bands: flattening
    it would copy it whole."""
    if values.is_contiguous() or values.dim() < 2:
        return values.reshape(-1).split(SCAN_CHUNK_VALUES)
    rows = max(1, SCAN_CHUNK_VALUES * values.shape[-2] // max(values.numel(), 1))
    return values.split(rows, dim=-2)


def finite_range(values: torch.Tensor) -> Optional[Tuple[float, float]]:
    """(min, max) of a tensor, or None if any value is NaN or infinite; a chunk at a time."""
    low, high = math.inf, -math.inf
    for chunk in _scan_chunks(values):
        if not bool(torch.isfinite(chunk).all()):
            return None
        low, high = min(low, float(chunk.min())), max(high, float(chunk.max()))
    return low, high


def check_pair(frame0, frame2) -> Tuple[torch.Tensor, torch.Tensor]:
    """Validate two frames (or batches of pairs) of identical shape."""
    frame0 = check_frames(frame0, "frame0")
    frame2 = check_frames(frame2, "frame2")
    if frame0.shape != frame2.shape:
        raise HiFIInputError(
            f"frame0 {tuple(frame0.shape)} and frame2 {tuple(frame2.shape)} differ in shape; "
            "both frames of a pair must have the same size and batch (resize one to match)")
    return frame0, frame2


def check_sequence(frames, name: str = "frames") -> torch.Tensor:
    """A sequence to retime: [N, 3, H, W] with N >= 2."""
    frames = check_frames(frames, name)
    if frames.shape[0] < 2:
        raise HiFIInputError(
            f"{name} holds {frames.shape[0]} frame; interpolation needs at least two frames")
    return frames


def as_number(value, name: str) -> float:
    """A finite real number from what Python users pass: int, float, numpy scalars and one-element
    tensors or arrays (not bool, not strings)."""
    if isinstance(value, (bool, str, bytes)) or value is None:
        raise HiFIInputError(f"{name}={value!r} must be a number")
    if hasattr(value, "shape"):  # a torch tensor, a numpy array or scalar
        count = value.numel() if isinstance(value, torch.Tensor) else value.size
        if count != 1:
            raise HiFIInputError(f"{name} must be one number, got an array of shape {tuple(value.shape)}")
        value = value.item()
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise HiFIInputError(f"{name}={value!r} must be a number") from None
    if not math.isfinite(number):
        raise HiFIInputError(f"{name}={value!r} must be a finite number")
    return number


def check_number(value, name: str, low: float, high: float, *, integer: bool = False) -> float:
    """`as_number`, within [low, high] (and whole when `integer`)."""
    number = as_number(value, name)
    if integer and number != int(number):
        raise HiFIInputError(f"{name}={value!r} must be a whole number")
    if not low <= number <= high:
        raise HiFIInputError(f"{name}={value!r} must be between {low:g} and {high:g}")
    return number


def check_taus(tau: Union[float, Sequence[float]]) -> List[float]:
    """Interpolation times, each strictly between 0 and 1 (numbers, numpy or torch scalars, or a
    sequence / 1-d array of them)."""
    if isinstance(tau, torch.Tensor) or hasattr(tau, "shape"):
        tau = tau.reshape(-1).tolist() if getattr(tau, "ndim", 1) else tau.item()
    taus: Iterable = tau if isinstance(tau, (list, tuple)) else [tau]
    taus = [as_number(t, "tau") for t in taus]
    if not taus:
        raise HiFIInputError("tau is an empty list; give at least one time in (0, 1)")
    for t in taus:
        if not 0.0 < t < 1.0:
            raise HiFIInputError(
                f"tau={t} is outside (0, 1): 0 is frame0 and 1 is frame2, so an in-between "
                "time must lie strictly between")
    return taus


def is_same_file(a: Union[str, os.PathLike], b: Union[str, os.PathLike]) -> bool:
    """Whether two paths name one file: the same path, a symlink to it or a hard link."""
    a, b = Path(a), Path(b)
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def check_not_an_input(output: Union[str, os.PathLike], inputs: Iterable[Union[str, os.PathLike]]) -> None:
    """Refuse an output path that is (a link to) one of the inputs: writing it would destroy it."""
    for source in inputs:
        if is_same_file(output, source):
            raise HiFIInputError(f"output {str(output)!r} is the input {str(source)!r} (or a link to it): "
                                 "writing there would destroy the input; choose another output path")
