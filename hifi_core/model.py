"""HiFIModel: the U-Net plus its diffusion parameterisation (k-diffusion's Denoiser idea).

Public methods take frames in [0, 1], layout [B, 3, H, W]; everything inside is model space
([-1, 1]). The network sees [z_t, frame0, frame2, condition] (12 channels) and predicts v of
the diffused quantity y (or, with ``prediction="x"``, -y itself):

- ``image`` parameterisation: y = x (the paper's form).
- ``residual`` parameterisation: y = (x - base) * residual_scale, where base is the
  condition (the upsampled lower-level estimate; with ``condition_detail`` plus the detail
  band of the reference that upsampling cannot restore) when present, else the reference
  itself. The reference is the tau-weighted frame blend, or with ``residual_base="flow"``
  the DIS flow-warped average (``warped``, computed by the caller: `hifi_core.flow_base`).
  An untrained model therefore reproduces its base, and the cascade levels learn exactly
  what they must add to the level below.

Condition dropout: `cond_mask[b] = False` means "no condition" (base level of the cascade, or
dropped in training); the network then gets zeros in the condition channels, except with
``residual_base="flow"``, where the condition channels always carry the residual base
(`network_condition`): the network cannot compute optical flow itself, so it is shown the
estimate it corrects.
"""

from __future__ import annotations

from types import ModuleType
from typing import Optional, Union

import torch
import torch.nn.functional as F
from torch import nn

from .config import MOTION_BASES, ModelConfig, get_preset
from .diffusion import (alpha_sigma, logsnr_schedule, q_sample, to_model_space, v_from_x_eps)
from .errors import HiFIInputError
from .unet import EfficientUNet


def detail_band(image: torch.Tensor) -> torch.Tensor:
    """What a x2 area-downsample then bilinear x2 upsample removes (the cascade's operators)."""
    low = F.interpolate(F.avg_pool2d(image, 2), size=image.shape[-2:], mode="bilinear", align_corners=False)
    return low.neg_().add_(image)  # image - low, in the one new buffer


LOSS_NORMS = ("l1", "l2", "log_l2")  # of the network's error (on v or x), see HiFIModel.loss
# keeps log_l2 finite for a sample the model already gets exactly (the squared error; a
# one-pixel-level error on a whole crop is about 1e-4)
LOG_L2_FLOOR = 1e-6


