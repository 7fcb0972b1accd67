"""Motion-compensated residual base: a flow average, computed once per pair at low cost.

With ``DiffusionConfig.residual_base`` ``"flow"`` (OpenCV DIS) or ``"rife"`` (RIFE's learned
IFNet, `hifi_core.motion_base`) the model corrects an optical-flow interpolation instead of a
frame blend: an untrained model already scores like its flow base, and training only has to
fix where the flow fails (occlusions, large or non-rigid motion).

Cost stays flat with resolution: the flow runs once per pair and tau (`estimate_flows`), on the
frames area-downsampled by the smallest power of two that brings them to at most
`FLOW_MAX_PIXELS` (about 1080p); every cascade level resizes those flows (vectors scaled with
the size) and backward-warps its own frames with them. Layout: frames [B, 3, h, w] in
the caller's value range, flows [B, 4, h, w] = (flow tau->0 x, y, flow tau->2 x, y) in pixels
of that size; RIFE's add a fifth channel, the weight of frame 0's warp in the average (its
occlusion-aware fusion mask; without it the weight is 1 - tau). The ``"rife"`` base mixes two
such 5-channel fields per region (`mix_bases`): [B, 11, h, w] = RIFE's 5, DIS's 5, and the
weight of RIFE's average.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

from .dis_flow import dis_grey_both_ways, grey8, linear_tau_flows
from .allocator import return_freed_memory
from .config import MOTION_BASES
# one warp for both bases (experiments.base_rules swaps this name for a bicubic one)
from .ifnet import warp_rows
from .motion_base import ifnet_tau_flows, motion_net
from .padded_frame import PaddedFrame

Tau = Union[float, Sequence[float], torch.Tensor]

# Motion below about a pixel is under DIS's accuracy: warping there only adds resampling
# blur and flow noise, while the blend is already right. Flows are faded out from 2 px of
# frame-to-frame motion down to 1 px (in the warped level's pixels). On the training clips'
# held-out triplets this gained 0.25 dB on the near-static clip and lost nothing elsewhere.
# RIFE's flows (5 channels) are not faded: on 48 full-resolution validation triplets of the
# eight clips the fade cost its base 0.02 dB at gap 1 (city -0.27, box +0.25; 2026-12-01).
STILL_MOTION_PX = (1.0, 2.0)


# Flows from a coarse cascade level lose small motion: on the held-out validation triplets
# (12, 136x320 to 288x384; experiments/flow_resolution.py) the flow average scored 34.94 dB with
# flows at the frames' own size, 34.67 at 1/2 size, 34.03 at 1/4.
# Above about 1080p DIS gains little and its time and memory grow with the pixels, so the
# estimate is capped there (at 8K: 1/4 size, 0.5 s of DIS).
FLOW_MAX_PIXELS = 1920 * 1088

# The mixture of the two bases weighs each by the other's squared warp disagreement averaged
# over a window this wide (pixels at the estimation size). Tuned on training-range triplets of
# the eight clips (48 per tau; windows of 17/33/65 px and plain instead of squared
# disagreement all within 0.02 dB): against RIFE alone +0.09 dB at tau 1/2 and +0.18 at 1/3,
# where the whole-pair choice it replaced lost 0.12 and 0.08. Squared weights keep a base
# that fails outright (zero flows on a 10-px pan) from leaking into the other's result.
MIX_WINDOW_PX = 33
MIXED_CHANNELS = 11


def _taus(tau: Tau, batch: int) -> torch.Tensor:
    return torch.as_tensor(tau, dtype=torch.float32).detach().cpu().reshape(-1).expand(batch)


# rows per block when making DIS's grey images: a few MB of float32 whatever the frame size
GREY_BAND_ROWS = 64


def grey8_frame(frame: torch.Tensor) -> np.ndarray:
    """[3, h, w] frame in [0, 1] (any float dtype, any layout) -> the uint8 [h, w] grey image
    DIS sees, a band of rows at a time: `dis_flow.grey8` of the whole float32 frame, without
    its frame-sized float32 and uint8 copies."""
    height, width = frame.shape[-2:]
    grey = np.empty((height, width), np.uint8)
    for top in range(0, height, GREY_BAND_ROWS):
        rows = frame[:, top:top + GREY_BAND_ROWS].detach().to("cpu", torch.float32).clamp(0, 1)
        grey[top:top + GREY_BAND_ROWS] = grey8(rows.permute(1, 2, 0).numpy())
    return grey


def tau_flows(frame0: torch.Tensor, frame2: torch.Tensor, tau: Tau) -> torch.Tensor:
    """DIS flows from tau back to each frame: [B, 4, h, w] float32 on the frames' device.

    Frames are [B, 3, h, w] in [0, 1] (DIS sees them as 8-bit grey; runs on the CPU).
    """
    greys0, greys2 = ([grey8_frame(frame) for frame in frames] for frames in (frame0, frame2))
    return grey_tau_flows(greys0, greys2, _taus(tau, frame0.shape[0])).to(device=frame0.device)


def grey_tau_flows(greys0: Sequence[np.ndarray], greys2: Sequence[np.ndarray], taus: torch.Tensor) -> torch.Tensor:
    """`tau_flows` (on the CPU) of frames already made grey by `grey8_frame`: DIS needs no more
    of them, so a caller can let the frames go before DIS's own buffers are made."""
    flows = torch.empty(len(greys0), 4, *greys0[0].shape, dtype=torch.float32)
    for index, (grey0, grey2, t) in enumerate(zip(greys0, greys2, taus)):
        # written straight into the result's channels (numpy views of them)
        linear_tau_flows(*dis_grey_both_ways(grey0, grey2), float(t),
                         out=(flows[index, 0:2].permute(1, 2, 0).numpy(), flows[index, 2:4].permute(1, 2, 0).numpy()))
    return flows


