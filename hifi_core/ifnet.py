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

Memory: the stages run in row bands and every stage's inputs are made band by band
(`StageInputs`; the coarse stages' resized straight from each band; frames given as
`PaddedFrame`s are read a band at a time too), so the largest maps held are the flows and
logit (one 5-channel map), one direction's answer and the 1/4-size features. The coarse stages
average their two directions at their own scale and resize that once. The 1080p motion phase
(IFNet, DIS, the mixture) grows a fresh process's peak by 236-242 MiB (pages pinned; 2026-12-02,
`experiments/motion_memory.py`); with whole maps IFNet's tensors alone took 657 MiB. Bands give
whole maps' numbers bit for bit, except the last stage's heads: with several threads oneDNN may
round a band's transposed convolution differently (flows within ~1e-5 px); averaging before
resizing rounds differently too (~5e-6 px).
"""

from __future__ import annotations

import functools
import math
from typing import Callable, Iterator, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from .padded_frame import PaddedFrame

STAGE_WIDTH = 90       # channels inside each stage (the HDv3 weights' width)
STAGE_INPUTS = 3 + 3 + 1 + 4  # warped I0, warped I1, fusion logit, flows
REFINE_PAIRS = 4
ALIGNMENT = 32         # input sides must be multiples of this (1/4 scale x 1/4 encoder x 2)
DEFAULT_SCALES = (4, 2, 1)
# Pixels of a stage's 1/4-size features computed at once (row bands, `FlowStage`; 17 rows at
# 1080p). Smaller bands leave the allocator fewer large holes: IFNet's 1080p peak was 300 /
# 296 / 333 / 420 / 557 MiB with 4096 / 8192 / 16384 / 32768 / 65536, in 9.4 / 8.6 / 8.7 /
# 8.2 / 10.6 s on one core (12.8 s with whole maps; 2026-12-01).
BAND_PIXELS = 8192
MIN_BAND_ROWS = 8  # over a residual pair's reach (2 rows), which `FlowStage._refine` relies on


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


def warp_rows(image: Union[torch.Tensor, PaddedFrame], flow: torch.Tensor, first: int,
              mode: str = "bilinear") -> torch.Tensor:
    """`backward_warp` of a band of output rows. A `PaddedFrame` gives only the rows the band's
    flows reach, as float32 (the frame is never converted or padded whole)."""
    if isinstance(image, torch.Tensor):
        return backward_warp(image, flow, first, mode)
    height = image.height
    reach = flow[:, 1] + torch.arange(first, first + flow.shape[-2], dtype=flow.dtype,
                                      device=flow.device).view(1, -1, 1)
    low, high = float(reach.min()), float(reach.max())
    if not (math.isfinite(low) and math.isfinite(high)):
        low, high = 0.0, float(height - 1)
    # bilinear reads floor(y) and floor(y) + 1 (bicubic one more each side); positions
    # outside the frame read its edge
    margin = 1 if mode == "bicubic" else 0
    top = min(max(math.floor(low) - margin, 0), height - 1)
    bottom = min(max(math.floor(high) + 2 + margin, top + 1), height)
    return backward_warp(image.block(top, bottom), flow, first - top, mode)


def _resize(x: torch.Tensor, factor: float) -> torch.Tensor:
    return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False,
                         recompute_scale_factor=False)


RowReader = Callable[[int, int], torch.Tensor]  # (top, bottom) -> rows [top, bottom) of a map


def _conv_rows(conv: nn.Conv2d, read: RowReader, first: int, stop: int, in_height: int) -> torch.Tensor:
    """Rows [first, stop) of conv(input), from only the input rows they need (zeros stand
    for the padding above and below the input, `in_height` rows tall)."""
    (kernel, _), (stride, _), (pad, pad_x) = conv.kernel_size, conv.stride, conv.padding
    top, bottom = stride * first - pad, stride * (stop - 1) - pad + kernel
    rows = read(max(top, 0), min(bottom, in_height))
    if top < 0 or bottom > in_height:
        rows = F.pad(rows, (0, 0, max(0, -top), max(0, bottom - in_height)))
    return F.conv2d(rows, conv.weight, conv.bias, conv.stride, (0, pad_x))


def _transposed_rows(conv: nn.ConvTranspose2d, read: RowReader, first: int, stop: int,
                     in_height: int) -> torch.Tensor:
    """Rows [first, stop) of conv(input) for a transposed convolution, from only the input
    rows that reach them (output row o gets input row i through kernel row o + pad - stride i)."""
    (kernel, _), (stride, _), (pad, pad_x) = conv.kernel_size, conv.stride, conv.padding
    top = max(-((kernel - 1 - pad - first) // stride), 0)  # ceil((first + pad - kernel + 1) / stride)
    bottom = min((stop - 1 + pad) // stride + 1, in_height)
    out = F.conv_transpose2d(read(top, bottom), conv.weight, conv.bias, conv.stride, (0, pad_x))
    skip = first - (stride * top - pad)  # out's row 0 is the whole output's row stride * top - pad
    return out[..., skip:skip + stop - first, :]


def _bands(height: int, width: int) -> List[Tuple[int, int]]:
    """(top, bottom) row bands of a `width`-wide map, about `BAND_PIXELS` each."""
    rows = max(MIN_BAND_ROWS, BAND_PIXELS // width)
    return [(top, min(top + rows, height)) for top in range(0, height, rows)]


def _slice_rows(x: torch.Tensor, top: int, bottom: int) -> torch.Tensor:
    return x[..., top:bottom, :]


def _for_heads(features: torch.Tensor) -> torch.Tensor:
    """Features channels-last, the layout oneDNN's transposed convolutions work in: the heads
    then make no reordered copies of their inputs and outputs (the same numbers)."""
    return features.contiguous(memory_format=torch.channels_last)


def _heads_rows(features: torch.Tensor, top: int, bottom: int) -> torch.Tensor:
    return _for_heads(features[..., top:bottom, :])


class ConvPReLU(nn.Module):
    """3x3 convolution (optionally strided) and a per-channel PReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, stride, 1)
        self.act = nn.PReLU(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x))

    def rows(self, read: RowReader, first: int, stop: int, in_height: int) -> torch.Tensor:
        """forward(input)[..., first:stop, :], reading input rows with `read` (the same numbers
        where PyTorch runs both on oneDNN, as it does for inputs over 20,480 values)."""
        return self.act(_conv_rows(self.conv, read, first, stop, in_height))


