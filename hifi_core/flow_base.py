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
occlusion-aware fusion mask; without it the weight is 1 - tau).
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

from .baselines import dis_tau_flows
from .config import MOTION_BASES
from .motion_base import ifnet_tau_flows, motion_net

Tau = Union[float, Sequence[float], torch.Tensor]

# Motion below about a pixel is under DIS's accuracy: warping there only adds resampling
# blur and flow noise, while the blend is already right. Flows are faded out from 2 px of
# frame-to-frame motion down to 1 px (in the warped level's pixels). On the training clips'
# held-out triplets this gained 0.25 dB on the near-static clip and lost nothing elsewhere.
# RIFE's flows (5 channels) are not faded: on 48 full-resolution validation triplets of the
# eight clips the fade cost its base 0.02 dB at gap 1 (city -0.27, box +0.25; 2026-12-01).
STILL_MOTION_PX = (1.0, 2.0)


# Flows from a coarse cascade level lose small motion: on the held-out validation triplets
# (12, 136x320 to 288x384; scripts/flow_resolution.py) the flow average scored 34.94 dB with
# flows at the frames' own size, 34.67 at 1/2 size, 34.03 at 1/4.
# Above about 1080p DIS gains little and its time and memory grow with the pixels, so the
# estimate is capped there (at 8K: 1/4 size, 0.5 s of DIS).
FLOW_MAX_PIXELS = 1920 * 1088


def _taus(tau: Tau, batch: int) -> torch.Tensor:
    return torch.as_tensor(tau, dtype=torch.float32).detach().cpu().reshape(-1).expand(batch)


def tau_flows(frame0: torch.Tensor, frame2: torch.Tensor, tau: Tau) -> torch.Tensor:
    """DIS flows from tau back to each frame: [B, 4, h, w] float32 on the frames' device.

    Frames are [B, 3, h, w] in [0, 1] (DIS sees them as 8-bit grey; runs on the CPU).
    """
    taus = _taus(tau, frame0.shape[0])
    flows = []
    for a, b, t in zip(frame0, frame2, taus):
        a_np = a.detach().float().cpu().clamp(0, 1).permute(1, 2, 0).numpy()
        b_np = b.detach().float().cpu().clamp(0, 1).permute(1, 2, 0).numpy()
        ft0, ft2 = dis_tau_flows(a_np, b_np, float(t))
        flows.append(torch.from_numpy(np.concatenate([ft0, ft2], axis=2)).permute(2, 0, 1))
    return torch.stack(flows).to(device=frame0.device, dtype=torch.float32)


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
    # vectors scale with the size; a fusion weight channel (RIFE's) does not
    scale = torch.tensor([width / w, height / h] * 2 + [1.0] * (flows.shape[1] - 4), dtype=out.dtype, device=device)
    return out * scale.view(1, -1, 1, 1)


def _backward_warp(image: torch.Tensor, flow: torch.Tensor, first_row: int, mode: str = "bilinear") -> torch.Tensor:
    """Rows [first_row, first_row + flow height) of out(x) = image(x + flow(x)): bilinear
    (as cv2.remap in baselines; `mode`: another grid_sample mode), edges replicated."""
    _, _, h, w = image.shape
    band = flow.shape[-2]
    ys = torch.arange(first_row, first_row + band, dtype=flow.dtype, device=flow.device).view(1, band, 1)
    xs = torch.arange(w, dtype=flow.dtype, device=flow.device).view(1, 1, w)
    grid_x = (xs + flow[:, 0]) * (2.0 / max(w - 1, 1)) - 1.0
    grid_y = (ys + flow[:, 1]) * (2.0 / max(h - 1, 1)) - 1.0
    grid = torch.stack([grid_x, grid_y], dim=-1).to(image.dtype)
    return F.grid_sample(image, grid, mode=mode, padding_mode="border", align_corners=True)


def fade_small_motion(flows: torch.Tensor, still_px: Tuple[float, float] = STILL_MOTION_PX) -> torch.Tensor:
    """Scale [B, 4, h, w] flows by a ramp of the frame-to-frame motion |F_t2 - F_t0|: 0 below
    still_px[0], 1 above still_px[1] (see STILL_MOTION_PX)."""
    low, high = still_px
    motion = (flows[:, 2:4] - flows[:, :2]).norm(dim=1, keepdim=True)
    faded = flows[:, :4] * ((motion - low) / (high - low)).clamp(0.0, 1.0)
    return torch.cat([faded, flows[:, 4:]], dim=1) if flows.shape[1] > 4 else faded