def resize_flows(flows: torch.Tensor, size: Tuple[int, int], rows: Optional[Tuple[int, int]] = None) -> torch.Tensor:
    """Bilinear resize of [B, 4, h, w] flows to `size` (vectors scaled with the size).

    `rows` = (first, stop) returns only those output rows, so a caller can work in bands
    without a frame-sized flow field. Same values as F.interpolate(align_corners=False).
    """
    h, w = flows.shape[-2:]
    height, width = size
    first, stop = rows if rows is not None else (0, height)
    device = flows.device
    # source coordinate of each output pixel centre, normalised for align_corners=False
    ys = ((torch.arange(first, stop, device=device, dtype=torch.float32) + 0.5) * (h / height) - 0.5)
    xs = ((torch.arange(width, device=device, dtype=torch.float32) + 0.5) * (w / width) - 0.5)
    grid_y = ((ys + 0.5) * (2.0 / h) - 1.0).view(1, -1, 1).expand(1, stop - first, width)
    grid_x = ((xs + 0.5) * (2.0 / w) - 1.0).view(1, 1, -1).expand(1, stop - first, width)
    grid = torch.stack([grid_x, grid_y], dim=-1).expand(flows.shape[0], -1, -1, -1)
    out = F.grid_sample(flows, grid, mode="bilinear", padding_mode="border", align_corners=False)
    # vectors scale with the size; weight channels (RIFE's fusion weight, a mixture's) do not
    vectors = [width / w, height / h] * 2
    per_channel = (vectors + [1.0]) * 2 + [1.0] if flows.shape[1] == MIXED_CHANNELS else \
        vectors + [1.0] * (flows.shape[1] - 4)
    scale = torch.tensor(per_channel, dtype=out.dtype, device=device)
    return out * scale.view(1, -1, 1, 1)


def fade_small_motion(flows: torch.Tensor, still_px: Tuple[float, float] = STILL_MOTION_PX) -> torch.Tensor:
    """Scale [B, 4, h, w] flows by a ramp of the frame-to-frame motion |F_t2 - F_t0|: 0 below
    still_px[0], 1 above still_px[1] (see STILL_MOTION_PX)."""
    low, high = still_px
    motion = (flows[:, 2:4] - flows[:, :2]).norm(dim=1, keepdim=True)
    faded = flows[:, :4] * ((motion - low) / (high - low)).clamp(0.0, 1.0)
    return torch.cat([faded, flows[:, 4:]], dim=1) if flows.shape[1] > 4 else faded


