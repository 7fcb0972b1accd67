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
from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple

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


@dataclass(frozen=True)
class DDIMStep:
    """One DDIM update from time t to the next time s, as plain numbers.

    Attributes:
        index (int): the step's index (0 = from pure noise).
        alpha_t, sigma_t (float): the scales at t (where z is).
        alpha_s (float): the signal scale at s.
        eps_scale (float): what the predicted noise is kept at, sqrt(sigma_s**2 - noise_scale**2).
        noise_scale (float): fresh noise's scale (0 for deterministic DDIM, eta = 0).
        last (bool): the final step: z becomes the x estimate.
    """

    index: int
    alpha_t: float
    sigma_t: float
    alpha_s: float
    eps_scale: float
    noise_scale: float
    last: bool


def ddim_steps(steps: int, eta: float = 0.0, logsnr_min: float = -20.0, logsnr_max: float = 20.0) -> List[DDIMStep]:
    """The updates of a `steps`-step DDIM run from t = 1 to 0 (eta: 0 = deterministic DDIM,
    1 = ancestral sampling)."""
    if eta < 0:
        raise HiFIInputError(f"eta={eta} must be >= 0")
    times = ddim_times(steps)
    out = []
    for i in range(steps):
        alpha_t, sigma_t = alpha_sigma(logsnr_schedule(times[i], logsnr_min, logsnr_max))
        alpha_s, sigma_s = alpha_sigma(logsnr_schedule(times[i + 1], logsnr_min, logsnr_max))
        c = eta * (sigma_s / sigma_t) * torch.sqrt(torch.clamp(1 - (alpha_t / alpha_s) ** 2, min=0.0))
        keep = torch.sqrt(torch.clamp(sigma_s ** 2 - c ** 2, min=0.0))
        out.append(DDIMStep(i, float(alpha_t), float(sigma_t), float(alpha_s), float(keep), float(c),
                            i == steps - 1))
    return out


def ddim_update_(z: torch.Tensor, v: torch.Tensor, step: DDIMStep,
                 clamp_x: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
                 fresh: Optional[torch.Tensor] = None) -> torch.Tensor:
    """One DDIM update of z in place from the predicted v (whose buffer becomes the x
    estimate, which is returned). Works on any part of a frame: every operation is per pixel,
    so a sampler may update rows as soon as their v is final.

    `clamp_x` maps x into the data range in place (before the update); `fresh`: the step's
    fresh noise (eta > 0). On the last step z becomes x.
    """
    x_hat = v.mul_(-step.sigma_t).add_(z, alpha=step.alpha_t)  # alpha z - sigma v
    if clamp_x is not None:
        x_hat = clamp_x(x_hat)
    if step.last:
        return z.copy_(x_hat)
    # eps from the (clamped) x, so the update stays consistent with z
    z.sub_(x_hat, alpha=step.alpha_t).div_(step.sigma_t).mul_(step.eps_scale).add_(x_hat, alpha=step.alpha_s)
    if fresh is not None and step.noise_scale > 0:
        z.add_(fresh, alpha=step.noise_scale)
    return x_hat


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
    """DDIM from t = 1 to 0 on whole tensors; returns the final x estimate (in noise's buffer).

    Args:
        predict_v: `(z, logsnr, step_index) -> v_hat`, same shape as z (a new tensor).
        noise: z at t = 1 (unit Gaussian); updated in place.
        steps: number of network evaluations.
        eta: 0 = deterministic DDIM, 1 = ancestral sampling.
        generator: source of the fresh noise when eta > 0 (drawn on the CPU, full size, so
            results are reproducible and independent of any patching).
        clamp_x: maps x_hat into the data range in place (applied before each update).
        callback: `(step_index, steps, x_hat)` after every step.
        cancel: checked before every step.
    """
    z = noise
    for step in ddim_steps(steps, eta, logsnr_min, logsnr_max):
        check_cancel(cancel)
        logsnr_t = logsnr_schedule(ddim_times(steps)[step.index], logsnr_min, logsnr_max)
        v_hat = predict_v(z, logsnr_t, step.index)
        fresh = None
        if step.noise_scale > 0 and not step.last:
            fresh = torch.randn(z.shape, generator=generator, dtype=torch.float32).to(z.device)
        x_hat = ddim_update_(z, v_hat, step, clamp_x, fresh)
        if callback is not None:
            callback(step.index, steps, x_hat)
    return z
