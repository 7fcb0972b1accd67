"""Property-based and fuzz tests: random settings, frame sizes and dtypes through `interpolate`
and `retime_sequence`, random byte damage to a small checkpoint and a small video.

The invariant everywhere: a clean project error (`HiFIInputError`, `CheckpointError`, which
`NonFiniteOutputError` is one of) or a correct result, never another exception, never a
non-finite output. CI runs the bounded "ci" profile; `HYPOTHESIS_PROFILE=long bash
scripts/test.sh tests/test_fuzz.py` runs 20 times as many examples (minutes).
"""

import os


import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st

from hifi_core import (CascadeSettings, CheckpointError, HiFIInputError, build_model, interpolate,
                       load_checkpoint, retime_sequence, save_checkpoint)

settings.register_profile("ci", max_examples=25, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.register_profile("long", max_examples=500, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

CLEAN = (HiFIInputError, CheckpointError)
MODEL = build_model("tiny")
odd_numbers = st.one_of(st.integers(-3, 70), st.floats(allow_nan=True, allow_infinity=True),
                        st.just(None), st.just("2"))


def cascade_settings():
    return st.builds(lambda levels, patch, overlap, steps, samples, eta, seed: dict(
        levels=levels, patch_size=patch, overlap=overlap, steps=steps, samples=samples, eta=eta, seed=seed),
        st.one_of(st.integers(0, 4), st.just("auto"), st.floats()),
        st.one_of(st.tuples(st.integers(-4, 72), st.integers(-4, 72)), st.just("256"), st.just((32,))),
        st.one_of(st.integers(-4, 40), st.floats()),
        st.one_of(st.integers(0, 3), st.floats(0, 3)),
        st.integers(0, 2),
        st.one_of(st.floats(-1, 2), st.just(float("nan"))),
        st.one_of(st.integers(-2, 2 ** 64), st.floats()))


def frames_strategy():
    return st.builds(lambda batch, channels, height, width, dtype, scale: (batch, channels, height, width, dtype, scale),
                     st.integers(0, 2), st.sampled_from([1, 3, 4]), st.integers(1, 70), st.integers(1, 70),
                     st.sampled_from([torch.float32, torch.float64, torch.float16, torch.uint8]),
                     st.sampled_from([1.0, 255.0, float("nan")]))


def make_frames(spec, seed):
    batch, channels, height, width, dtype, scale = spec
    g = torch.Generator().manual_seed(seed)
    frames = torch.rand(batch, channels, height, width, generator=g) * (1.0 if scale != scale else scale)
    if scale != scale and frames.numel():
        frames.view(-1)[0] = float("nan")
    return frames.to(dtype)


def damaged_copy(data: bytes, damage, path):
    """`data` with each (where in [0, 1), length, byte value) run overwritten, written to `path`."""
    data = bytearray(data)
    for where, length, value in damage:
        start = int(where * len(data))
        data[start:start + length] = bytes([value]) * len(data[start:start + length])
    path.write_bytes(bytes(data))
    return path


def byte_damage(longest: int):
    return st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, longest), st.integers(0, 255)),
                    min_size=1, max_size=3)


def check_result(out, shape):
    assert out.shape == shape
    assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1


@given(frames_strategy(), cascade_settings(), st.one_of(st.floats(), st.lists(st.floats(0, 1), max_size=3)),
       st.integers(0, 1000))
def test_interpolate_gives_a_clean_error_or_a_finite_frame(spec, options, tau, seed):
    frames = make_frames(spec, seed)
    try:
        result = interpolate(MODEL, frames, frames.flip(0) if frames.shape[0] else frames, tau,
                             settings=CascadeSettings(**options))
    except CLEAN:
        return
    batch, _, height, width = frames.shape
    expected = (batch, 3, height, width) if isinstance(tau, float) else (batch, len(tau), 3, height, width)
    check_result(result, expected)


@given(st.integers(0, 4), st.one_of(st.integers(0, 4), odd_numbers), odd_numbers, odd_numbers)
def test_retime_sequence_gives_a_clean_error_or_finite_frames(count, multiplier, source_fps, target_fps):
    clip = torch.rand(count, 3, 16, 24, generator=torch.Generator().manual_seed(count))
    use_multiplier = isinstance(multiplier, int) and multiplier % 2 == 0
    kwargs = dict(multiplier=multiplier) if use_multiplier else dict(source_fps=source_fps, target_fps=target_fps)
    try:
        out = retime_sequence(MODEL, clip, settings=CascadeSettings(levels=1, patch_size=(16, 24), overlap=4),
                              **kwargs)
    except CLEAN:
        return
    assert out.dim() == 4 and out.shape[1:] == (3, 16, 24) and out.shape[0] >= 1
    assert torch.isfinite(out).all()


@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory):
    return save_checkpoint(build_model("tiny"), tmp_path_factory.mktemp("ckpt") / "tiny.safetensors").read_bytes()


@given(byte_damage(4096))
def test_a_damaged_checkpoint_is_refused_or_gives_finite_frames(small_checkpoint, tmp_path_factory, damage):
    path = damaged_copy(small_checkpoint, damage, tmp_path_factory.mktemp("damaged") / "d.safetensors")
    try:
        model = load_checkpoint(path)
        frame = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(0))
        out = interpolate(model, frame, frame.flip(-1), 0.5,
                          settings=CascadeSettings(levels=1, patch_size=(16, 16), overlap=4))
    except CLEAN:
        return
    check_result(out, (3, 16, 16))


@pytest.fixture(scope="module")
def small_video(tmp_path_factory):
    from media import write_clip
    return write_clip(tmp_path_factory.mktemp("video") / "v.mkv", num_frames=8, width=32, height=24).read_bytes()


@given(byte_damage(512))
def test_a_damaged_video_is_refused_or_decodes_to_frames(small_video, tmp_path_factory, damage):
    from hifi_core.video_io import iter_frames, probe_video

    path = damaged_copy(small_video, damage, tmp_path_factory.mktemp("damaged") / "v.mkv")
    try:
        info = probe_video(path)
        frames = [f.image for f in iter_frames(path)]
    except CLEAN:
        return
    assert info.width > 0 and info.height > 0
    for image in frames:
        assert image.shape[0] == 3 and torch.isfinite(image).all()

