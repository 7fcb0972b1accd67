"""Where kornia does the work (warp, per-sample blur, SSIM, grey), it gives what the formulas say:
each product function against a reference written out here (per-pixel bilinear, an explicit
Gaussian kernel, the SSIM formula with a 2-D window, BT.601 weights)."""

import math

import pytest
import torch
import torch.nn.functional as F

from hifi_core.flow_base import warp_average
from hifi_core.ifnet import backward_warp
from hifi_core.metrics import ssim
from hifi_core.scenes import thumbnail
from hifi_core.training.condition import _gaussian_blur


def bilinear_border(image: torch.Tensor, x: float, y: float) -> torch.Tensor:
    """image [C, H, W] at (x, y) in pixels, bilinear, the coordinate clamped to the image (border)."""
    _, h, w = image.shape
    x, y = min(max(x, 0.0), w - 1.0), min(max(y, 0.0), h - 1.0)
    x0, y0 = int(math.floor(x)), int(math.floor(y))
    x1, y1 = min(x0 + 1, w - 1), min(y0 + 1, h - 1)
    ax, ay = x - x0, y - y0
    return ((1 - ay) * ((1 - ax) * image[:, y0, x0] + ax * image[:, y0, x1])
            + ay * ((1 - ax) * image[:, y1, x0] + ax * image[:, y1, x1]))


def reference_warp(image: torch.Tensor, flow: torch.Tensor, first_row: int = 0) -> torch.Tensor:
    """out(x) = image(x + flow(x)) pixel by pixel, rows from first_row."""
    out = torch.empty(image.shape[0], image.shape[1], flow.shape[-2], flow.shape[-1], dtype=image.dtype)
    for b in range(image.shape[0]):
        for row in range(flow.shape[-2]):
            for col in range(flow.shape[-1]):
                dx, dy = float(flow[b, 0, row, col]), float(flow[b, 1, row, col])
                out[b, :, row, col] = bilinear_border(image[b], col + dx, first_row + row + dy)
    return out


def flows_and_image(seed: int = 0, height: int = 6, width: int = 9):
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(2, 3, height, width, generator=g, dtype=torch.float64)
    flow = (torch.rand(2, 2, height, width, generator=g, dtype=torch.float64) - 0.5) * 8  # leaves the frame
    return image, flow


