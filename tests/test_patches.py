"""Patch layouts: every pixel covered, overlaps kept, little repeated work, memory respected."""

import pytest
import torch

from hifi_core import CascadeSettings, get_preset, plan_job
from hifi_core.patches import MAX_SIDE_FACTOR, make_patch_grid, plan_patch_grid

SIZES = {"540p": (540, 960), "720p": (720, 1280), "1080p": (1080, 1920), "4K": (2160, 3840), "8K": (4320, 7680)}


def check_layout(grid, overlap):
    covered = torch.zeros(grid.height, grid.width, dtype=torch.int32)
    for y, x in grid.boxes:
        assert 0 <= y and y + grid.patch_height <= grid.height and 0 <= x and x + grid.patch_width <= grid.width
        covered[y:y + grid.patch_height, x:x + grid.patch_width] += 1
    assert int(covered.min()) >= 1, "a pixel no patch covers"
    for axis, side in ((0, grid.patch_height), (1, grid.patch_width)):
        starts = sorted({box[axis] for box in grid.boxes})
        for a, b in zip(starts, starts[1:]):
            assert a + side - b >= overlap, f"neighbours overlap by {a + side - b} < {overlap}"


@pytest.mark.parametrize("height, width", [(272, 480), (544, 960), (1088, 1920), (720, 1280), (4320, 7680), (100, 52)])
def test_the_adaptive_layout_covers_the_level_with_the_overlap_under_the_area_limit(height, width):
    limit = 4 * 256 * 256
    grid = plan_patch_grid(height, width, (256, 256), 32, 16, limit)
    check_layout(grid, 32)
    assert grid.patch_height * grid.patch_width <= limit
    assert grid.patch_height <= MAX_SIDE_FACTOR * 256 and grid.patch_width <= MAX_SIDE_FACTOR * 256
    for side, length in ((grid.patch_height, height), (grid.patch_width, width)):
        assert side % 16 == 0 or side == length
    # never more work than the fixed layout of the nominal patch
    assert grid.work_pixels <= make_patch_grid(height, width, (256, 256), 32).work_pixels


def test_a_level_that_fits_one_patch_is_one_patch():
    grid = plan_patch_grid(272, 480, (256, 256), 32, 16, 4 * 256 * 256)
    assert grid.boxes == ((0, 0),) and (grid.patch_height, grid.patch_width) == (272, 480)
    nominal = plan_patch_grid(272, 480, (256, 256), 32, 16, None)  # one nominal patch's area
    assert len(nominal.boxes) > 1 and nominal.patch_height * nominal.patch_width <= 256 * 256
    check_layout(nominal, 32)


@pytest.mark.parametrize("name", list(SIZES))
def test_default_settings_repeat_at_most_a_quarter_of_the_work_at_every_resolution(name):
    """Issue 17's target: work done / the frame's own work <= 1.25 from 540p to 8K (the fixed
    layout repeated 88 % at 540p)."""
    height, width = SIZES[name]
    job = plan_job(get_preset("lean"), height, width, CascadeSettings(), torch.device("cpu"))
    work = sum(g.work_pixels for g in job.cascade.grids)
    own = sum(h * w for h, w in job.cascade.level_sizes)
    assert work / own <= 1.25, (name, work / own)
    fixed = plan_job(get_preset("lean"), height, width, CascadeSettings(adaptive_patches=False),
                     torch.device("cpu"))
    assert work < sum(g.work_pixels for g in fixed.cascade.grids)
    # the patches held at once stay within the nominal batch's memory
    largest = max(g.patch_height * g.patch_width for g in job.cascade.grids)
    assert job.patch_batch * largest <= 4 * 256 * 256
