"""Scene-cut and duplicate-frame detection between consecutive frames.

Frames are float tensors `[3, H, W]` (or `[1, 3, H, W]`) RGB in `[0, 1]`. Every measure works
on a *thumbnail*: the frame turned grey (BT.601 luma weights) and area-downscaled so its
longer side is at most `THUMB_SIZE` (128) px, which averages away compression noise and
makes the cost independent of the resolution (a 4K frame is reduced once, then compared).

Scene cut score, in [0, 1], between consecutive frames a and b:
    score = 0.5 * mean|thumb(a) - thumb(b)|  +  0.5 * hist_distance(a, b)
where hist_distance is half the L1 distance between 32-bin grey histograms (0 = same
histogram, 1 = disjoint). The first term reacts to any change of structure, the second is
blind to motion (moving content keeps its histogram), so a fast pan scores far lower than a
cut to another shot. `SceneCutDetector` declares a cut when BOTH:
    score >= threshold                                   (absolute; default 0.15)
    score >= ratio * median(previous `window` scores)   (relative; default 3.0, window 8)
The relative test is what keeps motion from triggering: in a shot with steady fast motion
the recent scores are high, so only a jump well above them counts. It needs no look-ahead,
so it works one frame at a time (streaming). A gradual fade or dissolve is not a cut.

Duplicate frames: b duplicates a when mean|thumb(a) - thumb(b)| < `dup_threshold` (default
0.004, about 1/255) AND max|thumb(a) - thumb(b)| < `dup_max_threshold` (default 0.05), the
second test keeping a small moving object (a cursor) from being averaged away.
`DuplicateDetector` compares each frame with the last frame it *kept*, so a very slow change
is eventually kept rather than dropped frame after frame, and it keeps at least one frame in
every `max_run + 1` (default 4 dropped in a row at most), so a genuinely frozen shot is not
merged into one long slow in-between.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass
from typing import Iterable, List, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from kornia.color import rgb_to_grayscale

from .errors import HiFIInputError
from .triplet import to_tensor

THUMB_SIZE = 128
GREY_BAND_ROWS = 256  # rows turned grey at a time
HIST_BINS = 32
DEFAULT_SCENE_THRESHOLD = 0.15
DEFAULT_SCENE_RATIO = 3.0
DEFAULT_SCENE_WINDOW = 8
DEFAULT_DUP_THRESHOLD = 0.004
DEFAULT_DUP_MAX_THRESHOLD = 0.05
DEFAULT_DUP_MAX_RUN = 4


def thumbnail(frame: torch.Tensor, size: int = THUMB_SIZE) -> torch.Tensor:
    """Grey, area-downscaled copy of a frame: float32 `[h, w]` in [0, 1], max(h, w) <= size."""
    if frame.dim() == 4:
        if frame.shape[0] != 1:
            raise HiFIInputError(f"thumbnail takes one frame, got a batch of {frame.shape[0]}")
        frame = frame[0]
    if frame.dim() != 3 or frame.shape[0] != 3:
        raise HiFIInputError(f"expected a frame [3, H, W] in [0, 1], got shape {tuple(frame.shape)}")
    grey = _grey(frame.detach())[None, None]
    h, w = grey.shape[-2:]
    scale = min(1.0, size / max(h, w))
    if scale < 1.0:
        out = (max(1, round(h * scale)), max(1, round(w * scale)))
        grey = F.adaptive_avg_pool2d(grey, out)
    return grey[0, 0].clamp(0.0, 1.0)


def _grey(frame: torch.Tensor) -> torch.Tensor:
    """BT.601 luma of a `[3, H, W]` frame, float32 `[H, W]` on the CPU, a band of rows at a
    time (a half-precision 8K frame is never copied whole to float32, 400 MB)."""
    grey = torch.empty(frame.shape[-2:], dtype=torch.float32)
    for top in range(0, frame.shape[1], GREY_BAND_ROWS):
        rows = frame[:, top:top + GREY_BAND_ROWS].to("cpu", torch.float32)
        grey[top:top + GREY_BAND_ROWS] = rgb_to_grayscale(rows)[0]  # BT.601 weights
    return grey


def mean_abs_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean absolute difference of two thumbnails (0..1)."""
    return float((a - b).abs().mean())


