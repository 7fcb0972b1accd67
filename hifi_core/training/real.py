"""Real-footage triplets: video files and frame folders, cached, split, scene cuts removed.

Frames are decoded once (`video_io.iter_clip_rgb8`: PyAV for video files, OpenCV for folders) into a uint8
[N, H, W, 3] RGB array saved as .npy under the cache directory and memory-mapped afterwards,
so an epoch never re-decodes. Repeated frames (webcams that re-send a frame when capture
lags) are dropped first with the product's detector (`hifi_core.scenes.DuplicateDetector`,
default settings): a repeat as frame0, target or frame2 would teach and score a still frame
where the footage moves. A 2x-downscaled copy (area averaging; larger relative motion
per pixel) is cached the same way when asked for.

Triplet windows: a *span* s is the distance in source frames from frame0 to frame2; for
every k in 1..s-1 the target is frame i + k and tau = k / s (span 2: tau 1/2; span 4:
1/4, 1/2, 3/4). Validation triplets use the "gap g" convention of ../shared/docs/training-notes.md:
frame0 = i, target = i + g, frame2 = i + 2g (the midpoint, span 2g).

Train / validation split by frame ranges per clip: the first `train_fraction` of the frames
are training frames, the validation range starts `max_span` frames later (so no window of one
set touches a frame of the other) and runs to the end of the clip.

Scene cuts: the product's detector (`hifi_core.scenes.find_cuts`, the one the retime uses);
every window that spans a cut is dropped. (bikes: cuts after frames 29, 75, 136.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import HiFIInputError
from ..scenes import DuplicateDetector, find_cuts, frame_tensor, spans_cut
from ..video_io import IMAGE_SUFFIXES, iter_clip_rgb8
from .data import cache_key, default_cache_dir, save_array_atomic



def decode_clip(path: Path) -> np.ndarray:
    """Every frame of a video file or frame folder, uint8 [N, H, W, 3] RGB."""
    frames = [frame for _, frame in iter_clip_rgb8(path)]
    if not frames:
        raise HiFIInputError(f"{path}: the clip has no frames (a frame folder needs images named in "
                             f"order, {sorted(IMAGE_SUFFIXES)})")
    if len({f.shape for f in frames}) != 1:
        raise HiFIInputError(f"{path}: frames have different sizes; every frame of a clip must match")
    return np.stack(frames)


def drop_repeated_frames(frames: np.ndarray) -> np.ndarray:
    """The frames that `DuplicateDetector` keeps (each compared with the last kept one)."""
    detector = DuplicateDetector()
    keep = [i for i, frame in enumerate(frames) if not detector.update(frame_tensor(frame))]
    return frames if len(keep) == len(frames) else np.ascontiguousarray(frames[keep])


def downscale_frames(frames: np.ndarray, factor: int) -> np.ndarray:
    """Area-average every frame by an integer factor (size rounded down)."""
    import cv2

    if factor == 1:
        return frames
    height, width = frames.shape[1] // factor, frames.shape[2] // factor
    return np.stack([cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA) for f in frames])


def load_clip_frames(path: Path, scale: int = 1, cache_dir: Optional[Path] = None) -> np.ndarray:
    """uint8 [N, H, W, 3] RGB frames of a video file or frame folder, repeated frames dropped,
    memory-mapped from the cache."""
    path = Path(path)
    if not path.exists():
        raise HiFIInputError(f"{path}: no such clip; check the data paths in the training config")
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cached = cache_dir / "clips" / f"{path.stem}-{cache_key(path, scale)}-x{scale}-unique.npy"
    if not cached.exists():
        if scale == 1:
            frames = drop_repeated_frames(decode_clip(path))
        else:
            frames = downscale_frames(load_clip_frames(path, 1, cache_dir), scale)
        save_array_atomic(cached, frames)
    return np.load(cached, mmap_mode="r")


@dataclass(frozen=True)
class SplitConfig:
    """Per-clip frame-range split.

    Attributes:
        train_fraction: leading fraction of each clip used for training.
        max_span: the largest window (frames) either set uses; the validation range starts
            this many frames after the training range so windows never share a frame.
    """

    train_fraction: float = 0.8
    max_span: int = 6

    def __post_init__(self) -> None:
        if not 0.0 < self.train_fraction < 1.0:
            raise HiFIInputError(f"train_fraction={self.train_fraction} must be in (0, 1)")
        if self.max_span < 2:
            raise HiFIInputError(f"max_span={self.max_span} must be at least 2")


def split_ranges(num_frames: int, split: SplitConfig) -> Tuple[range, range]:
    """(training frames, validation frames) of a clip with `num_frames` frames."""
    n_train = int(num_frames * split.train_fraction)
    return range(0, n_train), range(min(num_frames, n_train + split.max_span), num_frames)


@dataclass(frozen=True)
class Window:
    """A triplet inside one clip: frame indices (frame0, target, frame2) and tau."""

    clip: int
    scale: int
    first: int
    target: int
    last: int

    @property
    def tau(self) -> float:
        return (self.target - self.first) / (self.last - self.first)


def windows_in(frames: range, spans: Sequence[int], cuts: Sequence[int], clip: int, scale: int) -> List[Window]:
    """Every (frame0, target, frame2) window of the given spans inside a frame range, no cuts."""
    out = []
    for span in spans:
        for first in range(frames.start, frames.stop - span):
            last = first + span
            if last >= frames.stop or spans_cut(first, last, cuts):
                continue
            out.extend(Window(clip, scale, first, first + k, last) for k in range(1, span))
    return out


@dataclass
class RealClips:
    """Decoded clips with their cuts and training windows.

    Args:
        paths: video files or frame folders.
        spans: frame0-to-frame2 distances used for training windows.
        scales: integer downscale factors to draw windows from (1 = full size, 2 = half).
        split: the train / validation split.
        cache_dir: decoded-frame cache (default `default_cache_dir()`).
    """

    paths: Sequence[Path]
    spans: Sequence[int] = (2, 3, 4)
    scales: Sequence[int] = (1, 2)
    split: SplitConfig = field(default_factory=SplitConfig)
    cache_dir: Optional[Path] = None

    def __post_init__(self) -> None:
        self.paths = [Path(p) for p in self.paths]
        if not self.paths:
            raise HiFIInputError("no real clips given; list video files or frame folders in data.clips")
        if max(self.spans) > self.split.max_span or min(self.spans) < 2:
            raise HiFIInputError(f"spans {list(self.spans)} must be in 2..split.max_span ({self.split.max_span})")
        self.frames: Dict[Tuple[int, int], np.ndarray] = {}
        self.cuts: List[List[int]] = []
        for c in range(len(self.paths)):
            for s in sorted(set(self.scales) | {1}):
                self.clip_frames(c, s)
            self.cuts.append(find_cuts(self.frames[(c, 1)]))
        self.train_windows: List[Window] = []
        for c in range(len(self.paths)):
            train, _ = split_ranges(len(self.frames[(c, 1)]), self.split)
            for s in self.scales:
                self.train_windows.extend(windows_in(train, self.spans, self.cuts[c], c, s))
        if not self.train_windows:
            raise HiFIInputError("the real clips yield no training windows (too short or all cuts)")

    def clip_frames(self, clip: int, scale: int) -> np.ndarray:
        """uint8 [N, H, W, 3] frames of one clip at one downscale factor (decoded on first use)."""
        if (clip, scale) not in self.frames:
            self.frames[(clip, scale)] = load_clip_frames(self.paths[clip], scale, self.cache_dir)
        return self.frames[(clip, scale)]

    def name(self, clip: int) -> str:
        return self.paths[clip].stem

    def window_frames(self, window: Window) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        frames = self.clip_frames(window.clip, window.scale)
        return (np.asarray(frames[window.first]), np.asarray(frames[window.target]),
                np.asarray(frames[window.last]))

    def validation_windows(self, gaps: Sequence[int], per_clip: int, scale: int = 1) -> List[Window]:
        """Up to `per_clip` evenly spaced midpoint windows per clip and gap, from the held-out range.

        `scale` only selects which cached copy the frames come from (2 = half size, cheaper).
        """
        out = []
        for c in range(len(self.paths)):
            _, val = split_ranges(len(self.frames[(c, 1)]), self.split)
            for gap in gaps:
                candidates = windows_in(val, [2 * gap], self.cuts[c], c, scale)
                candidates = [w for w in candidates if w.target - w.first == gap]
                if not candidates:
                    continue
                picks = np.linspace(0, len(candidates) - 1, min(per_clip, len(candidates)))
                out.extend(candidates[int(round(p))] for p in picks)
        return out
