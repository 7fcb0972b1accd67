"""The training mixture: real-footage windows and synthetic scenes, in a resumable order.

`MixedTriplets` is a map-style dataset over an unbounded index: sample `i` is a pure function
of (seed, i): a numpy Generator seeded with [seed, i] picks real or synthetic (ratio
`real_fraction`), the window or scene, the crop and the flips. The training order is simply
i = 0, 1, 2, ...; under DDP, step s of rank r uses indices
s * world * batch + r * batch + [0, batch), so ranks never share a sample and a resumed run
continues at exactly the next index (the data position is the step).

Cascade conditioning (`make_condition`, the cheaper documented option of the issue): the
low-resolution condition is a degraded copy of the target instead of the model's own
prediction on 2x-downsampled inputs. The target is area-downsampled x2, blurred (Gaussian,
random sigma), given mild noise, sometimes mixed toward the downsampled reference (the
tau-blend, or the flow average for a flow-base model; so the condition is imperfect the way
a real base prediction is, especially where things move), and upsampled back bilinearly,
exactly as the cascade upsamples its previous level. It is dropped (cond_mask False, zeros) with probability `drop_prob` (0.5), so one
model is both the base level and the upsampler. Why not offline base predictions: they cost
a full inference pass per training sample, and on 2 CPU cores that would halve the
training budget before the model is good enough for its predictions to be informative.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import HiFIInputError
from ..flow_base import flow_average
from .data import AugmentConfig, Triplet, collate, crop_frames, flip_triplet, to_tensor
from .real import RealClips
from .synthetic import SyntheticScenes


@dataclass(frozen=True)
class ConditionConfig:
    """Degraded-target condition knobs (see the module docstring)."""

    drop_prob: float = 0.5
    max_blur_sigma: float = 1.0
    max_noise: float = 0.02
    blend_mix_prob: float = 0.5
    max_blend_mix: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 <= self.drop_prob <= 1.0 or not 0.0 <= self.blend_mix_prob <= 1.0:
            raise HiFIInputError("condition.drop_prob and blend_mix_prob must be probabilities in [0, 1]")
        if self.max_blur_sigma < 0 or self.max_noise < 0 or not 0 <= self.max_blend_mix <= 1:
            raise HiFIInputError("condition blur/noise must be >= 0 and max_blend_mix in [0, 1]")


def _gaussian_blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Per-sample separable Gaussian blur (sigma [B]; 0 = identity), radius 3 px."""
    radius = 3
    coords = torch.arange(-radius, radius + 1, dtype=x.dtype)
    s = sigma.clamp_min(1e-3).view(-1, 1)
    kernel = torch.exp(-coords[None] ** 2 / (2 * s ** 2))
    kernel = kernel / kernel.sum(dim=1, keepdim=True)  # [B, K]
    b, c, h, w = x.shape
    xp = F.pad(x.reshape(1, b * c, h, w), (radius, radius, radius, radius), mode="replicate")
    kx = kernel.repeat_interleave(c, 0).view(b * c, 1, 1, -1)
    ky = kernel.repeat_interleave(c, 0).view(b * c, 1, -1, 1)
    out = F.conv2d(F.conv2d(xp, kx, groups=b * c), ky, groups=b * c)
    return out.view(b, c, h, w)


