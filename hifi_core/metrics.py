"""Image quality metrics: PSNR and SSIM on [0, 255]-rounded RGB, computed in torch.

Both metrics first quantise the frames to 8-bit (x -> round(clamp(x, 0, 1) * 255)), so scores
match what a saved PNG would give, then compare in the 0..255 range. SSIM uses an 11x11
Gaussian window (sigma 1.5, 'valid' filtering, Wang et al. 2004 constants K1 = 0.01,
K2 = 0.03), computed per RGB channel and averaged over channels and pixels.

Inputs: float tensors [B, 3, H, W] or [3, H, W] in [0, 1] (same shape). Outputs: a float64
tensor [B] (one value per image) or a 0-d tensor for unbatched inputs. PSNR of identical
images is +inf.
"""

from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F

from .errors import HiFIInputError

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def _prepare(pred: torch.Tensor, target: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, bool]:
    """Validate and quantise to float64 [B, C, H, W] in 0..255; also report 'was unbatched'."""
    if not isinstance(pred, torch.Tensor) or not isinstance(target, torch.Tensor):
        raise HiFIInputError("psnr/ssim need torch tensors [B, 3, H, W] or [3, H, W] in [0, 1]")
    if pred.shape != target.shape:
        raise HiFIInputError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must have "
                             "the same shape")
    unbatched = pred.dim() == 3
    if unbatched:
        pred, target = pred[None], target[None]
    if pred.dim() != 4:
        raise HiFIInputError(f"expected [B, C, H, W] or [C, H, W] frames, got {tuple(pred.shape)}")
    quantise = lambda x: (x.detach().float().clamp(0, 1) * 255.0).round().double()  # noqa: E731
    return quantise(pred), quantise(target), unbatched


def psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB (peak 255) of 8-bit-rounded frames.

    Args:
        pred, target: [B, 3, H, W] or [3, H, W] float in [0, 1].

    Returns:
        [B] float64 (or 0-d for unbatched input); +inf where the rounded frames are identical.
    """
    p, t, unbatched = _prepare(pred, target)
    mse = (p - t).pow(2).flatten(1).mean(dim=1)
    value = 10.0 * torch.log10(255.0 ** 2 / mse)  # mse == 0 gives +inf, as it should
    return value[0] if unbatched else value


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> torch.Tensor:
    """Normalised 2-D Gaussian [size, size] (float64)."""
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2.0
    g = torch.exp(-coords ** 2 / (2 * sigma ** 2))
    g = g / g.sum()
    return g[:, None] * g[None, :]


def ssim(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Structural similarity of 8-bit-rounded frames (Gaussian 11x11, sigma 1.5, per channel, averaged).

    Frames smaller than 11 px use the largest odd window that fits.

    Args:
        pred, target: [B, 3, H, W] or [3, H, W] float in [0, 1].

    Returns:
        [B] float64 in [-1, 1] (1 for identical frames), or 0-d for unbatched input.
    """
    p, t, unbatched = _prepare(pred, target)
    channels = p.shape[1]
    size = min(SSIM_WINDOW, p.shape[-2], p.shape[-1])
    size -= 1 - size % 2  # odd
    window = gaussian_window(size).to(p.device)[None, None].repeat(channels, 1, 1, 1)
    blur = lambda x: F.conv2d(x, window, groups=channels)  # noqa: E731  ('valid' filtering)
    c1, c2 = (SSIM_K1 * 255.0) ** 2, (SSIM_K2 * 255.0) ** 2
    mu_p, mu_t = blur(p), blur(t)
    var_p = blur(p * p) - mu_p ** 2
    var_t = blur(t * t) - mu_t ** 2
    cov = blur(p * t) - mu_p * mu_t
    num = (2 * mu_p * mu_t + c1) * (2 * cov + c2)
    den = (mu_p ** 2 + mu_t ** 2 + c1) * (var_p + var_t + c2)
    value = (num / den).flatten(1).mean(dim=1)
    return value[0] if unbatched else value