class UpsamplingHead(nn.Module):
    """Two x2 transposed convolutions (PReLU between): features at 1/4 -> `out_channels` at 1/1."""

    def __init__(self, width: int, out_channels: int):
        super().__init__()
        self.up = nn.ConvTranspose2d(width, width // 2, 4, 2, 1)
        self.act = nn.PReLU(width // 2)
        self.out = nn.ConvTranspose2d(width // 2, out_channels, 4, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.act(self.up(x)))

    def rows(self, read: RowReader, first: int, stop: int, in_height: int) -> torch.Tensor:
        """forward(input)[..., first:stop, :], reading input rows with `read` (the same up to
        rounding: oneDNN may split a band's transposed convolutions over threads differently)."""
        def read_up(top: int, bottom: int) -> torch.Tensor:
            return self.act(_transposed_rows(self.up, read, top, bottom, in_height))
        return _transposed_rows(self.out, read_up, first, stop, 2 * in_height)


Frame = Union[torch.Tensor, PaddedFrame]


class StageInputs:
    """One time direction's stage inputs at full size, made when read: frame a and frame b
    warped by their flows (unwarped before the first stage), the fusion logit (negated for
    the backward direction) and the flows (swapped for it). Never all whole at once; frames
    that are `PaddedFrame`s are read a band of rows at a time too."""

    def __init__(self, frames: Tuple[Frame, Frame], flows: torch.Tensor, logit: torch.Tensor,
                 backward: bool, warp: bool):
        first, second = (1, 0) if backward else (0, 1)
        self.frames = (frames[first], frames[second])
        self.frame_flows = (flows[:, 2 * first:2 * first + 2], flows[:, 2 * second:2 * second + 2])
        self.logit, self.backward, self.warp = logit, backward, warp
        self.size = tuple(flows.shape[-2:])

    def _warped(self, which: int, top: int, bottom: int) -> torch.Tensor:
        frame = self.frames[which]
        if not self.warp:
            return frame.block(top, bottom) if isinstance(frame, PaddedFrame) else frame[..., top:bottom, :]
        return warp_rows(frame, self.frame_flows[which][..., top:bottom, :], top)

    def _logit(self, top: int, bottom: int) -> torch.Tensor:
        rows = self.logit[..., top:bottom, :]
        return -rows if self.backward else rows

    def rows(self, top: int, bottom: int) -> torch.Tensor:
        """[B, 11, bottom - top, W]: all inputs, rows [top, bottom)."""
        return torch.cat([self._warped(0, top, bottom), self._warped(1, top, bottom), self._logit(top, bottom),
                          *(flow[..., top:bottom, :] for flow in self.frame_flows)], dim=1)

    def resized(self, scale: int) -> torch.Tensor:
        """[B, 11, H / scale, W / scale]: all inputs resized to a coarse stage's scale (flow
        vectors scaled with the size), made from a band of full-size rows at a time. The same
        numbers as resizing whole maps: bilinear halving or quartering reads each output row
        from two input rows inside its own band of `scale` rows."""
        batch, height, width = self.logit.shape[0], *self.size
        out = self.logit.new_empty(batch, STAGE_INPUTS, height // scale, width // scale)
        rows = max(1, 16 * BAND_PIXELS // width // scale)  # output rows per band
        for top in range(0, height // scale, rows):
            bottom = min(top + rows, height // scale)
            out[..., top:bottom, :] = _resize(self.rows(scale * top, scale * bottom), 1.0 / scale)
        out[:, 7:].div_(scale)
        return out


class FlowStage(nn.Module):
    """One coarse-to-fine stage: one direction's `StageInputs` -> (flow update, logit update).

    The encoder and the refinement run in row bands (`_bands`), each output row from the
    input rows it needs with the same zero padding at the edges (the same numbers as whole
    maps), so that neither the concatenated inputs nor the encoder's 45-channel half-size
    map is ever whole: only the 1/4-size features are. The heads run on whole maps
    (`forward`) or, at full size, in bands too (`decode_rows`).
    """

    def __init__(self, in_channels: int = STAGE_INPUTS, width: int = STAGE_WIDTH):
        super().__init__()
        self.encode = nn.Sequential(ConvPReLU(in_channels, width // 2, 2), ConvPReLU(width // 2, width, 2))
        self.refine = nn.ModuleList(nn.Sequential(ConvPReLU(width, width), ConvPReLU(width, width))
                                    for _ in range(REFINE_PAIRS))
        self.flow_head = UpsamplingHead(width, 4)
        self.logit_head = UpsamplingHead(width, 1)

    def forward(self, inputs: StageInputs, scale: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """(flow update [B, 4, H / scale, W / scale] in pixels of that size, logit update
        [B, 1, ...]): the heads run on whole maps, the answer stays at the stage's scale
        (`_symmetric_update` brings both directions' average to full size once)."""
        features = _for_heads(self.features(inputs, scale))
        return self.flow_head(features).contiguous(), self.logit_head(features).contiguous()

    def features(self, inputs: StageInputs, scale: int) -> torch.Tensor:
        """The encoded and refined features [B, width, H / (4 scale), W / (4 scale)] (NCHW)."""
        height, width = inputs.size
        read = inputs.rows
        if scale != 1:  # the stage works at 1/scale
            resized = inputs.resized(scale)
            height, width = resized.shape[-2:]
            read = functools.partial(_slice_rows, resized)
        return self._refine(self._encode(read, height, width))

    def decode_rows(self, features: torch.Tensor) -> Iterator[Tuple[int, int, torch.Tensor, torch.Tensor]]:
        """Yield (top, bottom, flow update rows, logit update rows) of a full-size stage
        (scale 1) band by band; one band is the whole maps (then bit for bit `forward`'s)."""
        height, width = features.shape[-2:]
        bands = _bands(height, width)
        if len(bands) == 1:
            features = _for_heads(features)
            yield 0, 4 * height, self.flow_head(features).contiguous(), self.logit_head(features).contiguous()
            return
        read = functools.partial(_heads_rows, features)
        for top, bottom in bands:
            yield (4 * top, 4 * bottom, self.flow_head.rows(read, 4 * top, 4 * bottom, height),
                   self.logit_head.rows(read, 4 * top, 4 * bottom, height))

    def _encode(self, read: RowReader, height: int, width: int) -> torch.Tensor:
        """The two stride-2 layers, band by band: inputs at 1/1 -> features at 1/4."""
        halve, quarter = self.encode
        read_half = functools.partial(halve.rows, read, in_height=height)
        features = None
        for top, bottom in _bands(height // 4, width // 4):
            rows = quarter.rows(read_half, top, bottom, height // 2)
            if features is None:
                features = rows.new_empty(*rows.shape[:2], height // 4, width // 4)
            features[..., top:bottom, :] = rows
        return features

    def _refine(self, features: torch.Tensor) -> torch.Tensor:
        """features + pair(features) for each residual pair, in place, band by band. A band
        reads its neighbours' edge rows, so its new rows are written once the next band is done."""
        height, width = features.shape[-2:]
        for first_layer, second_layer in self.refine:
            read_first = functools.partial(first_layer.rows, functools.partial(_slice_rows, features),
                                           in_height=height)
            pending = None
            for top, bottom in _bands(height, width):
                new_rows = features[..., top:bottom, :] + second_layer.rows(read_first, top, bottom, height)
                if pending is not None:
                    features[..., pending[0]:top, :] = pending[1]
                pending = (top, new_rows)
            features[..., pending[0]:, :] = pending[1]
        return features


def _average_answers_(forward: Tuple[torch.Tensor, torch.Tensor], backward: Tuple[torch.Tensor, torch.Tensor]
                      ) -> Tuple[torch.Tensor, torch.Tensor]:
    """(forward flow + backward flow with its flows swapped back) / 2 and (forward logit -
    backward logit) / 2, written into the forward tensors and returned."""
    (forward_flow, forward_logit), (backward_flow, backward_logit) = forward, backward
    forward_flow[:, :2] += backward_flow[:, 2:]
    forward_flow[:, 2:] += backward_flow[:, :2]
    return forward_flow.div_(2), forward_logit.sub_(backward_logit).div_(2)


def _symmetric_update(stage: FlowStage, scale: int, directions: Sequence[StageInputs],
                      flows: torch.Tensor, logit: torch.Tensor) -> None:
    """Add the stage's answer, averaged over both time directions, to flows and logit. The
    directions run one after the other (half the memory of one batch of two) and are averaged
    at the stage's scale, then resized once: resizing is linear, so this is the average of the
    resized answers up to rounding, without two full-size answers held at once."""
    forward_answer = stage(directions[0], scale)
    average_flow, average_logit = _average_answers_(forward_answer, stage(directions[1], scale))
    if scale != 1:
        average_flow, average_logit = _resize(average_flow, float(scale)).mul_(scale), _resize(average_logit, float(scale))
    flows += average_flow
    logit += average_logit


def _symmetric_update_in_bands(stage: FlowStage, directions: Sequence[StageInputs], flows: torch.Tensor,
                               logit: torch.Tensor) -> None:
    """`_symmetric_update` of a full-size last stage with its heads in row bands: the backward
    answer is added band by band (its inputs, which read the flows, are encoded by then)."""
    forward_flow, forward_logit = torch.empty_like(flows), torch.empty_like(logit)
    for top, bottom, flow_rows, logit_rows in stage.decode_rows(stage.features(directions[0], 1)):
        forward_flow[..., top:bottom, :], forward_logit[..., top:bottom, :] = flow_rows, logit_rows
    for top, bottom, flow_rows, logit_rows in stage.decode_rows(stage.features(directions[1], 1)):
        rows = slice(top, bottom)
        average_flow, average_logit = _average_answers_((forward_flow[..., rows, :], forward_logit[..., rows, :]),
                                                        (flow_rows, logit_rows))
        flows[..., rows, :] += average_flow
        logit[..., rows, :] += average_logit


class IFNet(nn.Module):
    """Midpoint flows and fusion logit of two frames (see the module docstring)."""

    def __init__(self, stages: int = len(DEFAULT_SCALES), width: int = STAGE_WIDTH):
        super().__init__()
        self.stages = nn.ModuleList(FlowStage(STAGE_INPUTS, width) for _ in range(stages))

    @torch.no_grad()
    def forward(self, frame0: Frame, frame1: Frame, scales: Sequence[float] = DEFAULT_SCALES,
                out: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """Frames [B, 3, H, W] in [0, 1] (tensors, or `PaddedFrame`s read a band at a time),
        sides multiples of `ALIGNMENT` x max(scales) / 4.

        Returns (flows [B, 4, H, W], fusion logit [B, 1, H, W]): channels 0-3 and 4 of one
        [B, 5, H, W] map, `out` when given (zeroed here), so that a caller can turn them into
        its own layout in place. Inference only (no autograd): the stages fill the map and
        their answers are added in place.
        """
        if len(scales) != len(self.stages):
            raise ValueError(f"IFNet has {len(self.stages)} stages; got {len(scales)} scales")
        shape = (frame0.shape[0], 5, *frame0.shape[-2:])
        if out is None:
            out = torch.zeros(shape, dtype=frame0.dtype, device=frame0.device)
        elif tuple(out.shape) != shape:
            raise ValueError(f"IFNet's out map is {tuple(out.shape)}, expected {shape}")
        else:
            out.zero_()
        flows, logit = out[:, :4], out[:, 4:]
        for index, (stage, scale) in enumerate(zip(self.stages, scales)):
            directions = [StageInputs((frame0, frame1), flows, logit, backward, warp=index > 0)
                          for backward in (False, True)]
            # the heads' whole maps are the largest at full size; in bands they round differently
            # (~1e-6, several threads), so only the last stage, which no stage amplifies, is banded
            if index + 1 == len(self.stages) and scale == 1:
                _symmetric_update_in_bands(stage, directions, flows, logit)
            else:
                _symmetric_update(stage, scale, directions, flows, logit)
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
