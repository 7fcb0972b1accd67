"""Synthetic layered motion over real photos, with exact ground truth at any tau.

Output: uint8 [h, w, 3] RGB frames at tau = 0, tau_target and 1 (and the tau).

Scene model: a background (a photo, randomly zoomed) and 1-4 foreground layers (crops of
other photos, or a tiled patch of one for repetitive texture) with hard or soft masks
(ellipses, polygons, thin bars). Every layer has its own motion, *linear in tau* in
translation, rotation angle and log-scale, so the frame at any tau is rendered exactly: each
layer is warped with `cv2.warpAffine` by its affine at that tau and the layers are composited
back to front with their (equally warped) masks.

Scale: the scene is rendered on a canvas `render_scale` times larger than the output (drawn
log-uniformly in [1, max_render_scale]) and area-downscaled, which both anti-aliases and
gives the small-crop equivalent of a large frame. Displacements per layer are drawn
log-uniformly between `min_motion` and `max_motion_fraction` x the canvas side (canvas px):
from a fraction of a pixel to hundreds of pixels at canvas resolution.

Photos are decoded once, resized to `photo_size` on the long side, and cached as uint8 .npy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

from ..errors import HiFIInputError
from .data import cache_key, default_cache_dir, save_array_atomic

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}


def find_photos(root: Path) -> List[Path]:
    root = Path(root)
    if not root.is_dir():
        raise HiFIInputError(f"{root}: no such photo folder; set data.photos in the training config")
    photos = sorted(p for p in root.rglob("*") if p.suffix.lower() in PHOTO_SUFFIXES and p.is_file())
    if len(photos) < 2:
        raise HiFIInputError(f"{root}: needs at least 2 photos (found {len(photos)})")
    return photos


def load_photo(path: Path, size: int, cache_dir: Optional[Path] = None) -> np.ndarray:
    """uint8 [H, W, 3] RGB photo with its long side resized to `size` (cached)."""
    import cv2

    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cached = cache_dir / "photos" / f"{path.stem}-{cache_key(path, size)}.npy"
    if not cached.exists():
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise HiFIInputError(f"{path}: cannot read this photo; remove it from the photo folder")
        scale = size / max(image.shape[:2])
        if scale < 1:
            image = cv2.resize(image, (round(image.shape[1] * scale), round(image.shape[0] * scale)),
                               interpolation=cv2.INTER_AREA)
        save_array_atomic(cached, cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    return np.load(cached)


@dataclass(frozen=True)
class SyntheticConfig:
    """Synthetic scene knobs (see the module docstring)."""

    photo_size: int = 1024
    max_render_scale: float = 4.0
    min_layers: int = 1
    max_layers: int = 4
    min_motion: float = 1.0
    max_motion_fraction: float = 0.5
    max_rotation: float = 0.35
    max_log_scale: float = 0.3
    background_static_prob: float = 0.3
    texture_prob: float = 0.25
    soft_mask_prob: float = 0.5
    midpoint_prob: float = 0.5

    def __post_init__(self) -> None:
        if self.photo_size < 64:
            raise HiFIInputError(f"synthetic.photo_size={self.photo_size} must be at least 64")
        if self.max_render_scale < 1:
            raise HiFIInputError(f"synthetic.max_render_scale={self.max_render_scale} must be >= 1")
        if not 0 <= self.min_layers <= self.max_layers:
            raise HiFIInputError(f"synthetic layers: need 0 <= min_layers ({self.min_layers}) <= "
                                 f"max_layers ({self.max_layers})")
        if not 0 < self.min_motion and 0 < self.max_motion_fraction <= 2:
            raise HiFIInputError("synthetic motion range must be positive (min_motion, max_motion_fraction)")


@dataclass(frozen=True)
class LayerMotion:
    """Affine motion of a layer, linear in tau: source point q -> canvas point.

    p(tau) = zoom * exp(log_scale0 + tau * d_log_scale) * R(angle0 + tau * d_angle) (q - anchor)
             + centre0 + tau * displacement
    """

    anchor: Tuple[float, float]
    centre0: Tuple[float, float]
    displacement: Tuple[float, float]
    zoom: float
    angle0: float = 0.0
    d_angle: float = 0.0
    log_scale0: float = 0.0
    d_log_scale: float = 0.0

    def matrix(self, tau: float) -> np.ndarray:
        """2x3 source->canvas affine at tau (for cv2.warpAffine)."""
        s = self.zoom * math.exp(self.log_scale0 + tau * self.d_log_scale)
        a = self.angle0 + tau * self.d_angle
        lin = s * np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
        centre = np.array(self.centre0) + tau * np.array(self.displacement)
        offset = centre - lin @ np.array(self.anchor)
        return np.hstack([lin, offset[:, None]]).astype(np.float64)


@dataclass
class Layer:
    image: np.ndarray          # float32 [h, w, 3] 0..255
    mask: Optional[np.ndarray]  # float32 [h, w] 0..1, None = opaque everywhere (background)
    motion: LayerMotion


def render(layers: Sequence[Layer], tau: float, canvas: Tuple[int, int]) -> np.ndarray:
    """Composite the layers back to front at tau: float32 [H, W, 3] 0..255 on the canvas."""
    import cv2

    height, width = canvas
    out = np.zeros((height, width, 3), np.float32)
    for layer in layers:
        m = layer.motion.matrix(tau)
        border = cv2.BORDER_REFLECT101 if layer.mask is None else cv2.BORDER_CONSTANT
        warped = cv2.warpAffine(layer.image, m, (width, height), flags=cv2.INTER_LINEAR, borderMode=border)
        if layer.mask is None:
            out = warped
            continue
        alpha = cv2.warpAffine(layer.mask, m, (width, height), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT)[..., None]
        out = out * (1.0 - alpha) + warped * alpha
    return out


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(max(hi, lo)))))


def _random_mask(rng: np.random.Generator, h: int, w: int, soft: bool) -> np.ndarray:
    import cv2

    mask = np.zeros((h, w), np.float32)
    kind = rng.choice(["ellipse", "polygon", "bar", "bar", "rect"]) if min(h, w) > 4 else "rect"
    cy, cx = h / 2, w / 2
    if kind == "ellipse":
        cv2.ellipse(mask, (int(cx), int(cy)), (max(1, int(w * rng.uniform(0.3, 0.5))),
                    max(1, int(h * rng.uniform(0.3, 0.5)))), 0, 0, 360, 1.0, -1, cv2.LINE_AA)
    elif kind == "polygon":
        n = int(rng.integers(3, 8))
        angles = np.sort(rng.uniform(0, 2 * np.pi, n))
        radii = rng.uniform(0.25, 0.5, n)
        pts = np.stack([cx + radii * w * np.cos(angles), cy + radii * h * np.sin(angles)], 1)
        cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 1.0, cv2.LINE_AA)
    elif kind == "bar":
        # thin structure: a bar a few px thick across the sprite
        thickness = int(rng.integers(2, max(3, min(h, w) // 8)))
        angle = rng.uniform(0, np.pi)
        half = 0.5 * max(h, w) * rng.uniform(0.5, 1.0)
        p0 = (int(cx - half * np.cos(angle)), int(cy - half * np.sin(angle)))
        p1 = (int(cx + half * np.cos(angle)), int(cy + half * np.sin(angle)))
        cv2.line(mask, p0, p1, 1.0, thickness, cv2.LINE_AA)
    else:
        mask[int(h * 0.1):int(h * 0.9), int(w * 0.1):int(w * 0.9)] = 1.0
    if soft:
        sigma = rng.uniform(0.5, 3.0)
        mask = cv2.GaussianBlur(mask, (0, 0), sigma)
    return np.clip(mask, 0.0, 1.0)


def _crop(rng: np.random.Generator, photo: np.ndarray, h: int, w: int) -> np.ndarray:
    import cv2

    ph, pw = photo.shape[:2]
    if ph < h or pw < w:
        scale = max(h / ph, w / pw) * 1.01
        photo = cv2.resize(photo, (math.ceil(pw * scale), math.ceil(ph * scale)), interpolation=cv2.INTER_LINEAR)
        ph, pw = photo.shape[:2]
    y, x = int(rng.integers(0, ph - h + 1)), int(rng.integers(0, pw - w + 1))
    return photo[y:y + h, x:x + w]


def _texture(rng: np.random.Generator, photo: np.ndarray, h: int, w: int) -> np.ndarray:
    """Repetitive texture: a small photo patch tiled (or stripes), the aperture problem case."""
    if rng.random() < 0.5:
        th, tw = int(rng.integers(4, 25)), int(rng.integers(4, 25))
        tile = _crop(rng, photo, th, tw)
        return np.tile(tile, (h // th + 1, w // tw + 1, 1))[:h, :w]
    period = rng.uniform(3, 16)
    angle = rng.uniform(0, np.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    wave = 0.5 + 0.5 * np.sign(np.sin(2 * np.pi * (xx * np.cos(angle) + yy * np.sin(angle)) / period))
    colours = rng.uniform(0, 255, (2, 3)).astype(np.float32)
    return (colours[0] * wave[..., None] + colours[1] * (1 - wave[..., None])).astype(np.uint8)


def _motion(rng: np.random.Generator, config: SyntheticConfig, canvas_side: float, static: bool) -> dict:
    if static:
        return dict(displacement=(0.0, 0.0), d_angle=0.0, d_log_scale=0.0)
    magnitude = _log_uniform(rng, config.min_motion, config.max_motion_fraction * canvas_side)
    direction = rng.uniform(0, 2 * np.pi)
    # rotation and zoom grow with the motion so small motions stay small everywhere
    strength = min(1.0, magnitude / (0.25 * canvas_side))
    return dict(displacement=(magnitude * math.cos(direction), magnitude * math.sin(direction)),
                d_angle=float(rng.uniform(-1, 1) * config.max_rotation * strength * (rng.random() < 0.5)),
                d_log_scale=float(rng.uniform(-1, 1) * config.max_log_scale * strength * (rng.random() < 0.5)))


class SyntheticScenes:
    """Renders random layered-motion triplets over a folder of photos.

    Args:
        photo_root: folder searched recursively for photos.
        config: scene knobs.
        cache_dir: where resized photos are cached.
    """

    def __init__(self, photo_root: Path, config: Optional[SyntheticConfig] = None,
                 cache_dir: Optional[Path] = None):
        self.config = config or SyntheticConfig()
        self.paths = find_photos(photo_root)
        self.photos = [load_photo(p, self.config.photo_size, cache_dir) for p in self.paths]

    def random_layers(self, rng: np.random.Generator, canvas: Tuple[int, int]) -> List[Layer]:
        cfg = self.config
        height, width = canvas
        side = float(min(height, width))
        order = rng.permutation(len(self.photos))
        bg_photo = self.photos[order[0]]
        ph, pw = bg_photo.shape[:2]
        zoom_min = max(height / ph, width / pw)
        zoom = _log_uniform(rng, zoom_min, max(zoom_min * 1.01, 1.0))  # never magnify: keep detail
        anchor = (rng.uniform(0.3, 0.7) * pw, rng.uniform(0.3, 0.7) * ph)
        centre = (width / 2.0, height / 2.0)
        motion = _motion(rng, cfg, side, rng.random() < cfg.background_static_prob)
        # start from -d/2 so the midpoint frame is centred on the anchor
        centre0 = (centre[0] - motion["displacement"][0] / 2, centre[1] - motion["displacement"][1] / 2)
        layers = [Layer(bg_photo.astype(np.float32), None,
                        LayerMotion(anchor=anchor, centre0=centre0, zoom=zoom, **motion))]
        for i in range(int(rng.integers(cfg.min_layers, cfg.max_layers + 1))):
            photo = self.photos[order[1 + i % (len(order) - 1)]]
            layer_zoom = _log_uniform(rng, 0.3, 1.0)
            size = side * rng.uniform(0.1, 0.6) / layer_zoom  # sprite size in source px
            sh = max(4, int(size * _log_uniform(rng, 0.5, 2.0) ** 0.5))
            sw = max(4, int(size / _log_uniform(rng, 0.5, 2.0) ** 0.5))
            texture = rng.random() < cfg.texture_prob
            sprite = _texture(rng, photo, sh, sw) if texture else _crop(rng, photo, sh, sw)
            mask = _random_mask(rng, sh, sw, soft=rng.random() < cfg.soft_mask_prob)
            motion = _motion(rng, cfg, side, static=False)
            layers.append(Layer(np.ascontiguousarray(sprite, dtype=np.float32), mask, LayerMotion(
                anchor=(sw / 2.0, sh / 2.0),
                centre0=(rng.uniform(0, width), rng.uniform(0, height)),
                zoom=layer_zoom, angle0=float(rng.uniform(0, 2 * np.pi)),
                log_scale0=0.0, **motion)))
        return layers

    def sample(self, rng: np.random.Generator, size: Tuple[int, int],
               tau: Optional[float] = None) -> Tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """(frame0, target, frame2, tau): uint8 [h, w, 3] RGB frames of a random scene."""
        import cv2

        cfg = self.config
        height, width = size
        if tau is None:
            tau = 0.5 if rng.random() < cfg.midpoint_prob else float(rng.uniform(0.05, 0.95))
        scale = _log_uniform(rng, 1.0, cfg.max_render_scale)
        canvas = (max(height, round(height * scale)), max(width, round(width * scale)))
        layers = self.random_layers(rng, canvas)
        frames = []
        for t in (0.0, tau, 1.0):
            image = render(layers, t, canvas)
            if canvas != (height, width):
                image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
            frames.append(np.clip(np.round(image), 0, 255).astype(np.uint8))
        return frames[0], frames[1], frames[2], float(tau)