def _warped_bands(frame0: torch.Tensor, frame2: torch.Tensor, flows: torch.Tensor,
                  band_rows: int, still_px: Optional[Tuple[float, float]]):
    """Yield (first, stop, frame0 band warped to tau, frame2 band warped to tau, the band's
    weight of frame0 or None) over the rows."""
    height, width = frame0.shape[-2:]
    for first in range(0, height, band_rows):
        stop = min(height, first + band_rows)
        band = resize_flows(flows, (height, width), rows=(first, stop))
        if still_px is not None and band.shape[1] == 4:  # DIS only: RIFE's flows are sub-pixel right
            band = fade_small_motion(band, still_px)
        weight0 = band[:, 4:5].to(frame0.dtype) if band.shape[1] > 4 else None
        yield (first, stop, _backward_warp(frame0, band[:, :2], first),
               _backward_warp(frame2, band[:, 2:4], first), weight0)


def warp_average(frame0: torch.Tensor, frame2: torch.Tensor, flows: torch.Tensor, tau: Tau,
                 band_rows: int = 256, still_px: Optional[Tuple[float, float]] = STILL_MOTION_PX
                 ) -> torch.Tensor:
    """(1 - tau) * frame0 warped to tau + tau * frame2 warped to tau (with RIFE's flows, its
    fusion weight in place of 1 - tau).

    `flows` may be at any size (a coarser level's): they are resized to the frames' size in
    bands of `band_rows` rows, so the extra memory is a band, not a frame. Near-still motion
    is faded to the blend (`still_px`; None warps every flow as it is).
    """
    t = _taus(tau, frame0.shape[0]).to(device=frame0.device, dtype=frame0.dtype).view(-1, 1, 1, 1)
    out = torch.empty_like(frame0)
    for first, stop, warped0, warped2, weight0 in _warped_bands(frame0, frame2, flows, band_rows, still_px):
        weight0 = 1.0 - t if weight0 is None else weight0
        out[..., first:stop, :] = weight0 * warped0 + (1.0 - weight0) * warped2
    return out


def warp_frames(frame0: torch.Tensor, frame2: torch.Tensor, flows: torch.Tensor,
                band_rows: int = 256, still_px: Optional[Tuple[float, float]] = STILL_MOTION_PX
                ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Both frames warped to tau (the two terms of `warp_average`, same arguments)."""
    out0, out2 = torch.empty_like(frame0), torch.empty_like(frame2)
    for first, stop, warped0, warped2, _ in _warped_bands(frame0, frame2, flows, band_rows, still_px):
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
    5 channels; DIS with one warning when its weights are not set up).
    """
    if base not in MOTION_BASES:
        raise ValueError(f"unknown motion base {base!r}; use one of {MOTION_BASES}")
    factor = flow_downscale or flow_estimation_downscale(*frame0.shape[-2:])
    small0, small2 = (F.avg_pool2d(f, factor) if factor > 1 else f for f in (frame0, frame2))
    net = motion_net(frame0.device) if base == "rife" else None
    if net is not None:
        taus = _taus(tau, frame0.shape[0])
        return choose_per_pair(small0, small2, ifnet_tau_flows(small0, small2, taus, net),
                               tau_flows(small0, small2, tau), taus)
    return tau_flows(small0, small2, tau)


def warp_disagreement(frame0: torch.Tensor, frame2: torch.Tensor, flows: torch.Tensor) -> torch.Tensor:
    """[B] mean |frame0 warped to tau - frame2 warped to tau|: where flows are right the two
    warps show the same picture (occlusions aside)."""
    warped0, warped2 = warp_frames(frame0, frame2, flows)
    return (warped0 - warped2).abs().flatten(1).mean(dim=1)


def choose_per_pair(frame0: torch.Tensor, frame2: torch.Tensor, learned: torch.Tensor,
                    classical: torch.Tensor, taus: torch.Tensor) -> torch.Tensor:
    """Per pair, RIFE's 5-channel flows or DIS's, whichever warps the two frames into closer
    agreement. RIFE's flows lose some large camera pans that DIS follows (a 256-px pan: 19.4
    against 30.2 dB); on real held-out frames the choice scored +0.02 dB over RIFE alone, on
    the synthetic stress set +0.38 (scripts/base_choice.py). A chosen DIS flow is faded at
    small motion as the DIS base is (at the estimation size) and weighs the frames 1 - tau."""
    learned_error = warp_disagreement(frame0, frame2, learned)
    classical_error = warp_disagreement(frame0, frame2, classical)
    use_classical = (classical_error < learned_error).view(-1, 1, 1, 1)
    if not bool(use_classical.any()):
        return learned
    weight0 = (1.0 - taus.to(classical)).view(-1, 1, 1, 1).expand(-1, 1, *classical.shape[-2:])
    as_learned = torch.cat([fade_small_motion(classical), weight0], dim=1)
    return torch.where(use_classical, as_learned, learned)


def flow_average(frame0: torch.Tensor, frame2: torch.Tensor, tau: Tau, flow_downscale: Optional[int] = None,
                 base: str = "flow") -> torch.Tensor:
    """Warped average of frames [B, 3, h, w] in [0, 1] with `estimate_flows`' flows."""
    return warp_average(frame0, frame2, estimate_flows(frame0, frame2, tau, flow_downscale, base), tau)
