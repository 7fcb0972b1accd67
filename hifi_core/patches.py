"""Patch layouts: how one pyramid level is covered by overlapping patches.

A level is laid out per axis: n patches of one side s spread evenly from edge to edge, so
neighbours overlap by at least `overlap` pixels and by about that much, not by whatever
the last patch needs to sit flush with the edge (with fixed 256-px patches a 960-px level
needs five, the last two overlapping by 224 px: 88 % of a 540p frame's work was repeated).

The layout is chosen from the memory budget: `max_pixels` is the largest patch area the
job may hold at once (the planner gives it `min(patch batch, MAX_AREA_FACTOR)` nominal
patches' worth), and the layout takes the (rows, columns) with the least denoised area
whose patches fit it, each side at most `MAX_SIDE_FACTOR` x the nominal. A level that fits
in one such patch is denoised as one; the per-step MultiDiffusion merge only runs where
patches meet. `adaptive=False` keeps the nominal patch size (the paper's constant patch).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Tuple

import torch

Box = Tuple[int, int]

# a layout's patches are at most this many nominal patches in area, and this many nominal
# sides long: the U-Net's attention (lowest level) grows with the square of the tokens
MAX_AREA_FACTOR = 4
MAX_SIDE_FACTOR = 2


@dataclass(frozen=True)
class PatchGrid:
    """Overlapping patches covering one pyramid level.

    Attributes:
        height, width (int): the level's (padded) size in pixels.
        patch_height, patch_width (int): every patch's size (at most the level's).
        boxes (tuple of (y, x)): each patch's top-left corner, row by row.
    """

    height: int
    width: int
    patch_height: int
    patch_width: int
    boxes: Tuple[Box, ...]

    @property
    def overlap_work_fraction(self) -> float:
        """Extra pixels denoised because of overlap, relative to the level's area."""
        return self.work_pixels / (self.height * self.width) - 1.0

    @property
    def work_pixels(self) -> int:
        """Pixels the network denoises per step on this level (overlaps counted twice)."""
        return len(self.boxes) * self.patch_height * self.patch_width


def patch_starts(length: int, patch: int, overlap: int) -> List[int]:
    """Start offsets covering [0, length) with patches of `patch` overlapping by >= overlap,
    the last flush with the end (fixed-size layout); a length not above the patch gives one."""
    if length <= patch:
        return [0]
    stride = patch - overlap
    starts = list(range(0, length - patch, stride))
    starts.append(length - patch)
    return starts


def even_axis(length: int, count: int, overlap: int, alignment: int) -> Tuple[int, List[int]]:
    """(side, starts) of `count` patches spread evenly over [0, length): the smallest side, a
    multiple of `alignment` (or the whole length), at which neighbours overlap by >= overlap."""
    if count == 1:
        return length, [0]
    side = math.ceil((length + (count - 1) * overlap) / count)
    side = min(length, math.ceil(side / alignment) * alignment)
    return side, [round(i * (length - side) / (count - 1)) for i in range(count)]


def make_patch_grid(height: int, width: int, patch_size: Tuple[int, int], overlap: int) -> PatchGrid:
    """Patches of `patch_size` (height, width; clipped to the level) covering a `height` x
    `width` level, neighbours overlapping by at least `overlap` pixels, the last row and column
    flush with the edge (the fixed layout)."""
    patch_h, patch_w = min(patch_size[0], height), min(patch_size[1], width)
    boxes = tuple((y, x) for y in patch_starts(height, patch_h, overlap)
                  for x in patch_starts(width, patch_w, overlap))
    return PatchGrid(height, width, patch_h, patch_w, boxes)


def plan_patch_grid(height: int, width: int, patch_size: Tuple[int, int], overlap: int, alignment: int,
                    max_pixels: Optional[int] = None) -> PatchGrid:
    """The layout of a `height` x `width` level with the least denoised area (see the module
    docstring).

    Args:
        patch_size ((int, int)): the nominal (height, width) patch.
        overlap (int): minimum overlap of neighbours in pixels.
        alignment (int): patch sides are multiples of it (or a whole level side).
        max_pixels (int or None): the largest patch area allowed; None = the nominal patch's.
    """
    nominal_h, nominal_w = patch_size
    max_pixels = max_pixels or nominal_h * nominal_w
    rows = _axis_options(height, nominal_h, overlap, alignment)
    columns = _axis_options(width, nominal_w, overlap, alignment)
    best = None
    for side_h, ys in rows:
        for side_w, xs in columns:
            if side_h * side_w > max_pixels:
                continue
            key = (len(ys) * side_h * len(xs) * side_w, len(ys) * len(xs))
            if best is None or key < best[0]:
                best = (key, side_h, side_w, ys, xs)
    if best is None:  # nothing fits: the nominal patch, evenly spread
        (side_h, ys), (side_w, xs) = _nominal(height, nominal_h, overlap, alignment), \
            _nominal(width, nominal_w, overlap, alignment)
        best = (None, side_h, side_w, ys, xs)
    _, side_h, side_w, ys, xs = best
    return PatchGrid(height, width, side_h, side_w, tuple((y, x) for y in ys for x in xs))


def _nominal(length: int, nominal: int, overlap: int, alignment: int) -> Tuple[int, List[int]]:
    """The even layout with patches no longer than the nominal side."""
    if length <= nominal:
        return length, [0]
    return even_axis(length, math.ceil((length - overlap) / (nominal - overlap)), overlap, alignment)


def _axis_options(length: int, nominal: int, overlap: int, alignment: int) -> List[Tuple[int, List[int]]]:
    """Even layouts of one axis, sides from a whole-length patch down to a little under the
    nominal (a shorter side on one axis can buy a longer one on the other)."""
    longest = max(nominal, MAX_SIDE_FACTOR * nominal)
    fewest = 1 if length <= longest else math.ceil((length - overlap) / (longest - overlap))
    most = _nominal(length, nominal, overlap, alignment)
    options = []
    for count in range(fewest, len(most[1]) + 3):
        side, starts = even_axis(length, count, overlap, alignment)
        if side <= longest or count == 1 and length <= longest:
            options.append((side, starts))
    return options or [most]


def patch_weight(patch_h: int, patch_w: int, overlap: int, feather: bool) -> torch.Tensor:
    """[1, 1, h, w] merge weight: ones, or linear ramps over `overlap` px at every edge."""
    if not feather or overlap <= 0:
        return torch.ones(1, 1, patch_h, patch_w)

    def ramp(n: int) -> torch.Tensor:
        pos = torch.arange(n, dtype=torch.float32)
        edge = torch.minimum(pos, n - 1 - pos) + 1.0
        return torch.clamp(edge / (overlap + 1.0), max=1.0)

    return (ramp(patch_h)[:, None] * ramp(patch_w)[None, :])[None, None]
