"""Variance-preserving continuous-time diffusion: schedule, v-parameterisation, DDIM.

Conventions:
- Time t in [0, 1]; t = 1 is pure noise. z_t = alpha_t * x + sigma_t * eps with
  alpha_t**2 = sigmoid(logsnr_t), sigma_t**2 = sigmoid(-logsnr_t).
- Cosine schedule alpha_t = cos(pi t / 2), with t rescaled so logsnr stays in
  [logsnr_min, logsnr_max] (finite at both ends).
- v = alpha * eps - sigma * x; x = alpha * z - sigma * v; eps = sigma * z + alpha * v.
- Images in "model space" are in [-1, 1] (`to_model_space`).

The sampler is a top-level function (k-diffusion style): it takes any `predict_v(z, logsnr)`
callable, so the patch cascade can hand it a MultiDiffusion-merged full-frame prediction.
"""

from __future__ import annotations

import math
from typing import Callable, Optional, Tuple

import torch

from .errors import HiFIInputError
from .progress import CancelCheck, check_cancel


def to_model_space(images: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    """[0, 1] -> [-1, 1]; `inplace` overwrites images (frame-sized buffers at 8K)."""
    return images.mul_(2.0).sub_(1.0) if inplace else images * 2.0 - 1.0


def from_model_space(images: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    """[-1, 1] -> [0, 1]; `inplace` overwrites images."""
    return images.add_(1.0).mul_(0.5) if inplace else (images + 1.0) * 0.5


def logsnr_schedule(t: torch.Tensor, logsnr_min: float = -20.0, logsnr_max: float = 20.0) -> torch.Tensor:
    """Clipped cosine schedule: t in [0, 1] -> log-SNR in [logsnr_max, logsnr_min]."""
    t_min = math.atan(math.exp(-0.5 * logsnr_max))
    t_max = math.atan(math.exp(-0.5 * logsnr_min))
    t = torch.as_tensor(t, dtype=torch.float64)
    return (-2.0 * torch.log(torch.tan(t_min + t * (t_max - t_min)))).float()


def alpha_sigma(logsnr: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Signal and noise scales for a log-SNR (alpha**2 + sigma**2 = 1)."""
    return torch.sigmoid(logsnr).sqrt(), torch.sigmoid(-logsnr).sqrt()


def q_sample(x: torch.Tensor, eps: torch.Tensor, alpha, sigma) -> torch.Tensor:
    """Noise clean data x to z_t."""
    return alpha * x + sigma * eps


def v_from_x_eps(x: torch.Tensor, eps: torch.Tensor, alpha, sigma) -> torch.Tensor:
    return alpha * eps - sigma * x


def x_from_v(z: torch.Tensor, v: torch.Tensor, alpha, sigma) -> torch.Tensor:
    # alpha * z - sigma * v with one new buffer instead of three (frame-sized when sampling)
    return (alpha * z).addcmul_(v, torch.as_tensor(sigma, dtype=v.dtype, device=v.device), value=-1.0)


def eps_from_v(z: torch.Tensor, v: torch.Tensor, alpha, sigma) -> torch.Tensor:
    return sigma * z + alpha * v


def ddim_times(steps: int) -> torch.Tensor:
    """steps + 1 times from exactly 1 down to 0."""
    if steps < 1:
        raise HiFIInputError(f"steps={steps} must be at least 1")
    return torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)


def ddim_sample(
    predict_v: Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor],
    noise: torch.Tensor,
    *,
    steps: int,
    eta: float = 0.0,
    logsnr_min: float = -20.0,
    logsnr_max: float = 20.0,
    generator: Optional[torch.Generator] = None,
    clamp_x: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
    callback: Optional[Callable[[int, int, torch.Tensor], None]] = None,
    cancel: Optional[CancelCheck] = None,
) -> torch.Tensor:
    """DDIM from t = 1 to 0; returns the final x estimate.

    Args:
        predict_v: `(z, logsnr, step_index) -> v_hat`, same shape as z.
        noise: z at t = 1 (unit Gaussian).
        steps: number of network evaluations.
        eta: 0 = deterministic DDIM, 1 = ancestral sampling.
        generator: source of the fresh noise when eta > 0 (drawn on the CPU, full size, so
            results are reproducible and independent of any patching).
        clamp_x: maps x_hat into the data range (applied before each update).
        callback: `(step_index, steps, x_hat)` after every step.
        cancel: checked before every step.
    """
    if eta < 0:
        raise HiFIInputError(f"eta={eta} must be >= 0")
    times = ddim_times(steps)
    z = noise
    x_hat = noise
    for i in range(steps):
        check_cancel(cancel)
        logsnr_t = logsnr_schedule(times[i], logsnr_min, logsnr_max)
        alpha_t, sigma_t = alpha_sigma(logsnr_t)
        v_hat = predict_v(z, logsnr_t, i)
        x_hat = x_from_v(z, v_hat, alpha_t, sigma_t)
        del v_hat  # before clamp_x and the update, which need buffers of their own
        if clamp_x is not None:
            x_hat = clamp_x(x_hat)
        if i == steps - 1:
            if callback is not None:
                callback(i, steps, x_hat)
            break
        # Recompute eps from the (clamped) x so the update stays consistent with z.
        eps_hat = (z - alpha_t * x_hat) / sigma_t
        alpha_s, sigma_s = alpha_sigma(logsnr_schedule(times[i + 1], logsnr_min, logsnr_max))
        c = eta * (sigma_s / sigma_t) * torch.sqrt(torch.clamp(1 - (alpha_t / alpha_s) ** 2, min=0.0))
        z = alpha_s * x_hat + torch.sqrt(torch.clamp(sigma_s ** 2 - c ** 2, min=0.0)) * eps_hat
        if eta > 0:
            fresh = torch.randn(z.shape, generator=generator, dtype=torch.float32).to(z.device)
            z = z + c * fresh
        if callback is not None:
            callback(i, steps, x_hat)
    return x_hat
