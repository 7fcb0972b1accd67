"""The Efficient U-Net (DDVM / Imagen style) that predicts v (or -x, see DiffusionConfig.prediction).

Inputs:
    x:       [B, 12, H, W] = noisy target z_t, frame0, frame2, low-res condition (model space
             [-1, 1]; the condition is all zeros at the base level of the cascade).
    logsnr:  [B] log-SNR of z_t.
    tau:     [B] interpolation time in (0, 1).
    has_cond:[B] bool, whether the condition channels carry an estimate (False = dropped).
Output:
    v:       [B, 3, H, W] (-x_hat for an x-prediction model; HiFIModel converts).

Architecture: a stem conv (after a space-to-depth fold when `stem_factor` > 1), then per level (downsample before the level's convs) ResNet blocks
with GroupNorm + SiLU and FiLM (scale/shift from the embedding of logsnr, tau and has_cond),
self-attention only in the lowest-resolution levels, and a mirrored decoder whose every block
takes the matching encoder activation as a skip scaled by 1/sqrt(2); upsampling after a
level's convs; zero-initialised output conv (unfolded depth-to-space with a stem fold), so an
untrained model predicts 0 (at t = 1: its base).

Conventions: H and W must be multiples of `config.alignment`. Layers are built from
`operations` (default `torch.nn`) so a host such as ComfyUI can inject its own layer types.
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import List, Optional

import torch
import torch.nn.functional as F
from torch import nn

from .config import UNetConfig

SKIP_SCALE = 1.0 / math.sqrt(2.0)


def _groups(channels: int, wanted: int) -> int:
    """Largest group count <= wanted that divides channels."""
    groups = min(wanted, channels)
    while channels % groups:
        groups -= 1
    return groups


def sinusoidal_embedding(values: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """[B] scalars -> [B, dim] sin/cos features at geometric frequencies."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=values.device,
                                                            dtype=torch.float32) / half)
    angles = values.float()[:, None] * freqs[None]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-Conv, FiLM from the embedding, GroupNorm-SiLU-Dropout-Conv, residual."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, groups: int, dropout: float,
                 ops: ModuleType):
        super().__init__()
        self.norm1 = ops.GroupNorm(_groups(in_ch, groups), in_ch)
        self.conv1 = ops.Conv2d(in_ch, out_ch, 3, padding=1)
        self.film = ops.Linear(emb_dim, 2 * out_ch)
        self.norm2 = ops.GroupNorm(_groups(out_ch, groups), out_ch)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = ops.Conv2d(out_ch, out_ch, 3, padding=1)
        self.shortcut = ops.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.film(emb)[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.dropout(F.silu(h)))
        return (h + self.shortcut(x)) * SKIP_SCALE


class SelfAttention(nn.Module):
    """Global multi-head self-attention over all positions, residual."""

    def __init__(self, channels: int, heads: int, groups: int, ops: ModuleType):
        super().__init__()
        self.heads = heads
        self.norm = ops.GroupNorm(_groups(channels, groups), channels)
        self.qkv = ops.Conv2d(channels, 3 * channels, 1)
        self.proj = ops.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w)
        # Contiguous [B, heads, positions, head_dim]: strided inputs make PyTorch fall back to
        # the kernel that materialises the positions x positions matrix (GBs per 256^2 patch).
        q, k, v = qkv.permute(1, 0, 2, 4, 3).contiguous().unbind(0)
        out = F.scaled_dot_product_attention(q, k, v)
        out = out.transpose(-1, -2).reshape(b, c, h, w)
        return (x + self.proj(out)) * SKIP_SCALE


