"""`Triplet`: two frames and the true frame between them, the unit that training, validation,
the benchmarks and the experiments all work on.

Frames are float32 tensors `[3, h, w]` RGB in [0, 1]. Sources (video decoders, photo renders)
make uint8 `[H, W, 3]` arrays; `to_tensor` converts them exactly (x / 255) and `to_uint8`
rounds back, so a triplet made from 8-bit frames scores against its 8-bit truth.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional

import numpy as np
import torch

from .errors import HiFIInputError


@dataclass
class Triplet:
    """frame0 and frame2, the truth `target` at `tau` in (0, 1), and where it comes from.

    Attributes:
        frame0, target, frame2 (torch.Tensor): float32 [3, h, w] in [0, 1], one shape.
        tau (float): the target's time between frame0 (0) and frame2 (1).
        source (str, default ""): the clip, photo scene or window it was made from.
        case (str, default ""): its label within the source (e.g. "gap2@120", "d=96").
        group (str, default ""): the set it belongs to ("tuning", "evaluation", "synthetic").
        gap (int or None): the frame gap for a triplet of real frames (i, i + g, i + 2g).
        meta (dict): facts for reports (frame indices, displacement in px, ...).
    """

    frame0: torch.Tensor
    target: torch.Tensor
    frame2: torch.Tensor
    tau: float
    source: str = ""
    case: str = ""
    group: str = ""
    gap: Optional[int] = None
    meta: Dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        shapes = {tuple(f.shape) for f in (self.frame0, self.target, self.frame2)}
        if len(shapes) != 1 or len(next(iter(shapes))) != 3 or next(iter(shapes))[0] != 3:
            raise HiFIInputError(f"triplet {self.source}/{self.case}: frames must share one [3, h, w] shape, "
                                 f"got {sorted(shapes)}")
        if not 0.0 < float(self.tau) < 1.0:
            raise HiFIInputError(f"tau={self.tau} must be in (0, 1)")
        self.tau = float(self.tau)

    @classmethod
    def from_uint8(cls, frame0: np.ndarray, target: np.ndarray, frame2: np.ndarray, tau: float,
                   **labels) -> "Triplet":
        """A triplet of uint8 [H, W, 3] RGB frames (as decoded or rendered)."""
        for name, image in (("frame0", frame0), ("target", target), ("frame2", frame2)):
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
                raise HiFIInputError(f"triplet {labels.get('source', '')}/{labels.get('case', '')}: {name} "
                                     f"must be uint8 [H, W, 3], got {image.dtype} {image.shape}")
        return cls(to_tensor(frame0), to_tensor(target), to_tensor(frame2), tau, **labels)


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 [H, W, 3] -> float32 [3, H, W] in [0, 1]."""
    return torch.from_numpy(np.array(image, dtype=np.float32)).permute(2, 0, 1).div_(255.0).contiguous()


def to_uint8(frame: torch.Tensor) -> np.ndarray:
    """float [3, H, W] (or [1, 3, H, W]) in [0, 1] -> uint8 [H, W, 3] (rounded)."""
    if frame.dim() == 4:
        frame = frame[0]
    return (frame.detach().float().clamp(0, 1) * 255.0).round().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()
