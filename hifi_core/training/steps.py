"""What one training step draws: learning rate, EMA decay, diffusion times, crops, and the batches
(deterministic per step and rank, prefetched by worker processes)."""

from __future__ import annotations

import math
from typing import Optional, Tuple

import numpy as np
import torch

from ..flow_base import estimate_flows, warp_frames
from ..model import HiFIModel
from .config import TrainConfig
from .dataset import MixedTriplets, load_batch

# ---------------------------------------------------------------- small pure helpers

def learning_rate(step: int, config: TrainConfig) -> float:
    """lr at a step: linear warm-up, then constant or cosine down to min_lr_fraction * lr."""
    o = config.optim
    if o.warmup_steps and step < o.warmup_steps:
        return o.lr * (step + 1) / o.warmup_steps
    if o.schedule == "constant":
        return o.lr
    progress = min(1.0, (step - o.warmup_steps) / max(1, config.steps - o.warmup_steps))
    return o.lr * (o.min_lr_fraction + (1 - o.min_lr_fraction) * 0.5 * (1 + math.cos(math.pi * progress)))


def ema_decay(step: int, decay: float, warmup: bool = True) -> float:
    """EMA decay with the usual warm-up, so early EMA weights are not stuck at the init
    (`warmup=False`: the full decay from step 0)."""
    return min(decay, (1.0 + step) / (10.0 + step)) if warmup else decay


def sample_t(batch: int, config: TrainConfig, generator: torch.Generator) -> torch.Tensor:
    """t in (0, 1]: a fraction exactly 1, the rest 1 - u**power."""
    u = torch.rand(batch, generator=generator)
    t = 1.0 - u ** config.t_sampling.power
    one = torch.rand(batch, generator=generator) < config.t_sampling.p_one
    return torch.where(one, torch.ones_like(t), t).clamp(1e-4, 1.0)


def disagreement_weight(model: HiFIModel, frame0: torch.Tensor, frame2: torch.Tensor,
                        flows: Optional[torch.Tensor], net0: torch.Tensor, net2: torch.Tensor,
                        strength: float, warped_frames: Optional[Tuple[torch.Tensor, torch.Tensor]] = None
                        ) -> Optional[torch.Tensor]:
    """Per-pixel loss weights [B, 1, h, w], mean 1 per sample: 1 + strength * |warped frame0 -
    warped frame2| (see TrainConfig.disagreement_weight); None when strength is 0.
    `warped_frames`: the batch's context warps (`StepBatches`), when it has them."""
    if strength <= 0 or flows is None:
        return None
    if warped_frames is not None:
        warped0, warped2 = warped_frames
    else:
        warped0, warped2 = (net0, net2) if model.sees_warped_frames else warp_frames(frame0, frame2, flows)
    weight = 1.0 + strength * (warped0 - warped2).abs().mean(dim=1, keepdim=True)
    return weight / weight.mean(dim=(1, 2, 3), keepdim=True)


def step_generator(seed: int, step: int, rank: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(np.random.SeedSequence([seed, step, rank]).generate_state(1)[0]))


def crop_for_step(step: int, config: TrainConfig) -> Tuple[int, int]:
    d = config.data
    if d.late_crop and step >= d.late_crop_from * config.steps:
        return tuple(d.late_crop)
    return tuple(d.crop)


class StepBatches(torch.utils.data.Dataset):
    """Item s: one rank's batch at step s with everything made before the model is called:
    (frame0, target, frame2 [B, 3, h, w], tau [B], DIS flows [B, 4, h, w] or None), and with
    `data.flow_context` > 1 a sixth item, both frames warped to tau on the context (then the
    flows and frames are the context's centre crop; `DataConfig.flow_context`).

    A pure function of the step (crop size included), so loader workers can make batches
    ahead and a resumed run asks for exactly the next one.
    """

    def __init__(self, dataset: MixedTriplets, config: TrainConfig, rank: int, world: int, with_flows: bool,
                 motion_base: str = "flow"):
        self.dataset, self.config, self.rank, self.world = dataset, config, rank, world
        self.with_flows = with_flows
        self.motion_base = motion_base

    def __len__(self) -> int:
        return self.config.steps

    def __getitem__(self, step: int):
        cfg = self.config
        crop = crop_for_step(step, cfg)
        context = cfg.data.flow_context if self.with_flows else 1
        drawn = tuple(c * context for c in crop)
        if tuple(self.dataset.config.crop) != drawn:
            self.dataset.config = cfg.data.mix(drawn, cfg.augment)
        f0, ft, f2, tau = load_batch(self.dataset, step, cfg.batch, self.rank, self.world)
        if not self.with_flows:
            return f0, ft, f2, tau, None
        flows = estimate_flows(f0, f2, tau, base=self.motion_base)
        if context == 1:
            return f0, ft, f2, tau, flows
        warped0, warped2 = warp_frames(f0, f2, flows)
        top, left = (drawn[0] - crop[0]) // 2, (drawn[1] - crop[1]) // 2
        centre = lambda x: x[..., top:top + crop[0], left:left + crop[1]].contiguous()  # noqa: E731
        return centre(f0), centre(ft), centre(f2), tau, centre(flows), (centre(warped0), centre(warped2))


def prefetched_batches(batches: StepBatches, first: int, end: int, workers: int):
    """Batches first..end-1 in order, made by `workers` processes ahead of use.

    The workers are forked with OpenCV at one thread (restored in this process afterwards):
    a child forked from a process whose OpenCV thread pool has run can hang in it. Torch's
    worker loop itself sets one torch thread per worker. `workers` 0: made here, on demand.
    """
    import cv2

    if workers <= 0:
        return (batches[step] for step in range(first, end))

    loader = torch.utils.data.DataLoader(batches, batch_size=None, sampler=range(first, end),
                                         num_workers=workers, prefetch_factor=2, collate_fn=_as_is)
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        return iter(loader)  # forks the workers
    finally:
        cv2.setNumThreads(threads)


def _as_is(batch):
    return batch
