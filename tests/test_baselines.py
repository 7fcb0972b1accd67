"""hifi_core.baselines: frame blend and DIS optical-flow interpolation."""

import numpy as np
import pytest
import torch

from hifi_core.baselines import blend_interpolate, dis_flow_interpolate
from hifi_core.errors import HiFIInputError
from hifi_core.metrics import psnr

pytest.importorskip("cv2")


def _pattern(shift: float, size=(96, 128)) -> torch.Tensor:
    """A smooth textured pattern translated horizontally by `shift` px: [3, H, W]."""
    h, w = size
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                            indexing="ij")
    x = xx - shift
    r = 0.5 + 0.25 * torch.sin(x / 5.0) + 0.2 * torch.cos(yy / 7.0 + x / 11.0)
    g = 0.5 + 0.3 * torch.sin(yy / 6.0 - x / 9.0)
    b = 0.5 + 0.3 * torch.cos(x / 4.0 + yy / 13.0)
    return torch.stack([r, g, b]).clamp(0, 1)


def test_blend_is_the_tau_weighted_average():
    a, b = torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8)
    assert torch.allclose(blend_interpolate(a, b, 0.25), 0.75 * a + 0.25 * b)


def test_dis_beats_blend_on_translation_at_the_midpoint():
    f0, f2, mid = _pattern(0.0), _pattern(8.0), _pattern(4.0)
    crop = (slice(None), slice(8, -8), slice(16, -16))  # ignore the borders that enter the frame
    blend = float(psnr(blend_interpolate(f0, f2, 0.5)[crop], mid[crop]))
    dis = float(psnr(dis_flow_interpolate(f0, f2, 0.5)[crop], mid[crop]))
    assert dis > blend + 8.0, (dis, blend)


def test_dis_keeps_layout_and_range():
    f0, f2 = _pattern(0.0)[None], _pattern(3.0)[None]
    out = dis_flow_interpolate(f0, f2, 0.3)
    assert out.shape == f0.shape and out.dtype == torch.float32
    assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0
    assert dis_flow_interpolate(f0[0], f2[0], 0.3).shape == f0[0].shape


def test_dis_of_identical_frames_is_that_frame():
    f = _pattern(0.0)
    out = dis_flow_interpolate(f, f, 0.5)
    assert float((out - f).abs().max()) < 2.5 / 255


def test_bad_inputs_are_named():
    with pytest.raises(HiFIInputError, match="tau"):
        blend_interpolate(torch.rand(3, 8, 8), torch.rand(3, 8, 8), 1.5)
    with pytest.raises(HiFIInputError, match="same size"):
        dis_flow_interpolate(torch.rand(3, 8, 8), torch.rand(3, 8, 9), 0.5)


class _ConstantFlow:
    """A stand-in for a configured cv2 DIS object: +shift px from frame0 to frame2, -shift back."""

    def __init__(self, shift: float):
        self.shift, self.calls = shift, 0

    def calc(self, first, second, flow):
        self.calls += 1
        sign = 1.0 if self.calls % 2 else -1.0  # called 0->2, then 2->0
        return np.full(first.shape + (2,), sign * self.shift, dtype=np.float32)


def test_tau_flows_use_the_given_dis_and_the_linear_motion_split():
    # uniform motion d from frame0 to frame2: the flow from tau back to frame0 is -tau * d and
    # to frame2 is (1 - tau) * d, whatever tau
    from hifi_core.dis_flow import dis_tau_flows

    frame = _pattern(0.0).permute(1, 2, 0).numpy()
    for tau in (0.25, 0.5, 0.8):
        dis = _ConstantFlow(6.0)
        ft0, ft2 = dis_tau_flows(frame, frame, tau, dis)
        assert dis.calls == 2
        assert abs(float(ft0.mean()) + tau * 6.0) < 1e-5 and abs(float(ft2.mean()) - (1 - tau) * 6.0) < 1e-5
