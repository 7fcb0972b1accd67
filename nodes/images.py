"""ComfyUI IMAGE <-> hifi_core frames, at the node boundary.

ComfyUI IMAGE: a float32 tensor [B, H, W, C] with values in [0, 1], C = 3 (RGB), also seen
with C = 1 (grayscale) and C = 4 (RGBA). hifi_core frames: [B, 3, H, W] float32 in [0, 1].

Channel policy (documented in docs/nodes.md):
- RGB goes through the model.
- Grayscale is repeated to RGB for the model; the result is averaged back to one channel.
- RGBA: the colour goes through the model; alpha is not something the model was trained on,
  so it is blended linearly at the same tau (exact for static mattes, a soft cross-fade for
  moving ones). The output keeps 4 channels.
- Any other channel count is refused with a message naming the input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

RANGE_TOLERANCE = 1e-3


@dataclass
class SplitImage:
    """An IMAGE batch split into model frames and what the model does not see."""

    rgb: torch.Tensor              # [B, 3, H, W] float32 in [0, 1], CPU
    alpha: Optional[torch.Tensor]  # [B, 1, H, W] or None
    channels: int                  # 1, 3 or 4: what to give back

    def __post_init__(self) -> None:
        if self.channels not in (1, 3, 4):
            raise ValueError(f"channels={self.channels} must be 1, 3 or 4")


def split_image(image, input_name: str, node: str, min_frames: int = 1) -> SplitImage:
    """Validate a ComfyUI IMAGE and convert it to hifi_core's layout.

    Raises:
        ValueError: naming `node` and `input_name`, with what to connect instead.
    """
    where = f"{node}: input '{input_name}'"
    if not isinstance(image, torch.Tensor):
        raise ValueError(f"{where} must be an IMAGE batch, got {type(image).__name__}; connect an "
                         "IMAGE output (Load Video, Load Image, VAE Decode ...)")
    if image.dim() == 3:
        image = image.unsqueeze(0)
    if image.dim() != 4:
        raise ValueError(f"{where} has shape {tuple(image.shape)}; ComfyUI images are [B, H, W, C]")
    batch, height, width, channels = image.shape
    if channels not in (1, 3, 4):
        raise ValueError(f"{where} has {channels} channels; HiFI takes RGB (3), grayscale (1) or "
                         "RGBA (4) images. Convert the image first")
    if batch < min_frames:
        raise ValueError(f"{where} holds {batch} frame(s); this node needs at least {min_frames} "
                         "(load a video or batch images together)")
    if not image.is_floating_point():
        raise ValueError(f"{where} has dtype {image.dtype}; ComfyUI images are float in [0, 1]")
    if height < 4 or width < 4:
        raise ValueError(f"{where} is {width}x{height} pixels; frames must be at least 4x4")
    image = image.detach().to(device="cpu", dtype=torch.float32)
    if not torch.isfinite(image).all():
        raise ValueError(f"{where} contains NaN or infinite values; fix the node that made them")
    low, high = float(image.min()), float(image.max())
    if low < -RANGE_TOLERANCE or high > 1 + RANGE_TOLERANCE:
        raise ValueError(f"{where} has values in [{low:.3g}, {high:.3g}]; ComfyUI images must be in "
                         "[0, 1] (divide 8-bit data by 255)")
    image = image.clamp(0.0, 1.0)
    frames = image.permute(0, 3, 1, 2)
    alpha = None
    if channels == 1:
        rgb = frames.expand(-1, 3, -1, -1)
    elif channels == 4:
        rgb, alpha = frames[:, :3], frames[:, 3:]
    else:
        rgb = frames
    return SplitImage(rgb=rgb.contiguous(), alpha=None if alpha is None else alpha.contiguous(),
                      channels=channels)


def join_image(rgb: torch.Tensor, channels: int = 3, alpha: Optional[torch.Tensor] = None) -> torch.Tensor:
    """[B, 3, H, W] frames (+ alpha [B, 1, H, W]) -> ComfyUI IMAGE [B, H, W, channels]."""
    rgb = rgb.detach().to(device="cpu", dtype=torch.float32).clamp(0.0, 1.0)
    if channels == 1:
        out = rgb.mean(dim=1, keepdim=True)
    elif channels == 4:
        if alpha is None:
            alpha = torch.ones_like(rgb[:, :1])
        out = torch.cat([rgb, alpha.to(rgb)], dim=1)
    else:
        out = rgb
    return out.permute(0, 2, 3, 1).contiguous()


def blend_alpha(alpha0: torch.Tensor, alpha2: torch.Tensor, tau: float) -> torch.Tensor:
    """Alpha of an in-between frame: linear in tau (the model interpolates colour only)."""
    return alpha0 + (alpha2 - alpha0) * float(tau)


def variance_to_image(variance: torch.Tensor) -> torch.Tensor:
    """Per-pixel variance across samples [B, 3, H, W] -> a grey IMAGE [B, H, W, 3] in [0, 1].

    Shown as the standard deviation averaged over colour, scaled so 0.25 (a quarter of the
    value range) is white: the same scale for every frame, so frames compare directly.
    """
    std = variance.clamp(min=0).sqrt().mean(dim=1, keepdim=True)
    grey = (std / 0.25).clamp(0.0, 1.0).expand(-1, 3, -1, -1)
    return grey.permute(0, 2, 3, 1).contiguous().float()
