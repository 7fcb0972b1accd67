"""Cascade conditions for training: what an upsampling sample is conditioned on.

One model is both the cascade's base level and its upsampler: each sample's condition is
dropped (cond_mask False, zeros) with probability `drop_prob` (0.5). A kept condition is
one of two things, per sample:

- **The model's own prediction** (the paper's recipe; probability `own_prediction_prob`):
  the EMA model runs the cascade's base level (`hifi_core.cascade.denoise_level`, the same
  code and `own_prediction_steps` sampling steps as inference) on the 2x area-downsampled
  inputs, and the condition is built from that estimate exactly as the cascade builds the
  next level's (`level_condition`). The paper computes these offline; we compute them
  online with the current EMA weights: a no-grad pass over a quarter of the pixels (the step
  itself is a forward and backward pass over all of them), in step with the weights.
  Why it matters: an upsampler trained only on degraded copies of the truth learns to trust
  its condition's low frequencies, and at inference those are the base level's (imperfect)
  prediction; measured in docs/training/README.md (stage 2 -> 3).
- **A degraded target** (the cheaper option, `make_condition`): the target area-downsampled
  x2, blurred (random sigma), given mild noise, sometimes mixed toward the downsampled
  reference (tau-blend or flow average), and upsampled back bilinearly.

A flow-base model's residual base, and the frames its network sees, come from
`hifi_core.cascade.level_inputs` with `estimate_flows`' flows, as in the cascade.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from kornia.filters import gaussian_blur2d

from ..cascade import LevelContext, denoise_level, level_condition, level_inputs
from ..patches import make_patch_grid
from ..errors import HiFIInputError
from ..flow_base import estimate_flows, warp_average
from ..memory import AdaptiveBatchSize
from ..model import HiFIModel


@dataclass(frozen=True)
class ConditionConfig:
    """Condition knobs (see the module docstring); blur, noise and mix apply to degraded targets."""

    drop_prob: float = 0.5
    max_blur_sigma: float = 1.0
    max_noise: float = 0.02
    blend_mix_prob: float = 0.5
    max_blend_mix: float = 0.5
    own_prediction_prob: float = 0.0
    own_prediction_steps: int = 1

    def __post_init__(self) -> None:
        if not all(0.0 <= p <= 1.0 for p in (self.drop_prob, self.blend_mix_prob, self.own_prediction_prob)):
            raise HiFIInputError("condition.drop_prob, blend_mix_prob and own_prediction_prob must be "
                                 "probabilities in [0, 1]")
        if self.own_prediction_steps < 1:
            raise HiFIInputError(f"condition.own_prediction_steps={self.own_prediction_steps} must be >= 1")
        if self.max_blur_sigma < 0 or self.max_noise < 0 or not 0 <= self.max_blend_mix <= 1:
            raise HiFIInputError("condition blur/noise must be >= 0 and max_blend_mix in [0, 1]")


def _gaussian_blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Per-sample Gaussian blur, 7x7 (radius 3 px), edges replicated.

    Args:
        x: [B, C, H, W].
        sigma: [B] in pixels; 0 leaves the sample as it is.
    """
    # kornia needs sigma > 0; at 1e-3 px the kernel is the identity to float rounding
    s = sigma.clamp_min(1e-3).to(x)
    return gaussian_blur2d(x, 7, torch.stack([s, s], dim=1), border_type="replicate")


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


def own_prediction_condition(model: HiFIModel, frame0: torch.Tensor, frame2: torch.Tensor, tau: float,
                             seed: int, steps: int = 1, flows: Optional[torch.Tensor] = None,
                             warped: Optional[torch.Tensor] = None,
                             warped_frames: Optional[Tuple[torch.Tensor, torch.Tensor]] = None) -> torch.Tensor:
    """The condition [1, 3, h, w] of one upsampling sample from the model's own base-level
    prediction, exactly as `run_cascade` builds its second level's (`seed`: the noise's, as
    `LevelContext.seed`; the pair index is 0).

    frame0, frame2: [1, 3, h, w] in [0, 1], h and w even with h/2, w/2 multiples of the
    model's alignment. The base level sees the 2x area-downsampled frames as one patch; with
    a flow base, both levels warp with the same flows: `flows` and this level's `warped`
    average when the caller has them for its batch, else `estimate_flows` of these frames.
    `warped_frames`: both frames warped to tau on a larger context (`DataConfig.flow_context`);
    the base level then sees them area-downsampled, so flows that leave the crop still find
    their pixels, as they do in a whole frame.
    """
    half0, half2 = F.avg_pool2d(frame0, 2), F.avg_pool2d(frame2, 2)
    height, width = half0.shape[-2:]
    if height % model.alignment or width % model.alignment:
        raise HiFIInputError(f"crop {tuple(frame0.shape[-2:])}: half of it must be a multiple of "
                             f"{model.alignment} for the own-prediction condition")
    if model.uses_flow and flows is None:
        flows = estimate_flows(frame0, frame2, tau, base=model.motion_base)
    if flows is not None and warped is None:
        warped = warp_average(frame0, frame2, flows, tau)
    half_warps = None if warped_frames is None else tuple(F.avg_pool2d(w, 2) for w in warped_frames)
    net0, net2, coarser_warped = level_inputs(model, half0, half2, flows, tau, half_warps)
    ctx = LevelContext(steps=steps, samples=1, eta=0.0, overlap=0, feather=False, seed=seed,
                       batcher=AdaptiveBatchSize(1))
    was_training = model.training
    model.eval()
    estimate, _ = denoise_level(model, net0, net2, None, tau, make_patch_grid(height, width, (height, width), 0),
                                0, 2, ctx, coarser_warped)
    model.train(was_training)
    # clone: denoise_level runs in inference mode, and autograd must not meet inference tensors
    return level_condition(estimate.clone(), coarser_warped, warped)


def apply_own_predictions(model: HiFIModel, frame0: torch.Tensor, frame2: torch.Tensor, tau: torch.Tensor,
                          cond: torch.Tensor, cond_mask: torch.Tensor, config: ConditionConfig,
                          generator: torch.Generator, flows: Optional[torch.Tensor] = None,
                          warped: Optional[torch.Tensor] = None,
                          warped_frames: Optional[Tuple[torch.Tensor, torch.Tensor]] = None) -> torch.Tensor:
    """Replace, in place, the condition of each kept-condition sample with its own-prediction
    version with probability `own_prediction_prob`. `flows`, `warped` and the context warps
    `warped_frames`: the batch's, when the caller has them (no second DIS per sample).

    Returns a [B] bool mask of the samples replaced. No random draw when the probability is 0,
    so older configs keep their exact random streams.
    """
    chosen = torch.zeros_like(cond_mask)
    if config.own_prediction_prob <= 0:
        return chosen
    chosen = cond_mask & (torch.rand(cond_mask.shape[0], generator=generator) < config.own_prediction_prob)
    # the batch is assembled on the CPU; the EMA model may live on a GPU
    device = next(model.parameters()).device
    on_model = lambda x, one: None if x is None else x[one].to(device)  # noqa: E731
    for i in torch.nonzero(chosen).flatten().tolist():
        one = slice(i, i + 1)
        cond[one] = own_prediction_condition(
            model, on_model(frame0, one), on_model(frame2, one), float(tau[i]),
            int(torch.randint(0, 2 ** 62, (1,), generator=generator)),
            config.own_prediction_steps, on_model(flows, one), on_model(warped, one),
            None if warped_frames is None else tuple(on_model(w, one) for w in warped_frames)
        ).to(cond.device, cond.dtype)
    return chosen
