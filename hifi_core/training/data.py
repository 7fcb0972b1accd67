"""Training triplets, frame caches and augmentation shared by the real and synthetic sources.

Examples are `hifi_core.triplet.Triplet`s (float32 tensors [3, h, w] in [0, 1]: frame0, target
at tau, frame2). Sources produce uint8 [H, W, 3] numpy arrays (OpenCV layout, but RGB order)
and convert to tensors at the end (`to_tensor`).

Augmentation (paper, Sec. 4): random crop, multi-resolution crop (a random rectangle between
the crop size and the full frame, resized to the crop size with area averaging), horizontal,
vertical and temporal flips with p = 0.5 each. The temporal flip swaps frame0 and frame2 and
maps tau -> 1 - tau. Every random choice comes from a numpy Generator the caller passes in,
so a sample is a pure function of its seed.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional, Sequence, Tuple

import numpy as np
import torch

from ..errors import HiFIInputError
from ..triplet import Triplet


def default_cache_dir() -> Path:
    """Where decoded frames and photos are cached ($HIFI_CACHE or ~/.cache/hifi)."""
    return Path(os.environ.get("HIFI_CACHE", Path.home() / ".cache" / "hifi"))


def cache_key(path: Path, *extra) -> str:
    """A file-content-independent but change-aware key: path, size, mtime and options."""
    stat = path.stat()
    text = f"{path.resolve()}|{stat.st_size}|{int(stat.st_mtime)}|{extra}"
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def save_array_atomic(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp.npy")
    np.save(tmp, array)
    os.replace(tmp, path)


# ---------------------------------------------------------------- augmentation

@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation knobs.

    Attributes:
        multires_prob: probability of a multi-resolution crop (else a plain random crop).
        hflip, vflip, tflip: probabilities of horizontal, vertical and temporal flips.
    """

    multires_prob: float = 0.5
    hflip: float = 0.5
    vflip: float = 0.5
    tflip: float = 0.5

    def __post_init__(self) -> None:
        for name in ("multires_prob", "hflip", "vflip", "tflip"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise HiFIInputError(f"augment.{name}={getattr(self, name)} must be a probability in [0, 1]")


def crop_frames(frames: Sequence[np.ndarray], crop: Tuple[int, int], rng: np.random.Generator,
                multires_prob: float) -> list:
    """The same random (multi-resolution) crop of every frame, resized to `crop` (h, w)."""
    import cv2

    height, width = frames[0].shape[:2]
    ch, cw = crop
    if height < ch or width < cw:
        # frames smaller than the crop: upscale first so a crop fits
        scale = max(ch / height, cw / width)
        size = (int(np.ceil(width * scale)), int(np.ceil(height * scale)))
        frames = [cv2.resize(f, size, interpolation=cv2.INTER_LINEAR) for f in frames]
        height, width = frames[0].shape[:2]
    if rng.random() < multires_prob:
        # a rectangle between the crop size and the full frame, same aspect as the crop
        max_scale = min(height / ch, width / cw)
        scale = float(np.exp(rng.uniform(0.0, np.log(max(max_scale, 1.0)))))
        rh, rw = min(height, int(round(ch * scale))), min(width, int(round(cw * scale)))
    else:
        rh, rw = ch, cw
    y = int(rng.integers(0, height - rh + 1))
    x = int(rng.integers(0, width - rw + 1))
    out = []
    for f in frames:
        region = f[y:y + rh, x:x + rw]
        if (rh, rw) != (ch, cw):
            region = cv2.resize(region, (cw, ch), interpolation=cv2.INTER_AREA)
        out.append(np.ascontiguousarray(region))
    return out


def flip_triplet(frame0: np.ndarray, target: np.ndarray, frame2: np.ndarray, tau: float,
                 rng: np.random.Generator, config: AugmentConfig):
    """Random horizontal / vertical / temporal flips; returns (frame0, target, frame2, tau)."""
    frames = [frame0, target, frame2]
    if rng.random() < config.hflip:
        frames = [f[:, ::-1] for f in frames]
    if rng.random() < config.vflip:
        frames = [f[::-1] for f in frames]
    if rng.random() < config.tflip:
        frames = frames[::-1]
        tau = 1.0 - tau
    return (*[np.ascontiguousarray(f) for f in frames], tau)


def temporal_flip(triplet: Triplet) -> Triplet:
    """The same triplet played backwards: frame0 <-> frame2, tau -> 1 - tau."""
    return replace(triplet, frame0=triplet.frame2, frame2=triplet.frame0, tau=1.0 - triplet.tau)


def collate(triplets: Sequence[Triplet]):
    """Stack triplets into (frame0, target, frame2 [B, 3, h, w], tau [B])."""
    return (torch.stack([t.frame0 for t in triplets]), torch.stack([t.target for t in triplets]),
            torch.stack([t.frame2 for t in triplets]),
            torch.tensor([t.tau for t in triplets], dtype=torch.float32))


def optional_rng(rng: Optional[np.random.Generator]) -> np.random.Generator:
    return rng if rng is not None else np.random.default_rng()
