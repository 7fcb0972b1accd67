"""RIFE's IFNet (HDv3 weights): a small learned optical-flow network for the midpoint.

Source of the architecture: Z. Huang, T. Zhang, W. Heng, B. Shi, S. Zhou, "Real-Time
Intermediate Flow Estimation for Video Frame Interpolation", ECCV 2022 (RIFE). The published
"HDv3" weights are Megvii's, MIT licence (README, "Third-party weights"). This module is
written from the paper and the weights' tensor shapes; the weights are converted to
safetensors once by `python -m hifi_core setup-motion` (`hifi_core.motion_setup`) and only
ever read from safetensors here.

What it computes, for frames I0, I1 [B, 3, H, W] in [0, 1] (H, W multiples of 32):
- flows [B, 4, H, W]: (flow t->I0 x, y, flow t->I1 x, y) in pixels, t = 1/2, for backward
  warping (out(x) = I(x + flow(x))), the same layout as `hifi_core.flow_base`'s tau-flows;
- a fusion logit [B, 1, H, W]: the midpoint is sigmoid(logit) * warped I0 +
  (1 - sigmoid(logit)) * warped I1 (RIFE's occlusion-aware merge).

Architecture: three flow stages, coarse to fine, at 1/4, 1/2 and 1/1 of the input (the
"scales"). Each stage gets both frames warped by the flows so far, the fusion logit so far and
the flows, resized to its scale; encodes them at a further 1/4 with two stride-2 convolutions,
refines with four residual pairs of 3x3 convolutions (PReLU everywhere), and decodes a flow
update and a logit update with transposed convolutions back to its scale. Every stage runs
twice, once with the frames swapped, and the two answers are averaged (the flows swapped back,
the logit negated): the estimate is symmetric in time by construction. The stage's updates
are added to the running flows and logit.
"""

from __future__ import annotations

from typing import Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

STAGE_WIDTH = 90       # channels inside each stage (the HDv3 weights' width)
STAGE_INPUTS = 3 + 3 + 1 + 4  # warped I0, warped I1, fusion logit, flows
REFINE_PAIRS = 4
ALIGNMENT = 32         # input sides must be multiples of this (1/4 scale x 1/4 encoder x 2)
DEFAULT_SCALES = (4, 2, 1)


def backward_warp(image: torch.Tensor, flow: torch.Tensor, first_row: int = 0, mode: str = "bilinear"
                  ) -> torch.Tensor:
    """out(x) = image(x + flow(x)), edges replicated: the one backward warp of both motion bases.

    Args:
        image: [B, C, H, W].
        flow: [B, 2, h, W] (x, y) in pixels, for image rows [first_row, first_row + h).
        first_row: int, default 0: the image row of the flow's first row (a band of a frame).
        mode: str, default "bilinear" (as cv2.remap in the DIS baseline): a grid_sample mode.

    Returns:
        [B, C, h, W] in the image's dtype.
    """
    # Not kornia's remap: the same values bit for bit, but it builds its grid more slowly:
    # 22.3 against 18.8 ms per 720p warp on 1 thread, 25.6 against 22.4 on 2 (experiments/kornia_parity.py).
    _, _, height, width = image.shape
    band = flow.shape[-2]
    ys = torch.arange(first_row, first_row + band, dtype=flow.dtype, device=flow.device).view(1, band, 1)
    xs = torch.arange(width, dtype=flow.dtype, device=flow.device).view(1, 1, width)
    grid_x = (xs + flow[:, 0]) * (2.0 / max(width - 1, 1)) - 1.0
    grid_y = (ys + flow[:, 1]) * (2.0 / max(height - 1, 1)) - 1.0
    grid = torch.stack([grid_x, grid_y], dim=-1).to(image.dtype)
    return F.grid_sample(image, grid, mode=mode, padding_mode="border", align_corners=True)


def swap_flows(flows: torch.Tensor) -> torch.Tensor:
    """(to I0, to I1) -> (to I1, to I0): the same flows seen with the frames swapped."""
    return torch.cat([flows[:, 2:4], flows[:, 0:2]], dim=1)


def _resize(x: torch.Tensor, factor: float) -> torch.Tensor:
    return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False,
                         recompute_scale_factor=False)


