"""Frame sizes the memory and speed benchmarks sweep, by name.

Sizes are (height, width) in pixels. Named sizes: 540p (960x540), 720p (1280x720), 1080p (1920x1080),
4K (3840x2160, UHD), 8K (7680x4320); any ``WxH`` string is accepted too. The --quick
smoke test uses two tiny sizes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence

from ..errors import HiFIInputError


@dataclass(frozen=True)
class Resolution:
    """A named frame size."""

    name: str
    height: int
    width: int

    def __post_init__(self) -> None:
        if self.height < 8 or self.width < 8:
            raise HiFIInputError(f"resolution {self.name} ({self.width}x{self.height}) is too small; "
                                 "use at least 8x8")

    @property
    def megapixels(self) -> float:
        return self.height * self.width / 1e6


NAMED = {
    "540p": Resolution("540p", 540, 960),
    "720p": Resolution("720p", 720, 1280),
    "1080p": Resolution("1080p", 1080, 1920),
    "4k": Resolution("4K", 2160, 3840),
    "8k": Resolution("8K", 4320, 7680),
}
FULL_SWEEP = ("540p", "1080p", "4k", "8k")
QUICK_SWEEP = (Resolution("tiny-a", 48, 64), Resolution("tiny-b", 96, 128))


def parse_resolution(text: str) -> Resolution:
    """'1080p', '4K', '8k' or 'WxH' -> Resolution."""
    key = text.strip().lower()
    if key in NAMED:
        return NAMED[key]
    parts = key.split("x")
    try:
        width, height = (int(p) for p in parts)
    except ValueError:
        raise HiFIInputError(f"resolution {text!r} is not one of {', '.join(NAMED)} or WxH "
                             "(e.g. 1280x720)") from None
    return Resolution(f"{width}x{height}", height, width)


def parse_resolutions(texts: Sequence[str]) -> List[Resolution]:
    return [parse_resolution(t) for t in texts]
