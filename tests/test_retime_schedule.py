"""retime_schedule / retime_sequence: frame counts, exact times, originals kept."""

import math
from fractions import Fraction

import pytest
import torch

from hifi_core import CascadeSettings, HiFIInputError, build_model, retime_schedule, retime_sequence


@pytest.mark.parametrize("frames,multiplier", [(2, 2), (5, 3), (4, 8), (3, 1)])
def test_multiplier_counts_and_taus(frames, multiplier):
    schedule = retime_schedule(frames, multiplier=multiplier)
    assert len(schedule) == (frames - 1) * multiplier + 1
    assert [o.index for o in schedule if o.is_original] == list(range(frames))
    assert {o.tau for o in schedule} == {k / multiplier for k in range(multiplier)}


def test_target_fps_keeps_duration_and_exact_times():
    src, dst = Fraction(24000, 1001), Fraction(60)
    schedule = retime_schedule(25, source_fps=src, target_fps=dst)
    # output k sits at k/60 s; the output lasts as long as the 25 source frames (25/src s)
    assert len(schedule) == math.ceil(25 / src * dst)
    for k, out in enumerate(schedule):
        position = Fraction(k) / dst * src
        if position <= 24:
            assert out.index == int(position)
            assert out.tau == pytest.approx(float(position - int(position)))
            assert 0 <= out.tau < 1
        else:  # after the last source frame: it is held
            assert (out.index, out.tau) == (24, 0.0)
    ending = retime_schedule(25, source_fps=src, target_fps=dst, end="last_frame")
    assert len(ending) == int(24 / src * dst) + 1 and ending == schedule[:len(ending)]


def test_fps_double_equals_multiplier_two():
    assert retime_schedule(6, source_fps=25, target_fps=50) == retime_schedule(6, multiplier=2, end="duration")
    assert retime_schedule(6, source_fps=25, target_fps=50, end="last_frame") == retime_schedule(6, multiplier=2)


def test_every_path_shares_the_timeline_a_file_keeps_the_duration_of():
    """30 frames at 29.97 fps to 60 fps: 61 frames (1.017 s) on the IMAGE path and in a file."""
    from hifi_core.retime import RetimeTarget
    from hifi_core.timeline import output_schedule, total_output_frames

    src = Fraction(30000, 1001)
    ratio, _ = RetimeTarget(fps=60).resolve(src)
    image_path = retime_schedule(30, source_fps=src, target_fps=60)
    file_path = output_schedule(30, ratio)
    assert len(image_path) == len(file_path) == total_output_frames(30, ratio) == 61
    assert [(o.index, o.tau) for o in image_path] == [(f.source, f.tau) for f in file_path]


def test_bad_schedule_arguments():
    with pytest.raises(HiFIInputError, match="exactly one"):
        retime_schedule(4, multiplier=2, source_fps=24, target_fps=60)
    with pytest.raises(HiFIInputError, match="at least two"):
        retime_schedule(1, multiplier=2)
    with pytest.raises(HiFIInputError, match="whole number"):
        retime_schedule(4, multiplier=2.5)


def test_retime_sequence_keeps_originals_in_place():
    frames = torch.rand(4, 3, 20, 28, generator=torch.Generator().manual_seed(0))
    out = retime_sequence(build_model("tiny"), frames, source_fps=10, target_fps=25,
                          settings=CascadeSettings(levels=2, patch_size=(16, 16), overlap=4, steps=1))
    schedule = retime_schedule(4, source_fps=10, target_fps=25)
    assert out.shape == (len(schedule), 3, 20, 28)
    for k, o in enumerate(schedule):
        if o.is_original:
            assert torch.equal(out[k], frames[o.index])
