"""Interpolators for the streaming engine: the model (with each pair's index), a blend, DIS."""

from __future__ import annotations

from typing import Callable, Optional, Sequence, Tuple

import torch

from ..errors import HiFIInputError
from ..interpolate import Interpolator
from ..progress import CancelCheck
from ..video_io import as_float32, decode_dtype


# what the engine calls: (frame0 [1,3,H,W], frame2, taus) -> in-betweens [T,3,H,W]
FrameInterpolator = Callable[[torch.Tensor, torch.Tensor, Sequence[float]], torch.Tensor]

# ---------------------------------------------------------------- interpolators


def blend_interpolator(frame0: torch.Tensor, frame2: torch.Tensor, taus: Sequence[float]) -> torch.Tensor:
    """Cheap stand-in: the linear cross-fade of `frame0` and `frame2` ([1, 3, H, W]) at each of
    `taus`, `[T, 3, H, W]` (for tests and memory proofs)."""
    t = torch.tensor([float(x) for x in taus], dtype=frame0.dtype).view(-1, 1, 1, 1)
    return (1 - t) * frame0[0] + t * frame2[0]


def for_decoded_frames(interpolator: FrameInterpolator, source_bits: int, output_bits: int
                       ) -> Tuple[FrameInterpolator, torch.dtype]:
    """(the interpolator the engine calls, the dtype it decodes frames to). Frames are half
    precision where the source's depth allows it (`decode_dtype`), but float32 for an 8-bit
    source written deeper, whose originals would otherwise be written with half precision's
    rounding (up to 1/16 of an 8-bit step) instead of as their codes. The model reads the
    frames as decoded; any other interpolator gets float32 copies (`with_float32_frames`)."""
    dtype = torch.float32 if source_bits <= 8 < output_bits else decode_dtype(source_bits)
    if isinstance(interpolator, Interpolator):
        return interpolator, dtype
    return with_float32_frames(interpolator, source_bits), dtype


def with_float32_frames(interpolator: FrameInterpolator, bit_depth: int) -> FrameInterpolator:
    """`interpolator` called with float32 copies of each pair's frames, which the retime decodes
    to half precision from sources up to 10 bits: a method other than the model computes on the
    values it always had (exactly so for 8-bit sources, see `video_io.as_float32`)."""
    def on_float32(frame0: torch.Tensor, frame2: torch.Tensor, taus: Sequence[float]) -> torch.Tensor:
        return interpolator(as_float32(frame0, bit_depth), as_float32(frame2, bit_depth), taus)
    return on_float32


def model_interpolator(model, settings=None, *, progress=None, cancel: Optional[CancelCheck] = None
                       ) -> Interpolator:
    """`model` (HiFIModel) and `settings` (CascadeSettings or None) as the engine's interpolator: a
    `hifi_core.Interpolator` (with its `progress` and `cancel` hooks), which the engine calls
    with each pair's index (its noise is the pair's, so the IMAGE path and a resumed file give
    the same frames)."""
    return Interpolator(model, settings, progress=progress, cancel=cancel)


def make_interpolator(method: str, model=None, settings=None, *, progress=None,
                      cancel: Optional[CancelCheck] = None) -> FrameInterpolator:
    """The engine's interpolator for a method name.

    Args:
        method (str): "hifi" (needs `model`), "blend" (cross-fade) or "dis" (OpenCV DIS flow).
        model (HiFIModel or None), settings (CascadeSettings or None): for "hifi".
        progress (callable or None): patch-level `ProgressEvent`s ("hifi").
        cancel (callable or None): polled between patch batches ("hifi").
    """
    if method == "hifi":
        if model is None:
            raise HiFIInputError("method 'hifi' needs a model (load one with hifi_core.load_model)")
        return model_interpolator(model, settings, progress=progress, cancel=cancel)
    if method == "blend":
        return blend_interpolator
    if method == "dis":
        try:
            from ..baselines import dis_flow_interpolate
        except ImportError:
            raise HiFIInputError("method 'dis' needs hifi_core.baselines, which this build lacks") from None

        def run(frame0, frame2, taus):
            return torch.stack([dis_flow_interpolate(frame0, frame2, float(t)).reshape(frame0.shape)[0]
                                for t in taus])
        return run
    raise HiFIInputError(f"unknown interpolation method {method!r}; use hifi, blend or dis")