class EfficientUNet(nn.Module):
    """The U-Net; see the module docstring for inputs, outputs and layout."""

    def __init__(self, config: UNetConfig, operations: ModuleType = nn):
        super().__init__()
        ops = operations
        self.config = config
        channels = config.level_channels
        num_levels = len(channels)
        emb_dim = 4 * config.base_channels
        self.feature_dim = config.base_channels
        self.embed = nn.Sequential(ops.Linear(2 * self.feature_dim, emb_dim), nn.SiLU(),
                                   ops.Linear(emb_dim, emb_dim))
        self.cond_flag = nn.Embedding(2, emb_dim)
        fold = config.stem_factor
        # space-to-depth stem: each fold x fold block of pixels becomes fold**2 channels
        self.fold = nn.PixelUnshuffle(fold) if fold > 1 else nn.Identity()
        self.unfold = nn.PixelShuffle(fold) if fold > 1 else nn.Identity()
        self.stem = ops.Conv2d(config.in_channels * fold * fold, channels[0], 3, padding=1)
        attention_from = num_levels - config.attention_levels

        def attention(level: int, ch: int) -> nn.Module:
            if level >= attention_from:
                return SelfAttention(ch, config.attention_heads, config.norm_groups, ops)
            return nn.Identity()

        self.downsamplers = nn.ModuleList()
        self.encoder = nn.ModuleList()
        self.encoder_attention = nn.ModuleList()
        for level, (ch, blocks) in enumerate(zip(channels, config.blocks_per_level)):
            prev = channels[level - 1] if level else ch
            self.downsamplers.append(ops.Conv2d(prev, ch, 3, stride=2, padding=1) if level else nn.Identity())
            self.encoder.append(nn.ModuleList(
                ResBlock(ch, ch, emb_dim, config.norm_groups, config.dropout, ops) for _ in range(blocks)))
            self.encoder_attention.append(nn.ModuleList(attention(level, ch) for _ in range(blocks)))

        self.decoder = nn.ModuleList()
        self.decoder_attention = nn.ModuleList()
        self.upsamplers = nn.ModuleList()
        for level, (ch, blocks) in enumerate(zip(channels, config.blocks_per_level)):
            self.decoder.append(nn.ModuleList(
                ResBlock(2 * ch, ch, emb_dim, config.norm_groups, config.dropout, ops) for _ in range(blocks)))
            self.decoder_attention.append(nn.ModuleList(attention(level, ch) for _ in range(blocks)))
            prev = channels[level - 1] if level else ch
            self.upsamplers.append(ops.Conv2d(ch, prev, 3, padding=1) if level else nn.Identity())

        self.out_norm = ops.GroupNorm(_groups(channels[0], config.norm_groups), channels[0])
        self.out_conv = ops.Conv2d(channels[0], config.out_channels * fold * fold, 3, padding=1)
        nn.init.zeros_(self.out_conv.weight)
        nn.init.zeros_(self.out_conv.bias)

    def embedding(self, logsnr: torch.Tensor, tau: torch.Tensor, has_cond: torch.Tensor) -> torch.Tensor:
        # log-SNR spans about [-20, 20]; tau spans (0, 1): scale both to similar angular ranges.
        features = torch.cat([sinusoidal_embedding(logsnr * 50.0, self.feature_dim),
                              sinusoidal_embedding(tau * 1000.0, self.feature_dim)], dim=1)
        features = features.to(self.embed[0].weight.dtype)
        return self.embed(features) + self.cond_flag(has_cond.long())

    def forward(self, x: torch.Tensor, logsnr: torch.Tensor, tau: torch.Tensor,
                has_cond: Optional[torch.Tensor] = None) -> torch.Tensor:
        if has_cond is None:
            has_cond = x[:, 9:].flatten(1).abs().amax(dim=1) > 0
        emb = self.embedding(logsnr, tau, has_cond)
        h = self.stem(self.fold(x))
        skips: List[torch.Tensor] = []
        for down, blocks, attns in zip(self.downsamplers, self.encoder, self.encoder_attention):
            h = down(h)
            for block, attn in zip(blocks, attns):
                h = attn(block(h, emb))
                skips.append(h)
        for level in reversed(range(len(self.decoder))):
            for block, attn in zip(self.decoder[level], self.decoder_attention[level]):
                h = attn(block(torch.cat([h, skips.pop() * SKIP_SCALE], dim=1), emb))
            if level:
                h = self.upsamplers[level](F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.unfold(self.out_conv(F.silu(self.out_norm(h))))