def _flow_bands(flows: torch.Tensor, size: Tuple[int, int], band_rows: int,
                rows: Optional[Tuple[int, int]] = None):
    """Yield (first, stop, flows resized to `size` for those rows) over the rows (all, or
    [first, stop) of `rows`)."""
    first_row, stop_row = rows if rows is not None else (0, size[0])
    for first in range(first_row, stop_row, band_rows):
        stop = min(stop_row, first + band_rows)
        yield first, stop, resize_flows(flows, size, rows=(first, stop))


def _warp_band(frame0, frame2, band: torch.Tensor, first: int, still_px: Optional[Tuple[float, float]]):
    """(frame0 warped to tau, frame2 warped to tau, frame0's weight or None) for one band of
    4- or 5-channel flows; frames are tensors or `PaddedFrame`s."""
    if still_px is not None and band.shape[1] == 4:  # DIS only: RIFE's flows are sub-pixel right
        band = fade_small_motion(band, still_px)
    weight0 = band[:, 4:5].to(frame0.dtype) if band.shape[1] > 4 else None
    return warp_rows(frame0, band[:, :2], first), warp_rows(frame2, band[:, 2:4], first), weight0


def warp_average(frame0, frame2, flows: torch.Tensor, tau: Tau, band_rows: int = 256,
                 still_px: Optional[Tuple[float, float]] = STILL_MOTION_PX,
                 rows: Optional[Tuple[int, int]] = None) -> torch.Tensor:
    """(1 - tau) * frame0 warped to tau + tau * frame2 warped to tau (with RIFE's flows, its
    fusion weight in place of 1 - tau; with a mixture, its two averages mixed per pixel).

    `frame0`, `frame2`: [B, 3, h, w] tensors, or `PaddedFrame`s (read a band at a time; the
    result is float32). `flows` may be at any size (a coarser level's): they are resized to
    the frames' size in bands of `band_rows` rows, so the extra memory is a band, not a
    frame. `rows` = (first, stop): only those output rows. Near-still motion is faded to the
    blend (`still_px`; None warps every flow as it is).
    """
    t = _taus(tau, frame0.shape[0]).to(device=frame0.device, dtype=frame0.dtype).view(-1, 1, 1, 1)

    def average(band, first):
        warped0, warped2, weight0 = _warp_band(frame0, frame2, band, first, still_px)
        weight0 = 1.0 - t if weight0 is None else weight0
        return weight0 * warped0 + (1.0 - weight0) * warped2

    first_row, stop_row = rows if rows is not None else (0, frame0.shape[-2])
    out = torch.empty(*frame0.shape[:2], stop_row - first_row, frame0.shape[-1], dtype=frame0.dtype,
                      device=frame0.device)
    for first, stop, band in _flow_bands(flows, frame0.shape[-2:], band_rows, (first_row, stop_row)):
        if band.shape[1] == MIXED_CHANNELS:
            mix = band[:, 10:11].to(frame0.dtype)
            average_rows = mix * average(band[:, :5], first) + (1.0 - mix) * average(band[:, 5:10], first)
        else:
            average_rows = average(band, first)
        out[..., first - first_row:stop - first_row, :] = average_rows
    return out


