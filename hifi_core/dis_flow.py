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


def dis_both_ways(frame0: np.ndarray, frame2: np.ndarray, dis=None):
    """Float32 [H, W, 3] (0..1) frames -> (flow 0->2, flow 2->0), each [H, W, 2] in pixels:
    DIS (MEDIUM) on grey 8-bit frames. `dis`: another configured cv2.DISOpticalFlow to use
    instead (experiments/dis_settings.py compares settings)."""
    import cv2

    h, w = frame0.shape[:2]
    # DIS refuses images under 12 px a side; replicate-pad tiny ones (flows keep their pixels)
    pad = ((0, max(0, MIN_DIS_SIDE - h)), (0, max(0, MIN_DIS_SIDE - w)))
    grey = [np.pad(cv2.cvtColor((f * 255.0).round().clip(0, 255).astype(np.uint8), cv2.COLOR_RGB2GRAY),
                   pad, mode="edge") for f in (frame0, frame2)]
    dis = dis or cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return dis.calc(grey[0], grey[1], None)[:h, :w], dis.calc(grey[1], grey[0], None)[:h, :w]


def linear_tau_flows(f02: np.ndarray, f20: np.ndarray, tau: float):
    """(flow tau->0, flow tau->2) from the two frame-to-frame flows, by Super SloMo's
    linear-motion approximation (see the module docstring)."""
    t = float(tau)
    return -(1.0 - t) * t * f02 + t * t * f20, (1.0 - t) ** 2 * f02 - t * (1.0 - t) * f20


def dis_tau_flows(frame0: np.ndarray, frame2: np.ndarray, tau: float, dis=None):
    """Float32 [H, W, 3] (0..1) frames -> (flow tau->0, flow tau->2), each [H, W, 2] in pixels:
    `dis_both_ways` combined by `linear_tau_flows`."""
    return linear_tau_flows(*dis_both_ways(frame0, frame2, dis), tau)
