"""Classical interpolation baselines: frame blend and OpenCV DIS optical flow.

Frames: float [B, 3, H, W] or [3, H, W] RGB in [0, 1]; results have the input's layout and
are float32 in [0, 1] on the CPU. tau in [0, 1]: 0 is frame0, 1 is frame2.

`dis_flow_interpolate` is the optical-flow reference the model must beat: the tau-flows of
`hifi_core.dis_flow` (DIS both ways, Super SloMo's linear motion); each frame is
backward-warped to tau with cv2.remap (bilinear, border replicate) and the two warps are
averaged with weights (1 - tau, tau).
"""

from __future__ import annotations

import numpy as np
import torch

from .dis_flow import dis_tau_flows
from .errors import HiFIInputError


def _check(frame0: torch.Tensor, frame2: torch.Tensor, tau: float) -> None:
    if not isinstance(frame0, torch.Tensor) or not isinstance(frame2, torch.Tensor):
        raise HiFIInputError("frame0 and frame2 must be torch tensors [B, 3, H, W] or [3, H, W]")
    if frame0.shape != frame2.shape or frame0.dim() not in (3, 4) or frame0.shape[-3] != 3:
        raise HiFIInputError(f"frame0 {tuple(frame0.shape)} and frame2 {tuple(frame2.shape)} must "
                             "both be [B, 3, H, W] or [3, H, W] RGB of the same size")
    if not 0.0 <= float(tau) <= 1.0:
        raise HiFIInputError(f"tau={tau} must be in [0, 1]")


def blend_interpolate(frame0: torch.Tensor, frame2: torch.Tensor, tau: float = 0.5) -> torch.Tensor:
    """(1 - tau) * frame0 + tau * frame2."""
    _check(frame0, frame2, tau)
    tau = float(tau)
    return ((1.0 - tau) * frame0.detach().float().cpu() + tau * frame2.detach().float().cpu()).clamp(0, 1)


def _warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Backward warp: out(x) = image(x + flow(x))."""
    import cv2

    h, w = flow.shape[:2]
    grid_x, grid_y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(image, grid_x + flow[..., 0], grid_y + flow[..., 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


def dis_flow_pair(frame0: np.ndarray, frame2: np.ndarray, tau: float) -> np.ndarray:
    """One pair of float32 [H, W, 3] (0..1) arrays -> the DIS interpolation at tau (same layout)."""
    ft0, ft2 = dis_tau_flows(frame0, frame2, tau)
    t = float(tau)
    return (1.0 - t) * _warp(frame0, ft0) + t * _warp(frame2, ft2)


def dis_flow_interpolate(frame0: torch.Tensor, frame2: torch.Tensor, tau: float = 0.5) -> torch.Tensor:
    """DIS optical-flow interpolation (see module docstring); same layout as the inputs."""
    _check(frame0, frame2, tau)
    unbatched = frame0.dim() == 3
    f0 = frame0[None] if unbatched else frame0
    f2 = frame2[None] if unbatched else frame2
    out = []
    for a, b in zip(f0, f2):
        a_np = a.detach().float().cpu().clamp(0, 1).permute(1, 2, 0).contiguous().numpy()
        b_np = b.detach().float().cpu().clamp(0, 1).permute(1, 2, 0).contiguous().numpy()
        out.append(torch.from_numpy(np.ascontiguousarray(dis_flow_pair(a_np, b_np, tau))).permute(2, 0, 1))
    result = torch.stack(out).clamp(0, 1).float()
    return result[0] if unbatched else result
