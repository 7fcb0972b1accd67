"""hifi_core.scenes: scene-cut and duplicate-frame detection on generated frames."""

from __future__ import annotations

import pytest
import torch

from hifi_core import scenes
from hifi_core.errors import HiFIInputError
from media import clip_frame


def frame(i: int, **kwargs) -> torch.Tensor:
    return torch.from_numpy(clip_frame(i, **kwargs)).permute(2, 0, 1).float() / 255


def test_thumbnail_is_grey_downscaled_and_bounded():
    big = torch.rand(3, 300, 400)
    thumb = scenes.thumbnail(big)
    assert thumb.shape == (96, 128)
    flat = torch.stack([torch.full((50, 60), v) for v in (0.2, 0.4, 0.6)])
    assert torch.allclose(scenes.thumbnail(flat), torch.tensor(0.299 * 0.2 + 0.587 * 0.4 + 0.114 * 0.6))
    with pytest.raises(HiFIInputError, match=r"\[3, H, W\]"):
        scenes.thumbnail(torch.rand(4, 10, 10))


def test_scores_separate_a_cut_from_motion():
    a, b = scenes.thumbnail(frame(5)), scenes.thumbnail(frame(6))
    other = scenes.thumbnail(frame(6, cut_at=6))
    assert scenes.cut_score(a, a) == 0.0
    assert scenes.histogram_distance(a, b) < 0.05  # motion keeps the histogram
    assert scenes.cut_score(a, other) > scenes.DEFAULT_SCENE_THRESHOLD > scenes.cut_score(a, b)


@pytest.mark.parametrize("speed", [1, 7])
def test_detector_finds_exactly_the_cut(speed):
    detector = scenes.SceneCutDetector()
    found = [i for i in range(30) if detector.update(frame(i, cut_at=17, speed=speed))]
    assert found == [17]


def stripes(shift: int, contrast: float = 0.5) -> torch.Tensor:
    x = (torch.arange(64) + shift) // 4 % 2 * contrast + (1 - contrast) / 2
    return x.expand(3, 48, 64).clone()


def test_steady_fast_motion_is_not_a_cut_but_a_jump_above_it_is():
    # stripes moving half a period per frame: every score is above the absolute threshold,
    # so only the relative test (score vs the median of recent scores) keeps them from cuts
    detector = scenes.SceneCutDetector()
    found, scores = [], []
    for i in range(24):
        if detector.update(stripes(4 * i)):
            found.append(i)
        scores.append(detector.last_score)
    assert min(scores[1:]) > scenes.DEFAULT_SCENE_THRESHOLD
    assert all(i <= 1 for i in found)  # the first pair has no history to compare with
    calm = scenes.SceneCutDetector()
    for i in range(10):
        assert not calm.update(frame(i, speed=7))
    assert calm.update(frame(10, cut_at=10))


def test_fade_is_not_a_cut():
    a, b = frame(0), frame(0, cut_at=0)
    detector = scenes.SceneCutDetector()
    steps = 12
    found = [k for k in range(steps + 1) if detector.update(a + (b - a) * k / steps)]
    assert found == []


def test_threshold_controls_sensitivity():
    strict = scenes.SceneCutDetector(scenes.SceneSettings(threshold=0.9))
    assert not any(strict.update(frame(i, cut_at=5)) for i in range(10))
    with pytest.raises(HiFIInputError, match="scene threshold"):
        scenes.SceneSettings(threshold=0)


def test_duplicates_on_twos_are_found():
    detector = scenes.DuplicateDetector()
    flags = [detector.update(frame(i, hold=2)) for i in range(12)]
    assert flags == [False, True] * 6


def test_duplicate_tolerates_noise_but_not_a_small_moving_object():
    gen = torch.Generator().manual_seed(0)
    base = frame(3)
    noisy = (base + torch.randn(base.shape, generator=gen) * 0.004).clamp(0, 1)
    assert scenes.is_duplicate(scenes.thumbnail(base), scenes.thumbnail(noisy))
    big = torch.full((3, 540, 960), 0.5)
    moved = big.clone()
    moved[:, 100:106, 200:206] = 1.0  # a 6 px cursor appears
    assert not scenes.is_duplicate(scenes.thumbnail(big), scenes.thumbnail(moved))
    assert scenes.mean_abs_difference(scenes.thumbnail(big), scenes.thumbnail(moved)) < 0.004


def test_duplicate_runs_are_capped():
    detector = scenes.DuplicateDetector(scenes.DuplicateSettings(max_run=2))
    still = frame(0)
    assert [detector.update(still) for _ in range(7)] == [False, True, True, False, True, True, False]