class HiFIModel(nn.Module):
    """Conditional diffusion model for frame interpolation (v- or x-prediction; the sampler gets v).

    Args:
        config (ModelConfig): the U-Net and the diffusion parameterisation.
        operations (module, default torch.nn): where the layer classes come from (ComfyUI's
            `comfy.ops` for its weight casting and offloading).
    """

    def __init__(self, config: ModelConfig, operations: ModuleType = nn):
        super().__init__()
        self.config = config
        self.unet = EfficientUNet(config.unet, operations=operations)
        # `runtime.CompiledOrEager` over the U-Net once a run asks for torch.compile (not a
        # submodule: the weights stay those of `unet`)
        self.compiled_unet = None

    @property
    def alignment(self) -> int:
        return self.config.unet.alignment

    # parameterisation helpers (model space in, model space out)
    @property
    def uses_flow(self) -> bool:
        """True when callers must pass the flow-warped average (`hifi_core.flow_base`)."""
        return self.config.diffusion.residual_base in MOTION_BASES

    @property
    def motion_base(self) -> str:
        """The flow estimator of the residual base (`hifi_core.flow_base.estimate_flows`' base)."""
        return self.config.diffusion.residual_base

    @property
    def sees_warped_frames(self) -> bool:
        """True when the network's frame channels carry the frames warped to tau
        (`DiffusionConfig.network_frames`; callers pass them: `hifi_core.cascade.level_inputs`)."""
        return self.config.diffusion.network_frames == "warped"

    def base_estimate(self, frame0: torch.Tensor, frame2: torch.Tensor, tau: torch.Tensor,
                      cond: torch.Tensor, cond_mask: torch.Tensor,
                      warped: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The residual base in model space (see the module docstring)."""
        return self.base_from_reference(self.base_reference(frame0, frame2, tau, warped), cond, cond_mask)

    def base_reference(self, frame0: torch.Tensor, frame2: torch.Tensor, tau: torch.Tensor,
                       warped: Optional[torch.Tensor] = None) -> torch.Tensor:
        """What the base falls back to without a condition: the flow average or the tau-blend
        (same value space as the inputs)."""
        if self.uses_flow:
            if warped is None:
                raise HiFIInputError("this model's residual base is the optical-flow average: pass "
                                     "warped= (hifi_core.flow_base.flow_average, in model space)")
            return warped
        return frame0 + (frame2 - frame0) * tau.view(-1, 1, 1, 1).to(frame0.dtype)

    def base_from_reference(self, reference: torch.Tensor, cond: torch.Tensor,
                            cond_mask: torch.Tensor, inplace: bool = False) -> torch.Tensor:
        """The base from `base_reference` (model space): the condition (plus the reference's
        detail band) where there is one, else the reference. `inplace` (one shared cond_mask,
        as in a cascade level) may return or overwrite `cond` or `reference`."""
        if inplace and cond_mask.numel() == 1:
            if not bool(cond_mask):
                return reference
            return cond.add_(detail_band(reference)) if self.config.diffusion.condition_detail else cond
        if self.config.diffusion.condition_detail:
            cond = cond + detail_band(reference)
        return torch.where(cond_mask.view(-1, 1, 1, 1), cond, reference)

    @property
    def network_sees_base(self) -> bool:
        """True when the condition channels carry the residual base, not the condition."""
        return self.uses_flow

    def network_condition(self, cond: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        """What goes into the condition channels: the condition, or with a flow base the base."""
        return base if self.network_sees_base else cond

    def to_diffusion_space(self, x: torch.Tensor, base: torch.Tensor, inplace: bool = False) -> torch.Tensor:
        """Model space -> what is diffused; `inplace` overwrites x (frame-sized buffers at 8K)."""
        d = self.config.diffusion
        if d.parameterisation != "residual":
            return x
        return x.sub_(base).mul_(d.residual_scale) if inplace else (x - base) * d.residual_scale

    def from_diffusion_space(self, y: torch.Tensor, base: torch.Tensor, inplace: bool = False) -> torch.Tensor:
        """The inverse of `to_diffusion_space`; `inplace` overwrites y."""
        d = self.config.diffusion
        if d.parameterisation != "residual":
            return y
        return y.div_(d.residual_scale).add_(base) if inplace else base + y / d.residual_scale

    def network_output(self, z: torch.Tensor, logsnr: torch.Tensor, frame0: torch.Tensor,
                       frame2: torch.Tensor, cond: torch.Tensor, cond_mask: torch.Tensor,
                       tau: torch.Tensor) -> torch.Tensor:
        """The U-Net's output: v, or -x_hat (`DiffusionConfig.prediction`). logsnr and tau: [B]
        (or scalars, broadcast)."""
        batch = z.shape[0]
        logsnr = torch.as_tensor(logsnr, dtype=torch.float32, device=z.device).expand(batch)
        tau = torch.as_tensor(tau, dtype=torch.float32, device=z.device).reshape(-1).expand(batch)
        cond_mask = torch.as_tensor(cond_mask, device=z.device).reshape(-1).expand(batch)
        cond_in = cond if self.uses_flow else cond * cond_mask.view(-1, 1, 1, 1).to(cond.dtype)
        x = torch.cat([z, frame0, frame2, cond_in], dim=1)
        return (self.compiled_unet or self.unet)(x, logsnr, tau, cond_mask)

    def predict_v(self, z: torch.Tensor, logsnr: torch.Tensor, frame0: torch.Tensor,
                  frame2: torch.Tensor, cond: torch.Tensor, cond_mask: torch.Tensor,
                  tau: torch.Tensor) -> torch.Tensor:
        """v-prediction in model space (what the sampler takes), whatever the network predicts."""
        out = self.network_output(z, logsnr, frame0, frame2, cond, cond_mask, tau)
        if self.config.diffusion.prediction == "v":
            return out
        logsnr = torch.as_tensor(logsnr, dtype=torch.float32, device=z.device).expand(z.shape[0])
        alpha, sigma = (s.view(-1, 1, 1, 1) for s in alpha_sigma(logsnr))
        # v = (alpha * z - x_hat) / sigma with x_hat = -out; the sampler's alpha * z - sigma * v
        # then returns x_hat up to rounding
        return (alpha * z + out.to(z.dtype)) / sigma

    def forward(self, *args, **kwargs) -> torch.Tensor:  # so DDP / hooks see a forward
        return self.predict_v(*args, **kwargs)

    def loss(self, target: torch.Tensor, frame0: torch.Tensor, frame2: torch.Tensor,
             tau: torch.Tensor, cond: Optional[torch.Tensor], cond_mask: torch.Tensor,
             t: torch.Tensor, noise: torch.Tensor, warped: Optional[torch.Tensor] = None,
             norm: str = "l1", pixel_weight: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Per-sample loss on what the network predicts (v, or x with `prediction="x"`): L1 (the
        paper's), "l2" (squared error; its one-step sample is the conditional mean, the
        PSNR-optimal estimate, where L1's is the median), or "log_l2" (the log of each sample's
        mean squared error: a batch mean of it is a mean PSNR, so an easy crop's small errors
        count as much as a hard crop's large ones, where "l2"'s pooled error is dominated by the
        hard crops).
        Frames, cond and warped in [0, 1]; tau, t: [B]; cond_mask: [B] bool; warped: the
        flow-warped average (needed when `uses_flow`); pixel_weight: [B, 1, h, w] weights of
        each pixel's error (None = uniform)."""
        if norm not in LOSS_NORMS:
            raise HiFIInputError(f"loss norm {norm!r}: use one of {LOSS_NORMS}")
        d = self.config.diffusion
        frame0, frame2, target = (to_model_space(f) for f in (frame0, frame2, target))
        cond = torch.zeros_like(target) if cond is None else to_model_space(cond)
        cond_mask = cond_mask.to(device=target.device, dtype=torch.bool)
        cond = cond * cond_mask.view(-1, 1, 1, 1).to(cond.dtype)
        warped = None if warped is None else to_model_space(warped)
        base = self.base_estimate(frame0, frame2, tau, cond, cond_mask, warped)
        y = self.to_diffusion_space(target, base)
        logsnr = logsnr_schedule(t.detach().cpu(), d.logsnr_min, d.logsnr_max).to(target.device)
        alpha, sigma = (s.view(-1, 1, 1, 1) for s in alpha_sigma(logsnr))
        z = q_sample(y, noise, alpha, sigma)
        out = self.network_output(z, logsnr, frame0, frame2, self.network_condition(cond, base), cond_mask, tau)
        if d.prediction == "x":
            # the error of what the network predicts; at t = 1 it equals the error on v
            error = -out.float() - y
        else:
            error = out.float() - v_from_x_eps(y, noise, alpha, sigma)
        error = error.abs() if norm == "l1" else error.square()
        if pixel_weight is not None:
            error = error * pixel_weight.to(error.dtype)
        per_sample = error.flatten(1).mean(dim=1)
        return per_sample.add(LOG_L2_FLOOR).log() if norm == "log_l2" else per_sample


def build_model(preset: Union[str, ModelConfig], operations: ModuleType = nn) -> HiFIModel:
    """A freshly initialised (untrained) model from a preset name ("tiny", "small", "lean",
    "base", "paper") or a `ModelConfig`; `operations` as in `HiFIModel`."""
    return HiFIModel(get_preset(preset) if isinstance(preset, str) else preset, operations=operations)
