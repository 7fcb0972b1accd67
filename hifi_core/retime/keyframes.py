"""Keyframes from decoded frames: scene cuts before them, duplicates dropped."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, List, NamedTuple, Optional

import torch

from ..scenes import (DuplicateDetector, DuplicateSettings, SceneCutDetector, SceneSettings, thumbnail)



# ---------------------------------------------------------------- keyframes


class Keyframe(NamedTuple):
    position: int
    image: torch.Tensor  # [3, H, W]
    cut_before: bool


@dataclass
class DetectionStats:
    """Counters filled while decoding (no per-frame lists)."""

    source_frames: int = 0
    duplicates: int = 0
    cuts: List[int] = field(default_factory=list)


def keyframes(frames: Iterator, *, scene: Optional[SceneSettings], dedup: Optional[DuplicateSettings],
              stats: DetectionStats) -> Iterator[Keyframe]:
    """Kept source frames with their cut flags, from a stream of `DecodedFrame`s."""
    cut_detector = SceneCutDetector(scene) if scene is not None else None
    dup_detector = DuplicateDetector(dedup) if dedup is not None else None
    for frame in frames:
        stats.source_frames = frame.index + 1
        thumb = thumbnail(frame.image) if (cut_detector or dup_detector) else None
        if dup_detector is not None and dup_detector.update(frame.image, thumb):
            stats.duplicates += 1
            continue
        cut = cut_detector.update(frame.image, thumb) if cut_detector is not None else False
        if cut:
            stats.cuts.append(frame.index)
        yield Keyframe(frame.index, frame.image, cut)
