"""One file retimed by several processes (torchrun, on one machine or several).

The output frames [0, K) are cut into contiguous shares, one per rank, at segment boundaries
(every segment starts with a keyframe of its own encode), so the shares' segments simply
follow each other and rank 0 joins them losslessly, with the audio, as one run would.

Every rank makes exactly the frames a single run makes for its share:
    * the in-betweens of a pair depend only on (seed, pair index, tau, level), and a pair's
      taus are computed in the same fixed chunks whichever rank needs them;
    * the cut and duplicate decisions are the single run's: a rank decodes from a few frames
      before its share, enough for the scene-cut detector's memory (its window of scores), so
      every decision it uses is made on the same frames; with `dedup` (whose state depends on
      every earlier frame) it decodes from the start, as a resume does. Frames before that
      point are decoded and dropped, never converted or compared.

Each rank keeps its own resume state (`progress.rankR.json`) beside the shared segments, so
a killed rank resumes its own share with `--resume`. The ranks talk through a gloo process
group (CPU objects only, whatever device renders): set-up errors are shared so all ranks stop
together, and at the end the segment lists and detection counts are gathered.
"""

from __future__ import annotations

import math
import signal
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from fractions import Fraction
from typing import Any, Callable, Iterator, List, Optional, TypeVar

import torch

from ..distributed import Dist, init_distributed, torchrun_world
from ..errors import HiFIInputError
from ..progress import CancelCheck
from .options import Detection

T = TypeVar("T")

# how long a collective waits for the other ranks: rank 0 waits for the slowest share,
# which may take hours with the model at 8K (a dead rank ends the job through torchrun)
WAIT = timedelta(days=7)


def torchrun_group(device: str = "cpu") -> Optional[Dist]:
    """Join the torchrun process group for a retime (gloo, long waits), or None without torchrun."""
    if torchrun_world() <= 1:
        return None
    return init_distributed(device, backend="gloo", timeout=WAIT)


@dataclass(frozen=True)
class Share:
    """What one rank renders.

    Attributes:
        rank, world: this process and the number of processes.
        first, end: its output frames [first, end) (end None: to the end of the output).
        decode_from: the first source frame it decodes (the detectors' warm-up included).
        own_from, own_to: the source frames whose cuts and duplicates it reports (the shares'
            ranges tile the source, so the gathered counts are the whole file's).
    """

    rank: int = 0
    world: int = 1
    first: int = 0
    end: Optional[int] = None
    decode_from: int = 0
    own_from: int = 0
    own_to: Optional[int] = None

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @property
    def empty(self) -> bool:
        return self.end is not None and self.end <= self.first

    def key(self) -> dict:
        """Added to the resume key: a resume must split the output the same way."""
        return {"processes": self.world, "share": [self.first, self.end]} if self.distributed else {}


def _first_source_at(index: int, ratio: Fraction) -> int:
    """The first source position whose first output frame is at or after output `index`."""
    return 0 if index <= 0 else max(0, math.floor(Fraction(index - 1) / ratio) + 1)


def plan_share(dist: Optional[Dist], total_frames: int, segment_frames: int, ratio: Fraction,
               detection: Detection) -> Share:
    """This rank's share of an output of about `total_frames` frames (the whole for one process).

    The `ceil(total / segment_frames)` segments are dealt out in contiguous blocks; the last
    rank's share runs to the end whatever the real length turns out to be (a frame count
    from the container can be an estimate)."""
    if dist is None or dist.world <= 1:
        return Share()
    segments = max(1, math.ceil(total_frames / segment_frames))
    first = dist.rank * segments // dist.world * segment_frames
    last = dist.rank == dist.world - 1
    end = None if last else (dist.rank + 1) * segments // dist.world * segment_frames
    own_from = _first_source_at(first, ratio)
    own_to = None if end is None else max(own_from, _first_source_at(end, ratio))
    return Share(dist.rank, dist.world, first, end, _decode_from(first, own_from, ratio, detection),
                 own_from, own_to)


def _decode_from(first: int, own_from: int, ratio: Fraction, detection: Detection) -> int:
    """Where a share's decoding starts so that its detection decisions are the whole run's.

    The pair holding output `first` starts at source floor(first / ratio) (every frame is a
    keyframe without dedup). The cut detector's decision at frame p depends on frames
    p - window - 1 .. p only (the previous thumbnail and the last `window` scores), so it is
    warmed up on that many frames before the earliest frame the share uses or reports."""
    if first == 0 or detection.dedup:
        return 0
    window = detection.scene_settings().window if detection.scene_cuts else 0
    return max(0, min(own_from, math.floor(Fraction(first) / ratio)) - window - 2)


# ---------------------------------------------------------------- collectives


def gather(share: Share, value: Any) -> List[Any]:
    """Every rank's `value`, in rank order, on every rank."""
    if not share.distributed:
        return [value]
    values: List[Any] = [None] * share.world
    torch.distributed.all_gather_object(values, value)
    return values


def agree(share: Share, error: Optional[BaseException]) -> None:
    """Share this rank's outcome; every rank raises if any rank failed (its own error where it
    failed, a `HiFIInputError` naming the failed rank elsewhere), so no rank is left waiting."""
    outcomes = gather(share, None if error is None else f"{error}")
    if error is not None:
        raise error
    failed = [(rank, message) for rank, message in enumerate(outcomes) if message is not None]
    if failed:
        rank, message = failed[0]
        raise HiFIInputError(f"process {rank} of {share.world} failed: {message}")


def agreed(share: Share, step: Callable[[], T]) -> T:
    """`step()` on every rank, then `agree` on its outcome."""
    try:
        value = step()
    except Exception as error:  # noqa: BLE001 - shared with the other ranks, then re-raised
        agree(share, error)
        raise
    agree(share, None)
    return value


# ---------------------------------------------------------------- SIGTERM


class Terminate:
    """SIGTERM as a cancel request while armed: torchrun sends it to the other ranks when one
    fails, so they close their open segment cleanly (kept for --resume) instead of losing it.
    Disarmed (the default action) while waiting in a collective, where nothing is lost."""

    def __init__(self) -> None:
        self.received = False

    def __call__(self) -> bool:
        return self.received

    def _handle(self, signum, frame) -> None:
        self.received = True

    @contextmanager
    def armed(self) -> Iterator[None]:
        try:
            previous = signal.signal(signal.SIGTERM, self._handle)
        except ValueError:  # not the main thread: leave the signal alone
            yield
            return
        try:
            yield
        finally:
            signal.signal(signal.SIGTERM, previous)


def either(*checks: Optional[CancelCheck]) -> Optional[CancelCheck]:
    """A cancel check that is True when any of `checks` is (None when none is given)."""
    given = [c for c in checks if c is not None]
    if len(given) <= 1:
        return given[0] if given else None
    return lambda: any(c() for c in given)
