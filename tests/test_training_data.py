"""Training data: real-clip caching/split/cuts, synthetic scenes, augmentation, the mixture."""

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from hifi_core.errors import HiFIInputError
from hifi_core.training.data import AugmentConfig, crop_frames, flip_triplet, temporal_flip
from hifi_core.triplet import Triplet, to_tensor
from hifi_core.training.condition import ConditionConfig, make_condition
from hifi_core.training.dataset import MixConfig, MixedTriplets, batch_indices, flow_average_error, load_batch
from hifi_core.scenes import find_cuts
from hifi_core.training.real import RealClips, SplitConfig, load_clip_frames, split_ranges, windows_in
from hifi_core.training.synthetic import Layer, LayerMotion, SyntheticScenes, render


def make_clip(folder: Path, frames: int = 30, cut_at: int = 14, size=(48, 64)) -> Path:
    """A frame folder: a textured pattern panning 2 px/frame, with a scene cut after `cut_at`."""
    folder.mkdir(parents=True)
    h, w = size
    rng = np.random.default_rng(0)
    scenes = [cv2.resize(rng.integers(0, 256, (4, 12, 3), dtype=np.uint8), (2 * w + 80, h),
                         interpolation=cv2.INTER_CUBIC)
              for _ in range(2)]
    for i in range(frames):
        scene = scenes[0] if i <= cut_at else 255 - scenes[1]
        x = 2 * i
        cv2.imwrite(str(folder / f"{i:04d}.png"), cv2.cvtColor(scene[:, x:x + w], cv2.COLOR_RGB2BGR))
    return folder


def make_photos(folder: Path, count: int = 3) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for i in range(count):
        small = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
        cv2.imwrite(str(folder / f"p{i}.png"), cv2.resize(small, (160, 120), interpolation=cv2.INTER_CUBIC))
    return folder


@pytest.fixture
def data(tmp_path):
    clip = make_clip(tmp_path / "clips" / "pan")
    photos = make_photos(tmp_path / "photos")
    return clip, photos, tmp_path / "cache"


def test_clip_is_decoded_once_and_memory_mapped(data):
    clip, _, cache = data
    first = load_clip_frames(clip, 1, cache)
    files = list((cache / "clips").glob("*.npy"))
    assert len(files) == 1 and first.shape == (30, 48, 64, 3) and first.dtype == np.uint8
    again = load_clip_frames(clip, 1, cache)
    assert isinstance(again, np.memmap) and np.array_equal(first, again)
    half = load_clip_frames(clip, 2, cache)
    assert half.shape == (30, 24, 32, 3)


def test_repeated_webcam_frames_are_dropped_before_windows_are_made(tmp_path):
    # a clip whose frames 3, 4 and 8 repeat the frame before (as the webcam clips do)
    clip = make_clip(tmp_path / "pan", frames=12, cut_at=99)
    repeats = {3: 2, 4: 2, 8: 7}
    for index, source in repeats.items():
        (clip / f"{index:04d}.png").write_bytes((clip / f"{source:04d}.png").read_bytes())
    frames = load_clip_frames(clip, 1, tmp_path / "cache")
    assert frames.shape[0] == 12 - len(repeats)
    # what is left moves every frame: no consecutive pair is still
    assert all(np.abs(frames[i + 1].astype(int) - frames[i]).mean() > 1 for i in range(len(frames) - 1))
    assert load_clip_frames(clip, 2, tmp_path / "cache").shape[0] == 12 - len(repeats)


def test_scene_cut_is_detected_and_windows_avoid_it(data):
    clip, _, cache = data
    frames = load_clip_frames(clip, 1, cache)
    assert find_cuts(frames) == [14]
    windows = windows_in(range(0, 30), [2, 4], [14], clip=0, scale=1)
    assert windows and all(not (w.first <= 14 < w.last) for w in windows)


def test_span_windows_enumerate_every_tau():
    windows = windows_in(range(0, 10), [4], [], clip=0, scale=1)
    assert sorted({w.tau for w in windows}) == [0.25, 0.5, 0.75]
    assert all(w.last - w.first == 4 for w in windows)


def test_split_has_no_frame_overlap(data):
    clip, _, cache = data
    clips = RealClips([clip], spans=[2, 3, 4], scales=[1, 2], split=SplitConfig(0.6, 4), cache_dir=cache)
    train, val = split_ranges(30, clips.split)
    used_train = {f for w in clips.train_windows for f in range(w.first, w.last + 1)}
    used_val = {f for w in clips.validation_windows([1, 2], per_clip=10)
                for f in range(w.first, w.last + 1)}
    assert used_train and used_val
    assert max(used_train) < min(used_val)
    assert used_train <= set(train) and used_val <= set(val)


