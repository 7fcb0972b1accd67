"""DIS optical flow: the classical motion base (and the DIS baseline's flows).

Dense DIS flow (OpenCV's MEDIUM preset) on grey 8-bit frames, computed both ways (0->2 and
2->0); the flows from tau back to each frame use the linear-motion approximation of Super
SloMo: F_t0 = -(1-t) t F_02 + t^2 F_20, F_t2 = (1-t)^2 F_02 - t (1-t) F_20. Frames are
float32 numpy arrays [H, W, 3] in [0, 1]; flows [H, W, 2] in pixels.
"""

from __future__ import annotations

import numpy as np

# DIS refuses images under 12 px a side; smaller frames are padded to this
MIN_DIS_SIDE = 16


def grey8(frame: np.ndarray) -> np.ndarray:
    """Float32 [H, W, 3] (0..1) -> the uint8 [H, W] grey image DIS sees."""
    import cv2

    return cv2.cvtColor((frame * 255.0).round().clip(0, 255).astype(np.uint8), cv2.COLOR_RGB2GRAY)


def dis_both_ways(frame0: np.ndarray, frame2: np.ndarray, dis=None):
    """Float32 [H, W, 3] (0..1) frames -> (flow 0->2, flow 2->0), each [H, W, 2] in pixels:
    DIS (MEDIUM) on grey 8-bit frames (`grey8`). `dis`: another configured
    cv2.DISOpticalFlow to use instead (experiments/dis_settings.py compares settings)."""
    return dis_grey_both_ways(grey8(frame0), grey8(frame2), dis)


def dis_grey_both_ways(grey0: np.ndarray, grey2: np.ndarray, dis=None):
    """`dis_both_ways` of frames already made grey (uint8 [H, W], e.g. by `grey8`)."""
    import cv2

    h, w = grey0.shape[:2]
    # DIS refuses images under 12 px a side; replicate-pad tiny ones (flows keep their pixels)
    if h < MIN_DIS_SIDE or w < MIN_DIS_SIDE:
        pad = ((0, max(0, MIN_DIS_SIDE - h)), (0, max(0, MIN_DIS_SIDE - w)))
        grey0, grey2 = (np.pad(g, pad, mode="edge") for g in (grey0, grey2))
    dis = dis or cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return dis.calc(grey0, grey2, None)[:h, :w], dis.calc(grey2, grey0, None)[:h, :w]


def linear_tau_flows(f02: np.ndarray, f20: np.ndarray, tau: float, out=None):
    """(flow tau->0, flow tau->2) from the two frame-to-frame flows, by Super SloMo's
    linear-motion approximation (see the module docstring). `out`: two [H, W, 2] float32
    arrays (views are fine) to write them into instead of new ones; the same numbers."""
    t = float(tau)
    if out is None:
        return -(1.0 - t) * t * f02 + t * t * f20, (1.0 - t) ** 2 * f02 - t * (1.0 - t) * f20
    to0, to2 = out
    np.add(np.multiply(f02, -(1.0 - t) * t, out=to0), t * t * f20, out=to0)
    np.subtract(np.multiply(f02, (1.0 - t) ** 2, out=to2), t * (1.0 - t) * f20, out=to2)
    return to0, to2


def dis_tau_flows(frame0: np.ndarray, frame2: np.ndarray, tau: float, dis=None):
    """Float32 [H, W, 3] (0..1) frames -> (flow tau->0, flow tau->2), each [H, W, 2] in pixels:
    `dis_both_ways` combined by `linear_tau_flows`."""
    return linear_tau_flows(*dis_both_ways(frame0, frame2, dis), tau)
