"""The training mixture: real-footage windows and synthetic scenes, in a resumable order.

`MixedTriplets` is a map-style dataset over an unbounded index: sample `i` is a pure function
of (seed, i): a numpy Generator seeded with [seed, i] picks real or synthetic (ratio
`real_fraction`), the window or scene, the crop and the flips. The training order is simply
i = 0, 1, 2, ...; under DDP, step s of rank r uses indices
s * world * batch + r * batch + [0, batch), so ranks never share a sample and a resumed run
continues at exactly the next index (the data position is the step).

Cascade conditions are made per batch by `hifi_core.training.condition`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Tuple

import numpy as np
import torch

from ..errors import HiFIInputError
from ..flow_base import flow_average
from ..triplet import Triplet, to_tensor
from .data import AugmentConfig, collate, crop_frames, flip_triplet
from .real import RealClips
from .synthetic import SyntheticScenes


@dataclass
class MixConfig:
    """Which data, how much of each, and the crop.

    Attributes:
        real_fraction: probability that a sample comes from real footage (rest: synthetic).
        crop: (height, width) of training crops (even, multiples of the model alignment).
        augment: augmentation probabilities.
        hard_fraction: probability that a sample is the hardest of `hard_candidates` draws
            (see the module docstring); 0 = every sample is a plain draw.
        hard_candidates: draws a hard sample is picked from (>= 2).
        repeat_samples: > 0: sample i is sample i mod repeat_samples, a fixed set to fit
            (a capacity probe: can the model fit these at all?); 0 = an endless stream.
    """

    real_fraction: float = 0.5
    crop: Tuple[int, int] = (96, 96)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    hard_fraction: float = 0.0
    hard_candidates: int = 4
    repeat_samples: int = 0

    def __post_init__(self) -> None:
        self.crop = tuple(int(c) for c in self.crop)
        if not 0.0 <= self.real_fraction <= 1.0:
            raise HiFIInputError(f"real_fraction={self.real_fraction} must be in [0, 1]")
        if not 0.0 <= self.hard_fraction <= 1.0:
            raise HiFIInputError(f"data.hard_fraction={self.hard_fraction} must be a probability in [0, 1]")
        if self.repeat_samples < 0:
            raise HiFIInputError(f"data.repeat_samples={self.repeat_samples} must be >= 0 (0 = no repeats)")
        if self.hard_candidates < 2:
            raise HiFIInputError(f"data.hard_candidates={self.hard_candidates} must be >= 2 "
                                 "(set data.hard_fraction to 0 for plain sampling)")
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
        if self.config.repeat_samples:
            index %= self.config.repeat_samples
        rng = np.random.default_rng([self.seed, int(index)])
        cfg = self.config
        # drawn only when enabled, so configs without hard examples keep their sample streams
        if cfg.hard_fraction > 0 and rng.random() < cfg.hard_fraction:
            draws = [self.draw(np.random.default_rng([self.seed, int(index), k]))
                     for k in range(cfg.hard_candidates)]
            return max(draws, key=flow_average_error)
        return self.draw(rng)

    def draw(self, rng: np.random.Generator) -> Triplet:
        """One plain sample: real or synthetic, cropped and flipped with `rng`."""
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


def flow_average_error(triplet: Triplet) -> float:
    """Mean absolute error of the DIS flow average (the flow base) against the target."""
    average = flow_average(triplet.frame0[None], triplet.frame2[None], triplet.tau)[0]
    return float((average - triplet.target).abs().mean())


def batch_indices(step: int, batch: int, rank: int = 0, world: int = 1) -> range:
    """Global sample indices of one rank's batch at a step (see the module docstring)."""
    start = (step * world + rank) * batch
    return range(start, start + batch)


def load_batch(dataset: MixedTriplets, step: int, batch: int, rank: int = 0, world: int = 1):
    """(frame0, target, frame2 [B, 3, h, w], tau [B]) of one rank at one step."""
    return collate([dataset[i] for i in batch_indices(step, batch, rank, world)])