def test_temporal_flip_maps_tau():
    rng = np.random.default_rng(0)
    a, b, c = (np.full((4, 4, 3), v, np.uint8) for v in (10, 20, 30))
    f0, ft, f2, tau = flip_triplet(a, b, c, 0.25, rng, AugmentConfig(hflip=0, vflip=0, tflip=1.0))
    assert tau == 0.75 and f0[0, 0, 0] == 30 and ft[0, 0, 0] == 20 and f2[0, 0, 0] == 10
    t = Triplet(to_tensor(a), to_tensor(b), to_tensor(c), 0.3)
    flipped = temporal_flip(t)
    assert flipped.tau == pytest.approx(0.7) and torch.equal(flipped.frame0, t.frame2)


def test_multires_crop_keeps_frames_aligned():
    rng = np.random.default_rng(3)
    base = np.random.default_rng(4).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    out = crop_frames([base, base.copy(), base.copy()], (16, 24), rng, multires_prob=1.0)
    assert all(o.shape == (16, 24, 3) for o in out)
    assert np.array_equal(out[0], out[1]) and np.array_equal(out[1], out[2])


def test_pure_translation_at_half_equals_average_position_render():
    rng = np.random.default_rng(0)
    background = rng.uniform(0, 255, (64, 64, 3)).astype(np.float32)
    sprite = rng.uniform(0, 255, (16, 16, 3)).astype(np.float32)
    mask = np.zeros((16, 16), np.float32)
    mask[4:12, 2:14] = 1.0
    still = LayerMotion(anchor=(32, 32), centre0=(32, 32), displacement=(0, 0), zoom=1.0)
    moving = LayerMotion(anchor=(8, 8), centre0=(10, 20), displacement=(30, 12), zoom=1.0, angle0=0.3)
    midway = LayerMotion(anchor=(8, 8), centre0=(25, 26), displacement=(0, 0), zoom=1.0, angle0=0.3)
    at_half = render([Layer(background, None, still), Layer(sprite, mask, moving)], 0.5, (64, 64))
    reference = render([Layer(background, None, still), Layer(sprite, mask, midway)], 0.0, (64, 64))
    np.testing.assert_allclose(at_half, reference, atol=1e-3)
    # and an integer translation is an exact pixel shift of the layer
    start = render([Layer(sprite, mask, moving)], 0.0, (64, 64))
    shifted = LayerMotion(anchor=(8, 8), centre0=(10, 20), displacement=(4, 0), zoom=1.0, angle0=0.3)
    later = render([Layer(sprite, mask, shifted)], 1.0, (64, 64))
    np.testing.assert_allclose(later[:, 4:], start[:, :-4], atol=1e-3)


def test_synthetic_scene_renders_three_consistent_frames(data):
    _, photos, cache = data
    scenes = SyntheticScenes(photos, cache_dir=cache)
    rng = np.random.default_rng(5)
    f0, ft, f2, tau = scenes.sample(rng, (32, 40))
    assert f0.shape == ft.shape == f2.shape == (32, 40, 3) and f0.dtype == np.uint8
    assert 0 < tau < 1
    f0b, ftb, _, taub = scenes.sample(np.random.default_rng(5), (32, 40))
    assert taub == tau and np.array_equal(f0, f0b) and np.array_equal(ft, ftb)


def _mixture(data, real_fraction=0.5, seed=0, hard_fraction=0.0, hard_candidates=4):
    clip, photos, cache = data
    real = RealClips([clip], spans=[2, 3], scales=[1, 2], split=SplitConfig(0.7, 4), cache_dir=cache)
    return MixedTriplets(real, SyntheticScenes(photos, cache_dir=cache),
                         MixConfig(real_fraction, (24, 32), hard_fraction=hard_fraction,
                                   hard_candidates=hard_candidates), seed=seed)


def test_mixture_samples_have_shapes_ranges_and_both_sources(data):
    ds = _mixture(data)
    samples = [ds[i] for i in range(24)]
    kinds = {s.source.split(":")[0] for s in samples}
    assert kinds == {"real", "synthetic"}
    for s in samples:
        for f in (s.frame0, s.target, s.frame2):
            assert f.shape == (3, 24, 32) and f.dtype == torch.float32
            assert 0.0 <= float(f.min()) and float(f.max()) <= 1.0
        assert 0.0 < s.tau < 1.0


def test_order_is_reproducible_and_sharded(data):
    ds1, ds2 = _mixture(data), _mixture(data)
    for a, b in zip(load_batch(ds1, 3, 4), load_batch(ds2, 3, 4)):
        assert torch.equal(a, b)
    different = load_batch(_mixture(data, seed=1), 3, 4)
    assert not torch.equal(different[1], load_batch(ds1, 3, 4)[1])
    ranks = [set(batch_indices(5, 4, r, 2)) for r in range(2)]
    assert not ranks[0] & ranks[1]
    seen = set().union(*(batch_indices(s, 4, r, 2) for s in range(3) for r in range(2)))
    assert seen == set(range(24))  # no sample skipped or repeated


