"""The custom socket types the HiFI nodes pass between them.

- ``HIFI_MODEL`` -> `HiFIModelHandle`: the `HiFIModel`, where it runs, at what precision, and
  (inside ComfyUI) the `ModelPatcher` that lets ComfyUI load and offload it with its other
  models.
- ``HIFI_INTERMEDIATE`` -> `HiFIIntermediate`: in-between frames of a clip at one pyramid
  level, plus everything needed to continue the cascade (pairs, taus, level, cascade layout)
  and to assemble the output timeline (the retime schedule and frame rates).

Tensors inside are on the CPU, layout [1, 3, h, w], float32 in [0, 1]; estimates below the
finest level are at the padded level size, the finest level is cropped to the frame size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Optional, Tuple

import torch

from ..hifi_core.runtime import PRECISION_CHOICES
from . import comfy_bridge

MODEL_TYPE = "HIFI_MODEL"
INTERMEDIATE_TYPE = "HIFI_INTERMEDIATE"


@dataclass
class HiFIModelHandle:
    """A loaded HiFI model and how to run it.

    Attributes:
        model: the `hifi_core.HiFIModel` (eval mode).
        name: what the loader was given (file name or ``preset:NAME``), for messages.
        device: the device the model runs on.
        precision: "auto", "fp32", "fp16" or "bf16" (autocast inside hifi_core).
        patcher: ComfyUI's `ModelPatcher` around the model, or None outside ComfyUI.
    """

    model: Any
    name: str
    device: torch.device
    precision: str = "auto"
    patcher: Any = None

    def __post_init__(self) -> None:
        if self.precision not in PRECISION_CHOICES:
            raise ValueError(f"precision={self.precision!r}: choose one of {PRECISION_CHOICES}")
        self.device = torch.device(self.device)

    @property
    def dtype(self) -> torch.dtype:
        """The compute dtype on this device (what "auto" resolves to)."""
        if self.precision == "fp16":
            return torch.float16
        if self.precision == "bf16":
            return torch.bfloat16
        if self.precision == "auto" and self.device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32

    def ready(self):
        """Put the model on its device (through ComfyUI's model management when present)."""
        management = comfy_bridge.comfy_module("comfy.model_management")
        if self.patcher is not None and management is not None:
            management.load_model_gpu(self.patcher)
        if next(self.model.parameters()).device != self.device:
            self.model.to(self.device)
        return self.model


@dataclass
class HiFIIntermediate:
    """In-between frames at one cascade level, for every pair and tau that is needed.

    Attributes:
        frame_count: frames in the source clip.
        frame_size: (height, width) of the source frames.
        frames_key: a cheap fingerprint of the source frames, so a later node can check it is
            given the same clip.
        pairs: index i of every pair (i, i + 1) that gets in-betweens.
        taus: the in-between times of each pair.
        level: the last cascade level computed (0 = coarsest).
        num_levels: levels of the cascade.
        estimates: per pair, per tau, a [1, 3, h, w] CPU tensor in [0, 1].
        variances: same layout: per-pixel variance across samples (the uncertainty).
        schedule: the output timeline as (source index, tau) pairs; tau 0 is an original.
        source_fps: frame rate of the source clip, if known.
        target_fps: frame rate of the output timeline (None: follow source_fps x multiplier).
        multiplier: in-betweens per interval + 1 when the timeline is a multiplier, else None.
        model_name: the model that made the estimates.
    """

    frame_count: int
    frame_size: Tuple[int, int]
    frames_key: Tuple[float, ...]
    pairs: Tuple[int, ...]
    taus: Tuple[Tuple[float, ...], ...]
    level: int
    num_levels: int
    estimates: List[List[torch.Tensor]] = field(repr=False)
    variances: List[List[torch.Tensor]] = field(repr=False)
    schedule: Tuple[Tuple[int, float], ...] = ()
    source_fps: Optional[float] = None
    target_fps: Optional[float] = None
    multiplier: Optional[int] = None
    model_name: str = ""

    def __post_init__(self) -> None:
        if len(self.pairs) != len(self.taus) or len(self.pairs) != len(self.estimates):
            raise ValueError("pairs, taus and estimates must have one entry per pair")
        if not 0 <= self.level < self.num_levels:
            raise ValueError(f"level {self.level} is outside 0..{self.num_levels - 1}")

    @property
    def is_full_resolution(self) -> bool:
        return self.level == self.num_levels - 1

    def estimate(self, index: int, tau: float) -> torch.Tensor:
        """The in-between of pair `index` at `tau` ([1, 3, h, w])."""
        row = self.pairs.index(index)
        column = min(range(len(self.taus[row])), key=lambda k: abs(self.taus[row][k] - tau))
        return self.estimates[row][column]


def frames_key(rgb: torch.Tensor) -> Tuple[float, ...]:
    """A fingerprint of a frame batch: shape plus coarse per-frame sums (cheap, order-sensitive)."""
    height, width = rgb.shape[-2:]
    step_h, step_w = max(1, height // 16), max(1, width // 16)
    sums = rgb[:, :, ::step_h, ::step_w].double().sum(dim=(1, 2, 3))
    return (float(rgb.shape[0]), float(height), float(width), *[round(float(s), 3) for s in sums])