def warp_frames(frame0: torch.Tensor, frame2: torch.Tensor, flows: torch.Tensor,
                band_rows: int = 256, still_px: Optional[Tuple[float, float]] = STILL_MOTION_PX
                ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Both frames warped to tau (the two terms of `warp_average`, same arguments; a
    mixture's two warps of each frame mixed per pixel)."""
    out0, out2 = torch.empty_like(frame0), torch.empty_like(frame2)
    for first, stop, band in _flow_bands(flows, frame0.shape[-2:], band_rows):
        if band.shape[1] == MIXED_CHANNELS:
            mix = band[:, 10:11].to(frame0.dtype)
            learned0, learned2, _ = _warp_band(frame0, frame2, band[:, :5], first, still_px)
            classical0, classical2, _ = _warp_band(frame0, frame2, band[:, 5:10], first, still_px)
            warped0, warped2 = mix * learned0 + (1 - mix) * classical0, mix * learned2 + (1 - mix) * classical2
        else:
            warped0, warped2, _ = _warp_band(frame0, frame2, band, first, still_px)
        out0[..., first:stop, :], out2[..., first:stop, :] = warped0, warped2
    return out0, out2


def flow_estimation_downscale(height: int, width: int, max_pixels: Optional[int] = None) -> int:
    """The smallest power of two that brings height x width to at most max_pixels
    (default `FLOW_MAX_PIXELS`)."""
    max_pixels = max_pixels or FLOW_MAX_PIXELS
    factor = 1
    while (height // factor) * (width // factor) > max_pixels:
        factor *= 2
    return factor


def estimate_flows(frame0: torch.Tensor, frame2: torch.Tensor, tau: Tau,
                   flow_downscale: Optional[int] = None, base: str = "flow") -> torch.Tensor:
    """Tau-flows of full-size frames [B, 3, H, W] in [0, 1], estimated on the frames
    area-downsampled by `flow_downscale` (default: `flow_estimation_downscale`).

    `base`: ``"flow"`` (DIS, on the CPU) or ``"rife"`` (RIFE's IFNet on the frames' device,
    11 channels, `mix_bases`; DIS with one warning when its weights are not set up).
    """
    if base not in MOTION_BASES:
        raise ValueError(f"unknown motion base {base!r}; use one of {MOTION_BASES}")
    factor = flow_downscale or flow_estimation_downscale(*frame0.shape[-2:])
    net = motion_net(frame0.device) if base == "rife" else None
    if net is None:  # DIS reads unreduced frames in any precision (`grey8_frame`): no float32 copy
        flows = tau_flows(*((frame0, frame2) if factor == 1 else _reduced_frames(frame0, frame2, factor)), tau)
        return_freed_memory()  # DIS's buffers, before the cascade's own
        return flows
    taus = _taus(tau, frame0.shape[0])
    # At most one reduced copy of the frames at a time, let go before the next phase (none at
    # factor 1: RIFE reads the frames a band at a time, `PaddedFrame`); DIS only needs grey
    # images; the mixture reads the frames again.
    motion0, motion2 = (frame0, frame2) if factor == 1 else _reduced_frames(frame0, frame2, factor)
    greys0, greys2 = ([grey8_frame(frame) for frame in frames] for frames in (motion0, motion2))
    learned = ifnet_tau_flows(motion0, motion2, taus, net)
    del motion0, motion2
    return_freed_memory()  # what RIFE freed, so that DIS's buffers do not stack on it
    classical = grey_tau_flows(greys0, greys2, taus).to(learned.device)
    return_freed_memory()  # DIS's buffers, the same for the mixture
    mixed = learned.new_empty(learned.shape[0], MIXED_CHANNELS, *learned.shape[-2:])
    mixed[:, :5], mixed[:, 5:9] = learned, classical
    del learned, classical
    mix_bases(*_mixing_frames(frame0, frame2, factor), mixed[:, :5], mixed[:, 5:9], taus, out=mixed)
    return_freed_memory()  # the mixture's, before the cascade's own
    return mixed


def _mixing_frames(frame0: torch.Tensor, frame2: torch.Tensor, factor: int):
    """What the mixture's warps read: unreduced frames as they are (half-precision ones through
    a `PaddedFrame`, a band of rows at a time), reduced ones as their float32 reductions."""
    if factor == 1:
        return tuple(f if f.dtype == torch.float32 else PaddedFrame(f) for f in (frame0, frame2))
    return _reduced_frames(frame0, frame2, factor)


def _reduced_frames(frame0: torch.Tensor, frame2: torch.Tensor, factor: int):
    """Both frames area-reduced by `factor`, float32 (`PaddedFrame.downsampled`: banded,
    whatever the frames' precision, never a whole float32 copy of a large frame)."""
    return tuple(PaddedFrame(frame).downsampled(factor) for frame in (frame0, frame2))


def disagreement_map(frame0: torch.Tensor, frame2: torch.Tensor, flows: torch.Tensor,
                     band_rows: int = 256) -> torch.Tensor:
    """[B, 1, h, w] |frame0 warped to tau - frame2 warped to tau| (channel mean): where flows
    are right the two warps show the same picture (occlusions aside). Frames are tensors or,
    for 4- and 5-channel flows, `PaddedFrame`s.

    The warps are `warp_frames`' (same numbers), made `band_rows` rows at a time: never whole.
    """
    if flows.shape[1] == MIXED_CHANNELS:  # a mixture's warps are mixed first
        warped0, warped2 = warp_frames(frame0, frame2, flows)
        return (warped0 - warped2).abs().mean(dim=1, keepdim=True)
    out = torch.empty(frame0.shape[0], 1, *frame0.shape[-2:], dtype=frame0.dtype, device=frame0.device)
    for first, stop, band in _flow_bands(flows, frame0.shape[-2:], band_rows):
        warped0, warped2, _ = _warp_band(frame0, frame2, band, first, STILL_MOTION_PX)
        out[..., first:stop, :] = (warped0 - warped2).abs().mean(dim=1, keepdim=True)
    return out


def mix_bases(frame0: torch.Tensor, frame2: torch.Tensor, learned: torch.Tensor,
              classical: torch.Tensor, taus: torch.Tensor, window: int = MIX_WINDOW_PX,
              out: Optional[torch.Tensor] = None) -> torch.Tensor:
    """RIFE's 5-channel flows and DIS's mixed per region: [B, 11, h, w] (see the module doc).

    Each base is weighted by the square of the other's warp disagreement averaged over
    `window` pixels: where one base's warps agree better it dominates, where both do equally
    well their averages are blended (which also averages out their independent errors). RIFE's flows lose
    some large camera pans that DIS follows (a 256-px pan: 19.4 against 30.2 dB). DIS's part
    is faded at small motion as the DIS base is (at the estimation size) and weighs the
    frames 1 - tau.

    Frames may be `PaddedFrame`s (`disagreement_map`). `out`: a [B, 11, h, w] map to fill and
    return instead of a new one; `learned` and `classical` may be its channels 0-4 and 5-8
    (how `estimate_flows` saves their copies).
    """
    if out is None:
        out = learned.new_empty(learned.shape[0], MIXED_CHANNELS, *learned.shape[-2:],
                                dtype=torch.promote_types(learned.dtype, classical.dtype))
    out[:, :5] = learned
    out[:, 5:9] = fade_small_motion(classical)
    out[:, 9:10] = (1.0 - taus.to(classical)).view(-1, 1, 1, 1)
    learned, classical = out[:, :5], out[:, 5:10]
    pad = window // 2

    def local_error(flows):  # a box mean, separable: a 33x33 kernel in one pass cost 0.4 s at 720p
        error = F.pad(disagreement_map(frame0, frame2, flows), (pad, pad, pad, pad), mode="replicate")
        return F.avg_pool2d(F.avg_pool2d(error, (2 * pad + 1, 1), stride=1), (1, 2 * pad + 1), stride=1)

    # inverse-variance weights, the disagreement standing for each estimate's error scale
    learned_var, classical_var = local_error(learned).square(), local_error(classical).square()
    out[:, 10:11] = classical_var / (learned_var + classical_var).clamp_min(1e-12)
    return out


def flow_average(frame0: torch.Tensor, frame2: torch.Tensor, tau: Tau, flow_downscale: Optional[int] = None,
                 base: str = "flow") -> torch.Tensor:
    """Warped average of frames [B, 3, h, w] in [0, 1] with `estimate_flows`' flows."""
    return warp_average(frame0, frame2, estimate_flows(frame0, frame2, tau, flow_downscale, base), tau)
