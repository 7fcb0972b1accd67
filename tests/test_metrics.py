"""hifi_core.metrics: PSNR and SSIM against analytic values."""

import math

import pytest
import torch

from hifi_core.errors import HiFIInputError
from hifi_core.metrics import psnr, ssim


def _image(seed=0, shape=(2, 3, 40, 48)):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


def test_identical_images_give_inf_psnr_and_unit_ssim():
    x = _image()
    assert torch.isinf(psnr(x, x)).all()
    assert torch.allclose(ssim(x, x), torch.ones(2, dtype=torch.float64))


@pytest.mark.parametrize("offset", [1, 3, 17])
def test_constant_offset_gives_analytic_psnr(offset):
    x = torch.full((3, 16, 16), 100 / 255.0)
    y = torch.full((3, 16, 16), (100 + offset) / 255.0)
    assert float(psnr(x, y)) == pytest.approx(20 * math.log10(255.0 / offset), abs=1e-9)


def test_constant_images_give_analytic_ssim():
    # variances are zero, so SSIM reduces to the luminance term (2ab + C1) / (a^2 + b^2 + C1)
    a, b = 80.0, 120.0
    x, y = torch.full((3, 16, 16), a / 255), torch.full((3, 16, 16), b / 255)
    c1 = (0.01 * 255) ** 2
    assert float(ssim(x, y)) == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), rel=1e-9)


def test_values_are_rounded_to_8_bit_first():
    codes = torch.randint(0, 255, (3, 16, 16), generator=torch.Generator().manual_seed(1))
    x = codes.float() / 255
    nudged = (codes.float() + 0.4) / 255  # under half a code value: identical after rounding
    assert torch.isinf(psnr(x, nudged))
    assert float(ssim(x, nudged)) == 1.0
    assert float(psnr(x, (codes.float() + 0.6) / 255)) == pytest.approx(20 * math.log10(255.0), abs=1e-9)


def test_ssim_and_psnr_decrease_monotonically_with_noise():
    clean = _image(2, (1, 3, 64, 64))
    noise = torch.randn(clean.shape, generator=torch.Generator().manual_seed(3))
    levels = [0.01, 0.03, 0.1, 0.3]
    s = [float(ssim((clean + n * noise).clamp(0, 1), clean)) for n in levels]
    p = [float(psnr((clean + n * noise).clamp(0, 1), clean)) for n in levels]
    assert all(a > b for a, b in zip(s, s[1:])), s
    assert all(a > b for a, b in zip(p, p[1:])), p
    assert s[0] > 0.99 and s[-1] < 0.8


def test_batched_values_match_per_image_values():
    a, b = _image(4), _image(5)
    batched = ssim(a, b)
    assert batched.shape == (2,)
    for i in range(2):
        assert float(ssim(a[i], b[i])) == pytest.approx(float(batched[i]), rel=1e-12)
        assert float(psnr(a[i], b[i])) == pytest.approx(float(psnr(a, b)[i]), rel=1e-12)


def test_shape_mismatch_is_a_clear_error():
    with pytest.raises(HiFIInputError, match="same shape"):
        psnr(torch.rand(3, 8, 8), torch.rand(3, 8, 9))
