"""What a retime aims at: a multiplier, a target frame rate (NTSC names understood) or slow motion."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Optional, Union

from ..errors import HiFIInputError



STATE_VERSION = 1
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower",
                "veryslow")
_NTSC = {23.976: Fraction(24000, 1001), 29.97: Fraction(30000, 1001), 47.952: Fraction(48000, 1001),
         59.94: Fraction(60000, 1001), 119.88: Fraction(120000, 1001), 239.76: Fraction(240000, 1001)}


def parse_fps(value: Union[str, float, int, Fraction]) -> Fraction:
    """`value` (a frame rate: str, number or Fraction) as an exact Fraction: '60', 59.94
    (-> 60000/1001), '24000/1001'. Raises HiFIInputError outside (0, 10000]."""
    try:
        if isinstance(value, str) and "/" in value:
            fps = Fraction(value)
        else:
            number = float(value)
            fps = next((f for k, f in _NTSC.items() if abs(number - k) < 0.0015),
                       Fraction(str(number)).limit_denominator(1001)
                       if not isinstance(value, Fraction) else value)
    except (ValueError, ZeroDivisionError):
        raise HiFIInputError(f"frame rate {value!r} is not a number like 60, 59.94 or 24000/1001") from None
    if fps <= 0 or fps > 10000:
        raise HiFIInputError(f"frame rate {value!r} must be between 0 and 10000")
    return fps


@dataclass(frozen=True)
class RetimeTarget:
    """Exactly one of: `multiplier` (N x frames), `fps` (any target rate), `slowmo` (N x slower)."""

    multiplier: Optional[int] = None
    fps: Optional[Fraction] = None
    slowmo: Optional[int] = None

    def __post_init__(self):
        given = [n for n in ("multiplier", "fps", "slowmo") if getattr(self, n) is not None]
        if len(given) != 1:
            raise HiFIInputError("give exactly one of multiplier, fps or slowmo "
                                 f"(got {', '.join(given) or 'none'})")
        for name in ("multiplier", "slowmo"):
            value = getattr(self, name)
            if value is not None and (int(value) != value or not 1 <= value <= 64):
                raise HiFIInputError(f"{name}={value} must be a whole number from 1 to 64")
        if self.fps is not None:
            object.__setattr__(self, "fps", parse_fps(self.fps))

    def resolve(self, source_fps: Fraction) -> tuple[Fraction, Fraction]:
        """(generation ratio r = output frames per source frame, playback fps of the output)."""
        if self.multiplier is not None:
            return Fraction(int(self.multiplier)), source_fps * int(self.multiplier)
        if self.slowmo is not None:
            return Fraction(int(self.slowmo)), source_fps
        return self.fps / source_fps, self.fps

    @property
    def keeps_duration(self) -> bool:
        return self.slowmo is None or self.slowmo == 1