def max_abs_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest absolute difference of two thumbnails (0..1)."""
    return float((a - b).abs().max())


def histogram(thumb: torch.Tensor, bins: int = HIST_BINS) -> torch.Tensor:
    """Normalised grey histogram of a thumbnail (sums to 1)."""
    hist = torch.histc(thumb, bins=bins, min=0.0, max=1.0)
    return hist / hist.sum().clamp_min(1.0)


def histogram_distance(a: torch.Tensor, b: torch.Tensor, bins: int = HIST_BINS) -> float:
    """Half the L1 distance between the grey histograms of two thumbnails (0..1)."""
    return 0.5 * float((histogram(a, bins) - histogram(b, bins)).abs().sum())


def cut_score(a: torch.Tensor, b: torch.Tensor) -> float:
    """Scene-change score between two thumbnails, in [0, 1] (see the module docstring)."""
    return 0.5 * mean_abs_difference(a, b) + 0.5 * histogram_distance(a, b)


def is_duplicate(a: torch.Tensor, b: torch.Tensor, threshold: float = DEFAULT_DUP_THRESHOLD,
                 max_threshold: float = DEFAULT_DUP_MAX_THRESHOLD) -> bool:
    """Whether thumbnail b shows the same picture as thumbnail a (up to compression noise)."""
    return mean_abs_difference(a, b) < threshold and max_abs_difference(a, b) < max_threshold


@dataclass(frozen=True)
class SceneSettings:
    """Scene-cut detection settings (see the module docstring for their meaning)."""

    threshold: float = DEFAULT_SCENE_THRESHOLD
    ratio: float = DEFAULT_SCENE_RATIO
    window: int = DEFAULT_SCENE_WINDOW

    def __post_init__(self):
        if not 0.0 < self.threshold <= 1.0:
            raise HiFIInputError(f"scene threshold {self.threshold} must be in (0, 1]; the "
                                 f"default is {DEFAULT_SCENE_THRESHOLD} (lower finds more cuts)")
        if self.ratio < 1.0:
            raise HiFIInputError(f"scene ratio {self.ratio} must be >= 1")
        if self.window < 1:
            raise HiFIInputError(f"scene window {self.window} must be >= 1")


@dataclass(frozen=True)
class DuplicateSettings:
    """Duplicate-frame detection settings (see the module docstring for their meaning)."""

    threshold: float = DEFAULT_DUP_THRESHOLD
    max_threshold: float = DEFAULT_DUP_MAX_THRESHOLD
    max_run: int = DEFAULT_DUP_MAX_RUN

    def __post_init__(self):
        if not 0.0 < self.threshold < 1.0 or not 0.0 < self.max_threshold <= 1.0:
            raise HiFIInputError(f"duplicate thresholds ({self.threshold}, {self.max_threshold}) "
                                 f"must be in (0, 1)")
        if self.max_run < 1:
            raise HiFIInputError(f"duplicate max_run {self.max_run} must be >= 1")


class SceneCutDetector:
    """Streaming scene-cut detector: feed frames in order, learn whether a cut precedes each.

    Example:
        detector = SceneCutDetector()
        for frame in frames:
            if detector.update(frame):
                ...  # a cut lies between the previous frame and this one
    """

    def __init__(self, settings: Optional[SceneSettings] = None):
        self.settings = settings or SceneSettings()
        self._previous: Optional[torch.Tensor] = None
        self._recent: deque = deque(maxlen=self.settings.window)
        self.last_score: Optional[float] = None

    def update(self, frame: torch.Tensor, thumb: Optional[torch.Tensor] = None) -> bool:
        """Add the next frame (or its precomputed `thumb`); True if a cut lies just before it."""
        thumb = thumbnail(frame) if thumb is None else thumb
        previous, self._previous = self._previous, thumb
        if previous is None or previous.shape != thumb.shape:
            self.last_score = None
            return False
        score = cut_score(previous, thumb)
        self.last_score = score
        s = self.settings
        baseline = statistics.median(self._recent) if self._recent else 0.0
        # the median ignores the odd cut score inside the window, so every score is kept
        self._recent.append(score)
        return score >= s.threshold and score >= s.ratio * baseline


class DuplicateDetector:
    """Streaming duplicate-frame detector comparing each frame with the last one kept."""

    def __init__(self, settings: Optional[DuplicateSettings] = None):
        self.settings = settings or DuplicateSettings()
        self._kept: Optional[torch.Tensor] = None
        self._run = 0

    def update(self, frame: torch.Tensor, thumb: Optional[torch.Tensor] = None) -> bool:
        """Add the next frame; True if it duplicates the last kept frame (drop it)."""
        thumb = thumbnail(frame) if thumb is None else thumb
        s = self.settings
        if (self._kept is not None and self._run < s.max_run and self._kept.shape == thumb.shape
                and is_duplicate(self._kept, thumb, s.threshold, s.max_threshold)):
            self._run += 1
            return True
        self._kept, self._run = thumb, 0
        return False


def frame_tensor(frame: Union[np.ndarray, torch.Tensor]) -> torch.Tensor:
    """A frame as the detectors take it: uint8 `[H, W, 3]` RGB arrays (as video stores them)
    become float `[3, H, W]` in [0, 1]; tensors pass through."""
    return frame if isinstance(frame, torch.Tensor) else to_tensor(frame)


def find_cuts(frames: Iterable[Union[np.ndarray, torch.Tensor]],
              settings: Optional[SceneSettings] = None) -> List[int]:
    """Indices i with a scene cut between frame i and frame i + 1, by `SceneCutDetector` (the
    one detector the retime, the training windows and the bench all use)."""
    detector = SceneCutDetector(settings)
    return [i - 1 for i, frame in enumerate(frames) if detector.update(frame_tensor(frame))]


def spans_cut(first: int, last: int, cuts: Sequence[int]) -> bool:
    """True when a cut lies between two consecutive frames of [first, last]."""
    return any(first <= c < last for c in cuts)