@pytest.mark.parametrize("dtype,tolerance", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_backward_warp_is_bilinear_with_edges_replicated(dtype, tolerance):
    image, flow = flows_and_image()
    got = backward_warp(image.to(dtype), flow.to(dtype))
    assert got.dtype == dtype
    assert torch.allclose(got.double(), reference_warp(image, flow), atol=tolerance, rtol=0)


def test_a_band_of_the_warp_is_those_rows_of_the_whole_warp():
    image, flow = flows_and_image(1)
    band = backward_warp(image, flow[..., 2:5, :], first_row=2)
    assert torch.allclose(band, reference_warp(image, flow[..., 2:5, :], first_row=2), atol=1e-12, rtol=0)
    assert torch.equal(band, backward_warp(image, flow)[..., 2:5, :])


def test_other_sampling_modes_reach_grid_sample():
    image, flow = flows_and_image(2)
    h, w = image.shape[-2:]
    ys, xs = torch.meshgrid(torch.arange(h, dtype=image.dtype), torch.arange(w, dtype=image.dtype), indexing="ij")
    grid = torch.stack([(xs + flow[:, 0]) * 2 / (w - 1) - 1, (ys + flow[:, 1]) * 2 / (h - 1) - 1], dim=-1)
    want = F.grid_sample(image, grid, mode="bicubic", padding_mode="border", align_corners=True)
    assert torch.allclose(backward_warp(image, flow, mode="bicubic"), want, atol=1e-12, rtol=0)


def test_warp_average_in_bands_averages_the_per_pixel_warps():
    image, flow = flows_and_image(3, height=7)
    frame0, frame2 = image[:1].float(), image[1:].float()
    flows = torch.cat([flow[:1], -flow[:1]], dim=1).float()  # flows are float32 (resize_flows)
    got = warp_average(frame0, frame2, flows, 0.25, band_rows=3, still_px=None)
    want = 0.75 * reference_warp(frame0, flows[:, :2]) + 0.25 * reference_warp(frame2, flows[:, 2:])
    assert torch.allclose(got, want, atol=1e-5, rtol=0)


def reference_blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """7x7 Gaussian per sample from its formula, edges replicated, summed tap by tap."""
    out = torch.zeros_like(x)
    padded = F.pad(x, (3, 3, 3, 3), mode="replicate")
    h, w = x.shape[-2:]
    for b, s in enumerate(sigma.tolist()):
        taps = torch.tensor([math.exp(-k * k / (2 * s * s)) if s > 0 else float(k == 0) for k in range(-3, 4)],
                            dtype=torch.float64)
        taps = taps / taps.sum()
        for i in range(7):
            for j in range(7):
                out[b] += float(taps[i] * taps[j]) * padded[b, :, i:i + h, j:j + w]
    return out


@pytest.mark.parametrize("dtype,tolerance", [(torch.float64, 1e-12), (torch.float32, 1e-6)])
def test_per_sample_gaussian_blur_follows_the_formula(dtype, tolerance):
    g = torch.Generator().manual_seed(4)
    x = torch.rand(4, 3, 12, 10, generator=g, dtype=torch.float64)
    sigma = torch.tensor([0.0, 0.3, 0.8, 1.7])  # 0: the sample is left as it is
    got = _gaussian_blur(x.to(dtype), sigma)
    assert got.dtype == dtype
    assert torch.allclose(got.double(), reference_blur(x, sigma.double()), atol=tolerance, rtol=0)
    assert torch.allclose(got[0].double(), x[0], atol=tolerance, rtol=0)


def reference_ssim(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Wang et al. 2004 on 8-bit-rounded frames (0..255): 2-D Gaussian window (sigma 1.5, 11 px or the
    largest odd size that fits), 'valid' filtering, per channel, averaged."""
    p, t = ((x.clamp(0, 1) * 255).round().double() for x in (pred, target))
    size = min(11, *p.shape[-2:])
    size -= 1 - size % 2
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-coords ** 2 / (2 * 1.5 ** 2))
    window = torch.outer(g, g) / g.sum() ** 2
    window = window[None, None].repeat(p.shape[1], 1, 1, 1)
    mean = lambda x: F.conv2d(x, window, groups=p.shape[1])  # noqa: E731
    mu_p, mu_t = mean(p), mean(t)
    var_p, var_t, cov = mean(p * p) - mu_p ** 2, mean(t * t) - mu_t ** 2, mean(p * t) - mu_p * mu_t
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    value = (2 * mu_p * mu_t + c1) * (2 * cov + c2) / ((mu_p ** 2 + mu_t ** 2 + c1) * (var_p + var_t + c2))
    return value.flatten(1).mean(dim=1)


@pytest.mark.parametrize("height,width", [(64, 80), (16, 16), (11, 11), (10, 13), (7, 5), (2, 3), (1, 1)])
def test_ssim_is_the_formula_on_every_frame_size(height, width):
    g = torch.Generator().manual_seed(height * 100 + width)
    clean = torch.rand(2, 3, height, width, generator=g)
    noisy = (clean + 0.1 * torch.randn(clean.shape, generator=g)).clamp(0, 1)
    assert torch.allclose(ssim(noisy, clean), reference_ssim(noisy, clean), atol=1e-12, rtol=0)


def test_thumbnail_grey_uses_bt601_weights():
    frame = torch.rand(3, 20, 30, generator=torch.Generator().manual_seed(5))
    want = 0.299 * frame[0] + 0.587 * frame[1] + 0.114 * frame[2]
    assert torch.allclose(thumbnail(frame), want, atol=1e-6, rtol=0)