class ConvPReLU(nn.Module):
    """3x3 convolution (optionally strided) and a per-channel PReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, stride, 1)
        self.act = nn.PReLU(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x))


class UpsamplingHead(nn.Module):
    """Two x2 transposed convolutions (PReLU between): features at 1/4 -> `out_channels` at 1/1."""

    def __init__(self, width: int, out_channels: int):
        super().__init__()
        self.up = nn.ConvTranspose2d(width, width // 2, 4, 2, 1)
        self.act = nn.PReLU(width // 2)
        self.out = nn.ConvTranspose2d(width // 2, out_channels, 4, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.act(self.up(x)))


class FlowStage(nn.Module):
    """One coarse-to-fine stage: (images, flows) at full size -> (flow update, logit update)."""

    def __init__(self, in_channels: int = STAGE_INPUTS, width: int = STAGE_WIDTH):
        super().__init__()
        self.encode = nn.Sequential(ConvPReLU(in_channels, width // 2, 2), ConvPReLU(width // 2, width, 2))
        self.refine = nn.ModuleList(nn.Sequential(ConvPReLU(width, width), ConvPReLU(width, width))
                                    for _ in range(REFINE_PAIRS))
        self.flow_head = UpsamplingHead(width, 4)
        self.logit_head = UpsamplingHead(width, 1)

    def forward(self, images: torch.Tensor, flows: torch.Tensor, scale: float
                ) -> Tuple[torch.Tensor, torch.Tensor]:
        # the stage works at 1/scale; flow vectors are in pixels, so they scale with the size
        images, flows = _resize(images, 1.0 / scale), _resize(flows, 1.0 / scale) / scale
        features = self.encode(torch.cat([images, flows], dim=1))
        for pair in self.refine:
            features = features + pair(features)
        flow_update = _resize(self.flow_head(features), float(scale)) * scale
        logit_update = _resize(self.logit_head(features), float(scale))
        return flow_update, logit_update


class IFNet(nn.Module):
    """Midpoint flows and fusion logit of two frames (see the module docstring)."""

    def __init__(self, stages: int = len(DEFAULT_SCALES), width: int = STAGE_WIDTH):
        super().__init__()
        self.stages = nn.ModuleList(FlowStage(STAGE_INPUTS, width) for _ in range(stages))

    def forward(self, frame0: torch.Tensor, frame1: torch.Tensor,
                scales: Sequence[float] = DEFAULT_SCALES) -> Tuple[torch.Tensor, torch.Tensor]:
        """Frames [B, 3, H, W] in [0, 1], sides multiples of `ALIGNMENT` x max(scales) / 4.

        Returns (flows [B, 4, H, W], fusion logit [B, 1, H, W]).
        """
        if len(scales) != len(self.stages):
            raise ValueError(f"IFNet has {len(self.stages)} stages; got {len(scales)} scales")
        batch = frame0.shape[0]
        flows = frame0.new_zeros(batch, 4, *frame0.shape[-2:])
        logit = frame0.new_zeros(batch, 1, *frame0.shape[-2:])
        warped0, warped1 = frame0, frame1
        for stage, scale in zip(self.stages, scales):
            # both time directions, (I0, I1, logit) and (I1, I0, -logit), one after the other:
            # the same numbers as one batch of two, 19 % less peak memory at 1080p (1.39 -> 1.12 GiB)
            forward_flow, forward_logit = stage(torch.cat([warped0, warped1, logit], dim=1), flows, scale)
            backward_flow, backward_logit = stage(torch.cat([warped1, warped0, -logit], dim=1),
                                                  swap_flows(flows), scale)
            flows = flows + (forward_flow + swap_flows(backward_flow)) / 2
            logit = logit + (forward_logit - backward_logit) / 2
            warped0 = backward_warp(frame0, flows[:, :2])
            warped1 = backward_warp(frame1, flows[:, 2:])
        return flows, logit

    def interpolate(self, frame0: torch.Tensor, frame1: torch.Tensor,
                    scales: Sequence[float] = DEFAULT_SCALES) -> torch.Tensor:
        """RIFE's own midpoint: the two warped frames merged by the fusion mask."""
        return fuse_midpoint(frame0, frame1, *self(frame0, frame1, scales))


def fuse_midpoint(frame0: torch.Tensor, frame1: torch.Tensor, flows: torch.Tensor,
                  logit: torch.Tensor) -> torch.Tensor:
    """sigmoid(logit) * frame0 warped + (1 - sigmoid(logit)) * frame1 warped (IFNet's outputs)."""
    weight0 = torch.sigmoid(logit)
    return weight0 * backward_warp(frame0, flows[:, :2]) + (1 - weight0) * backward_warp(frame1, flows[:, 2:])
