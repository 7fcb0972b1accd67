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
    """Counters filled while decoding (no per-frame lists).

    Attributes:
        source_frames (int): source frames read so far.
        duplicates (int): frames dropped as duplicates.
        cuts (list of int): the first source frame after each scene cut.
        count_from, count_to (int, int or None): cuts and duplicates are counted only for
            source frames in [count_from, count_to) (one process's range when several share
            the file; default all).
    """

    source_frames: int = 0
    duplicates: int = 0
    cuts: List[int] = field(default_factory=list)
    count_from: int = 0
    count_to: Optional[int] = None

    def counts(self, index: int) -> bool:
        """Whether source frame `index`'s cut or duplicate is counted here."""
        return self.count_from <= index and (self.count_to is None or index < self.count_to)


def keyframes(frames: Iterator, *, scene: Optional[SceneSettings], dedup: Optional[DuplicateSettings],
              stats: DetectionStats) -> Iterator[Keyframe]:
    """Kept source frames with their cut flags, from a stream of `DecodedFrame`s.

    Args:
        frames: `DecodedFrame`s in order (`video_io.iter_frames`).
        scene (SceneSettings or None): look for scene cuts with these settings; None = do not.
        dedup (DuplicateSettings or None): drop duplicates with these settings; None = keep all.
        stats (DetectionStats): filled as the frames go by.
    """
    cut_detector = SceneCutDetector(scene) if scene is not None else None
    dup_detector = DuplicateDetector(dedup) if dedup is not None else None
    for frame in frames:
        stats.source_frames = frame.index + 1
        thumb = thumbnail(frame.image) if (cut_detector or dup_detector) else None
        if dup_detector is not None and dup_detector.update(frame.image, thumb):
            stats.duplicates += stats.counts(frame.index)
            continue
        cut = cut_detector.update(frame.image, thumb) if cut_detector is not None else False
        if cut and stats.counts(frame.index):
            stats.cuts.append(frame.index)
        yield Keyframe(frame.index, frame.image, cut)
