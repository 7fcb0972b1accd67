"""One output timeline for every path: `retime_sequence` (a clip in memory), `retime_video`
(a file, streaming), the ComfyUI nodes and the bench.

Source frame i sits at position i (time i / fps_in). The ratio r is output frames per source
frame: a multiplier M, target_fps / fps_in, or a slow-motion factor. Output frame k sits at
position k / r, in exact fractions (no drift over hours of 23.976 fps). At a position between
kept frames s_j < s_j+1 the output is the in-between at tau = (p - s_j) / (s_j+1 - s_j), the
original where tau = 0, or the nearer frame repeated when a scene cut lies between them.
Keyframes are the source frames kept (all, or the non-duplicates), so motion is re-timed
across dropped duplicates.

The end policy says where the output stops:
    "duration"   ceil(N * r) frames, the frames after the last source frame holding it: the
                 output lasts as long as the source (a file's audio stays in sync; 30 frames
                 at 29.97 fps become 61 frames at 60 fps).
    "last_frame" the output ends on the last source frame: (N - 1) * M + 1 frames for a
                 multiplier M (an IMAGE batch with its originals kept).
A target frame rate keeps the duration on every path; a multiplier ends on the last frame on
an IMAGE batch and keeps the duration in a file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import List, NamedTuple, Optional, Sequence, Union

from .errors import HiFIInputError
from .validation import check_number

Number = Union[int, float, Fraction]
END_POLICIES = ("duration", "last_frame")


class ScheduledFrame(NamedTuple):
    """Output frame `index` comes from keyframes `source` -> `target` at `tau` (0 = source)."""

    index: int
    source: int
    target: int
    tau: float
    mode: str  # "original", "interpolate", "cut" (nearer frame repeated), "hold"


def first_output_at(position: Union[int, Fraction], ratio: Fraction) -> int:
    """Index of the first output frame at or after source `position`."""
    return math.ceil(Fraction(position) * ratio)


def total_output_frames(num_source_frames: int, ratio: Fraction) -> int:
    """K = ceil(N * r): the output lasts as long as the source."""
    return max(1, first_output_at(num_source_frames, ratio))


def interval_schedule(start: int, end: int, ratio: Fraction, *, cut: bool = False,
                      last: bool = False) -> List[ScheduledFrame]:
    """Output frames between keyframes at source positions `start` < `end`.

    With `last=True`, `start` is the final keyframe and `end` the source frame count: the
    frames there hold `start`.
    """
    frames = []
    span = end - start
    for k in range(first_output_at(start, ratio), first_output_at(end, ratio)):
        position = Fraction(k) / ratio
        tau = (position - start) / span
        if tau == 0:
            frames.append(ScheduledFrame(k, start, start, 0.0, "original"))
        elif last:
            frames.append(ScheduledFrame(k, start, start, 0.0, "hold"))
        elif cut:
            near = start if tau < Fraction(1, 2) else end
            frames.append(ScheduledFrame(k, near, near, 0.0, "cut"))
        else:
            frames.append(ScheduledFrame(k, start, end, float(tau), "interpolate"))
    return frames


def output_schedule(num_source_frames: int, ratio: Fraction, *,
                    keyframes: Optional[Sequence[int]] = None,
                    cuts: Sequence[int] = ()) -> List[ScheduledFrame]:
    """The whole schedule of a clip (what the streaming engine produces, for tests and tools).

    Args:
        num_source_frames: N.
        ratio: output frames per source frame.
        keyframes: kept source positions (default all; must start at 0).
        cuts: keyframe positions that have a scene cut just before them.
    """
    keys = list(range(num_source_frames)) if keyframes is None else list(keyframes)
    if not keys or keys[0] != 0:
        raise HiFIInputError("keyframes must start at source frame 0")
    cut_set = set(cuts)
    out = []
    for a, b in zip(keys, keys[1:]):
        out += interval_schedule(a, b, ratio, cut=b in cut_set)
    return out + interval_schedule(keys[-1], num_source_frames, ratio, last=True)


@dataclass(frozen=True)
class OutputFrame:
    """One frame of a retimed sequence: source frame `index`, blended towards index+1 by tau."""

    index: int
    tau: float

    @property
    def is_original(self) -> bool:
        return self.tau == 0.0


FPS_RANGE = (0.001, 10000.0)  # frame rates a user can mean; outside, Fraction limits collapse to 0
MAX_MULTIPLIER = 1000


def retime_schedule(num_frames: int, *, multiplier: Optional[int] = None,
                    source_fps: Optional[Number] = None, target_fps: Optional[Number] = None,
                    end: Optional[str] = None) -> List[OutputFrame]:
    """Which source pair and tau every output frame comes from (no cuts, every frame kept).

    Either `multiplier` (N outputs per source interval, originals kept) or `source_fps` and
    `target_fps` (output frame k at time k / target_fps; a frame that lands on a source frame
    is that original). `end`: "duration" or "last_frame" (module docstring); default
    "last_frame" for a multiplier, "duration" for a frame rate. A held frame is
    OutputFrame(last, 0.0), i.e. the last original again.
    """
    if num_frames < 2:
        raise HiFIInputError(f"the clip has {num_frames} frame; retiming needs at least two frames")
    if (multiplier is None) == (target_fps is None):
        raise HiFIInputError("give exactly one of multiplier or target_fps")
    if end is not None and end not in END_POLICIES:
        raise HiFIInputError(f"end={end!r}: use one of {END_POLICIES}")
    if multiplier is not None:
        ratio = Fraction(int(check_number(multiplier, "multiplier", 1, MAX_MULTIPLIER, integer=True)))
        end = end or "last_frame"
    else:
        if source_fps is None:
            raise HiFIInputError("target_fps needs source_fps (the clip's frame rate)")
        source_fps = check_number(source_fps, "source_fps", *FPS_RANGE)
        target_fps = check_number(target_fps, "target_fps", *FPS_RANGE)
        ratio = Fraction(target_fps).limit_denominator(100000) / Fraction(source_fps).limit_denominator(100000)
        end = end or "duration"
    frames = output_schedule(num_frames, ratio)
    if end == "last_frame":
        frames = [f for f in frames if f.index <= (num_frames - 1) * ratio]
    return [OutputFrame(f.source, f.tau) for f in frames]
