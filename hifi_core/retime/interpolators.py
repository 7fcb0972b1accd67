"""Interpolators for the streaming engine: the model (with each pair's index), a blend, DIS."""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import torch

from ..errors import HiFIInputError
from ..interpolate import Interpolator as ModelBackedInterpolator
from ..progress import CancelCheck


Interpolator = Callable[[torch.Tensor, torch.Tensor, Sequence[float]], torch.Tensor]

# ---------------------------------------------------------------- interpolators


def blend_interpolator(frame0: torch.Tensor, frame2: torch.Tensor, taus: Sequence[float]) -> torch.Tensor:
    """Cheap stand-in: linear cross-fade, `[T, 3, H, W]` (for tests and memory proofs)."""
    t = torch.tensor([float(x) for x in taus], dtype=frame0.dtype).view(-1, 1, 1, 1)
    return (1 - t) * frame0[0] + t * frame2[0]


class ModelInterpolator(ModelBackedInterpolator):
    """`hifi_core.interpolate.Interpolator` as the streaming engine's interpolator: called with
    the pair's index in the clip, so its noise is the pair's own (the IMAGE path and a resumed
    file then give the same frames)."""


def model_interpolator(model, settings=None, *, progress=None, cancel: Optional[CancelCheck] = None
                       ) -> ModelInterpolator:
    """Wrap a `HiFIModel` and `CascadeSettings` as an interpolator (one pair, several taus)."""
    return ModelInterpolator(model, settings, progress=progress, cancel=cancel)


def make_interpolator(method: str, model=None, settings=None, *, progress=None,
                      cancel: Optional[CancelCheck] = None) -> Interpolator:
    """'hifi' (needs `model`), 'blend', or 'dis' (OpenCV DIS optical flow, if available)."""
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