def make_condition(target: torch.Tensor, frame0: torch.Tensor, frame2: torch.Tensor,
                   tau: torch.Tensor, config: ConditionConfig, generator: torch.Generator,
                   reference: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """(cond [B, 3, h, w] in [0, 1], cond_mask [B] bool) for a batch; h, w must be even.

    `reference` is what the mix moves toward ([B, 3, h, w]; default the tau-blend): for a
    flow-base model its flow average, which is what an untrained lower level returns, so the
    upsampler also learns from the conditions it will really get, not only near-perfect ones.
    """
    b = target.shape[0]
    if target.shape[-1] % 2 or target.shape[-2] % 2:
        raise HiFIInputError(f"crop size {tuple(target.shape[-2:])} must be even for the x2 condition")
    rand = lambda *shape: torch.rand(*shape, generator=generator)  # noqa: E731
    low = F.avg_pool2d(target, 2)
    if reference is None:
        reference = frame0 + (frame2 - frame0) * tau.view(-1, 1, 1, 1)
    mix = (rand(b) < config.blend_mix_prob).float() * rand(b) * config.max_blend_mix
    low = low + (F.avg_pool2d(reference, 2) - low) * mix.view(-1, 1, 1, 1)
    low = _gaussian_blur(low, rand(b) * config.max_blur_sigma)
    low = low + torch.randn(low.shape, generator=generator) * (rand(b) * config.max_noise).view(-1, 1, 1, 1)
    cond = F.interpolate(low.clamp(0, 1), scale_factor=2.0, mode="bilinear", align_corners=False)
    mask = rand(b) >= config.drop_prob
    return cond * mask.view(-1, 1, 1, 1).float(), mask


def make_flow_average(frame0: torch.Tensor, frame2: torch.Tensor, tau: torch.Tensor,
                      cond_mask: torch.Tensor, full_size: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The flow-warped average each sample's residual base is built from ([B, 3, h, w]).

    As in the cascade: a base-level sample (no condition) gets DIS flows at its own size; an
    upsampling sample gets them from half its size (a coarser level's flows, upsampled).
    `full_size`: the batch's own-size flow average when the caller has it already (reused
    for the base-level samples instead of running DIS again).
    """
    out = torch.empty_like(frame0)
    for i in range(frame0.shape[0]):
        if not bool(cond_mask[i]) and full_size is not None:
            out[i] = full_size[i]
            continue
        downscale = 2 if bool(cond_mask[i]) else 1
        out[i:i + 1] = flow_average(frame0[i:i + 1], frame2[i:i + 1], float(tau[i]), downscale)
    return out


@dataclass
class MixConfig:
    """Which data, how much of each, and the crop.

    Attributes:
        real_fraction: probability that a sample comes from real footage (rest: synthetic).
        crop: (height, width) of training crops (even, multiples of the model alignment).
        augment: augmentation probabilities.
    """

    real_fraction: float = 0.5
    crop: Tuple[int, int] = (96, 96)
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        self.crop = tuple(int(c) for c in self.crop)
        if not 0.0 <= self.real_fraction <= 1.0:
            raise HiFIInputError(f"real_fraction={self.real_fraction} must be in [0, 1]")
        if len(self.crop) != 2 or min(self.crop) < 8:
            raise HiFIInputError(f"crop={self.crop} must be (height, width), each >= 8")


class MixedTriplets(torch.utils.data.Dataset):
    """Sample i of the real/synthetic mixture (deterministic in (seed, i))."""

    def __init__(self, real: Optional[RealClips], synthetic: Optional[SyntheticScenes],
                 config: MixConfig, seed: int = 0):
        if real is None and config.real_fraction > 0:
            raise HiFIInputError("real_fraction > 0 needs real clips (data.clips)")
        if synthetic is None and config.real_fraction < 1:
            raise HiFIInputError("real_fraction < 1 needs synthetic scenes (data.photos)")
        self.real, self.synthetic, self.config, self.seed = real, synthetic, config, int(seed)

    def __len__(self) -> int:  # unbounded stream; a large length for samplers that ask
        return 2 ** 62

    def __getitem__(self, index: int) -> Triplet:
        rng = np.random.default_rng([self.seed, int(index)])
        cfg = self.config
        if rng.random() < cfg.real_fraction:
            window = self.real.train_windows[int(rng.integers(len(self.real.train_windows)))]
            frames = crop_frames(self.real.window_frames(window), cfg.crop, rng, cfg.augment.multires_prob)
            tau = window.tau
            source = f"real:{self.real.name(window.clip)}:x{window.scale}:{window.first}-{window.last}"
        else:
            *frames, tau = self.synthetic.sample(rng, cfg.crop)
            source = "synthetic"
        f0, ft, f2, tau = flip_triplet(*frames, tau, rng, cfg.augment)
        return Triplet(to_tensor(f0), to_tensor(ft), to_tensor(f2), tau, source)


def batch_indices(step: int, batch: int, rank: int = 0, world: int = 1) -> range:
    """Global sample indices of one rank's batch at a step (see the module docstring)."""
    start = (step * world + rank) * batch
    return range(start, start + batch)


def load_batch(dataset: MixedTriplets, step: int, batch: int, rank: int = 0, world: int = 1):
    """(frame0, target, frame2 [B, 3, h, w], tau [B]) of one rank at one step."""
    return collate([dataset[i] for i in batch_indices(step, batch, rank, world)])