def test_hard_samples_are_the_worst_flow_average_of_their_draws(data):
    plain, hard = _mixture(data), _mixture(data, hard_fraction=1.0, hard_candidates=4)
    errors = {"plain": [], "hard": []}
    for index in range(12):
        sample = hard[index]
        draws = [hard.draw(np.random.default_rng([0, index, k])) for k in range(4)]
        draw_errors = [flow_average_error(d) for d in draws]
        assert flow_average_error(sample) == max(draw_errors)
        assert any(torch.equal(sample.target, d.target) for d in draws)
        errors["hard"].append(max(draw_errors))
        errors["plain"].append(flow_average_error(plain[index]))
    assert np.mean(errors["hard"]) > 1.2 * np.mean(errors["plain"])
    # off (the default): the same stream as before hard examples existed
    again = _mixture(data, hard_fraction=0.0)
    assert all(torch.equal(plain[i].target, again[i].target) for i in range(4))
    assert torch.equal(plain[3].target, plain.draw(np.random.default_rng([0, 3])).target)
    # a fixed set to fit: sample i is sample i mod N
    repeated = MixedTriplets(hard.real, hard.synthetic, MixConfig(0.5, (24, 32), repeat_samples=3), seed=0)
    assert torch.equal(repeated[4].target, plain[1].target) and torch.equal(repeated[2].target, plain[2].target)
    with pytest.raises(HiFIInputError, match="hard_candidates"):
        MixConfig(0.5, (24, 32), hard_fraction=0.5, hard_candidates=1)


def test_condition_is_degraded_target_or_dropped():
    gen = torch.Generator().manual_seed(0)
    target = torch.rand(64, 3, 16, 16, generator=gen)
    f0, f2 = torch.rand_like(target), torch.rand_like(target)
    tau = torch.full((64,), 0.5)
    cond, mask = make_condition(target, f0, f2, tau, ConditionConfig(), torch.Generator().manual_seed(1))
    assert cond.shape == target.shape and mask.dtype == torch.bool
    assert 16 <= int(mask.sum()) <= 48
    assert float(cond[~mask].abs().max()) == 0.0
    # kept conditions follow the target more closely than the blend does
    pooled = torch.nn.functional.avg_pool2d(target, 2)
    cond_err = (torch.nn.functional.avg_pool2d(cond[mask], 2) - pooled[mask]).abs().mean()
    blend_err = (torch.nn.functional.avg_pool2d((f0 + f2)[mask] / 2, 2) - pooled[mask]).abs().mean()
    assert cond_err < 0.6 * blend_err
    with pytest.raises(HiFIInputError, match="even"):
        make_condition(target[:, :, :15], f0[:, :, :15], f2[:, :, :15], tau, ConditionConfig(), gen)


def test_condition_mixes_toward_the_given_reference():
    # A flow-base model's upsampler must also see conditions as poor as its lower level's
    # flow average: with the full mix and no blur/noise, the kept condition's low band lies
    # on the segment from the target's to the reference's, never toward the blend.
    gen = torch.Generator().manual_seed(0)
    target, f0, f2, reference = torch.rand(4, 32, 3, 16, 16, generator=gen)
    config = ConditionConfig(drop_prob=0.0, max_blur_sigma=0.0, max_noise=0.0, blend_mix_prob=1.0,
                             max_blend_mix=1.0)
    cond, mask = make_condition(target, f0, f2, torch.full((32,), 0.5), config,
                                torch.Generator().manual_seed(1), reference)
    assert bool(mask.all())
    pool = torch.nn.functional.avg_pool2d
    low, toward = pool(target, 2), pool(reference, 2) - pool(target, 2)
    got = pool(cond, 2) - low  # the bilinear x2 up then area x2 down is a mild blur: compare loosely
    share = (got * toward).flatten(1).sum(1) / (toward * toward).flatten(1).sum(1)
    assert float(share.min()) > -0.05 and float(share.max()) < 1.0 and float(share.mean()) > 0.25


def test_training_the_bench_and_the_retime_see_the_same_cuts(tmp_path):
    """One detector for the whole tree: the training windows, the bench's triplets and the
    retime engine all skip the same cut of the same clip."""
    from hifi_core import video_io
    from hifi_core.bench import data as bench_data
    from hifi_core.retime import Encoding, RetimeTarget, retime_video

    clip = make_clip(tmp_path / "clip", frames=20, cut_at=9)
    clips = RealClips([clip], spans=[2], scales=[1], cache_dir=tmp_path / "cache")
    assert clips.cuts == [[9]]
    skipped = []
    triplets = bench_data.clip_triplets(clip, group="t", gaps=[1], per_clip=18, skipped=skipped)
    assert skipped == [f"clip gap1@{s}: scene cut" for s in (8, 9)]
    assert all(not (t.meta["frames"][0] <= 9 < t.meta["frames"][2]) for t in triplets) and len(triplets) == 16
    video = tmp_path / "clip.mkv"
    with video_io.VideoWriter(video, fps=24, width=64, height=48, codec="ffv1", pix_fmt="bgr0") as writer:
        for _, frame in video_io.iter_clip_rgb8(clip):
            writer.write(frame)
    result = retime_video(video, tmp_path / "out.mkv", RetimeTarget(multiplier=2), method="blend",
                          encoding=Encoding(codec="ffv1", pix_fmt="bgr0"))
    assert result.cuts == [10]  # the engine names the first frame after the cut
