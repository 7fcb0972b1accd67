"""Patch cascade: grid geometry, MultiDiffusion exactness, sizes, progress, cancel, OOM back-off."""

import pytest
import torch
from torch import nn

from hifi_core import (Cancelled, CascadeSettings, HiFIInputError, build_model, interpolate,
                       make_patch_grid, plan_for, plan_cascade)
from hifi_core.patches import patch_starts, patch_weight
from hifi_core.memory import AdaptiveBatchSize


class PerPixelNet(nn.Module):
    """A stand-in U-Net whose output at a pixel depends only on that pixel's inputs."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(3)
        self.mix = nn.Conv2d(12, 3, 1)

    def forward(self, x, logsnr, tau, has_cond=None):
        scale = 1 + 0.1 * torch.tanh(logsnr).view(-1, 1, 1, 1)
        return torch.tanh(self.mix(x)) * scale + 0.3 * (tau.view(-1, 1, 1, 1) - 0.5)


def per_pixel_model():
    model = build_model("tiny")
    model.unet = PerPixelNet()
    return model


@pytest.mark.parametrize("length,patch,overlap", [(100, 32, 8), (64, 32, 0), (33, 32, 4), (16, 32, 4)])
def test_patch_starts_cover_with_overlap_and_end_flush(length, patch, overlap):
    starts = patch_starts(length, patch, overlap)
    size = min(patch, length)
    assert starts[0] == 0 and starts[-1] + size == length
    for a, b in zip(starts, starts[1:]):
        assert b - a <= size - overlap  # neighbours overlap by at least `overlap`


def test_feathered_weights_ramp_and_uniform_weights_are_ones():
    w = patch_weight(16, 16, 4, feather=True)
    assert w.shape == (1, 1, 16, 16)
    assert w[0, 0, 8, 8] == 1.0 and w[0, 0, 0, 0] < w[0, 0, 2, 2] < 1.0
    assert torch.equal(patch_weight(16, 16, 4, feather=False), torch.ones(1, 1, 16, 16))


@pytest.mark.parametrize("feather", [False, True])
def test_patch_cascade_equals_full_frame_for_a_per_pixel_model(feather):
    model = per_pixel_model()
    g = torch.Generator().manual_seed(0)
    f0, f2 = torch.rand(2, 1, 3, 48, 80, generator=g)
    common = dict(levels=3, overlap=8, steps=3, samples=2, eta=0.5, seed=11, feather=feather)
    patched = interpolate(model, f0, f2, 0.4, settings=CascadeSettings(patch_size=(16, 16), **common))
    whole = interpolate(model, f0, f2, 0.4, settings=CascadeSettings(patch_size=(48, 80), **common))
    grid = plan_cascade(48, 80, levels=3, patch_size=(16, 16), overlap=8, alignment=4).grids[-1]
    assert len(grid.boxes) > 10  # the finest level really is split into many patches
    assert torch.allclose(patched, whole, atol=1e-5)


@pytest.mark.parametrize("shape", [(37, 53), (5, 9), (90, 24), (64, 64), (17, 130)])
def test_any_frame_size_round_trips(shape):
    model = build_model("tiny")
    f0 = torch.rand(1, 3, *shape)
    f2 = torch.rand(1, 3, *shape)
    out = interpolate(model, f0, f2, 0.5, settings=CascadeSettings(levels=2, patch_size=(32, 32),
                                                                   overlap=8, steps=1))
    assert out.shape == f0.shape
    assert out.min() >= 0 and out.max() <= 1


def test_same_seed_is_bit_identical_and_seeds_differ():
    model = build_model("tiny")
    torch.nn.init.normal_(model.unet.out_conv.weight, std=0.05)
    f0, f2 = torch.rand(2, 3, 40, 40, generator=torch.Generator().manual_seed(2))
    settings = lambda seed: CascadeSettings(levels=2, patch_size=(16, 16), overlap=4, steps=2,  # noqa: E731
                                           samples=2, eta=1.0, seed=seed)
    a = interpolate(model, f0, f2, settings=settings(7))
    assert torch.equal(a, interpolate(model, f0, f2, settings=settings(7)))
    assert not torch.equal(a, interpolate(model, f0, f2, settings=settings(8)))


def test_several_taus_and_variance():
    model = build_model("tiny")
    f0, f2 = torch.rand(2, 2, 3, 24, 24, generator=torch.Generator().manual_seed(4))
    frames, variance = interpolate(model, f0, f2, [0.25, 0.5, 0.75], return_variance=True,
                                   settings=CascadeSettings(levels=2, patch_size=(16, 16), overlap=4,
                                                            steps=1, samples=3))
    assert frames.shape == (2, 3, 3, 24, 24) and variance.shape == frames.shape
    assert (variance >= 0).all() and variance.sum() > 0  # different noise per sample
    # one sample: zero spread, returned as a view (no frame-sized sums), shaped like the frame
    one, spread = interpolate(model, f0[0], f2[0], 0.5, return_variance=True,
                              settings=CascadeSettings(levels=2, patch_size=(16, 16), overlap=4, steps=1))
    assert one.shape == spread.shape == (3, 24, 24) and not spread.any()


def test_progress_counts_every_patch_evaluation_and_cancel_stops():
    model = build_model("tiny")
    f0, f2 = torch.rand(2, 1, 3, 40, 56, generator=torch.Generator().manual_seed(5))
    settings = CascadeSettings(levels=2, patch_size=(16, 16), overlap=4, steps=2, samples=2, patch_batch=3)
    events = []
    interpolate(model, f0, f2, [0.3, 0.6], settings=settings, progress=events.append)
    plan = plan_for(model, 40, 56, settings)
    assert plan.grids[-1].patch_height > 16  # patches up to 3 nominal ones (the batch) in area
    expected = sum(plan.patches_per_level()) * 2 * 2 * 2
    assert events[-1].units_done == events[-1].units_total == expected
    assert [e.units_done for e in events] == sorted(e.units_done for e in events)

    calls = []

    def cancel():
        calls.append(1)
        return len(calls) > 4

    with pytest.raises(Cancelled):
        interpolate(model, f0, f2, 0.5, settings=settings, cancel=cancel)
    assert len(calls) == 5  # stopped at the first check that said so


def test_out_of_memory_halves_the_patch_batch_and_keeps_it():
    processed = []

    def work(chunk):
        if len(chunk) > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
        processed.extend(chunk)

    batcher = AdaptiveBatchSize(8)
    batcher.run(list(range(11)), work)
    assert processed == list(range(11)) and batcher.batch_size == 2

    def always(chunk):
        raise RuntimeError("CUDA error: out of memory")

    with pytest.raises(HiFIInputError, match="patch batch of 1"):
        AdaptiveBatchSize(4).run([1, 2], always)
    with pytest.raises(ValueError, match="unrelated"):
        AdaptiveBatchSize(4).run([1], lambda c: (_ for _ in ()).throw(ValueError("unrelated")))


def test_auto_levels_and_bad_patch_settings():
    plan = plan_cascade(2160, 3840, levels="auto", patch_size=(256, 256), overlap=32, alignment=8)
    coarse_h, coarse_w = plan.level_sizes[0]
    assert coarse_h <= 512 and coarse_w <= 512 and plan.level_sizes[-1][0] >= 2160
    with pytest.raises(HiFIInputError, match="multiple of 8"):
        plan_cascade(100, 100, levels=2, patch_size=(100, 100), overlap=8, alignment=8)
    with pytest.raises(HiFIInputError, match="overlap"):
        plan_cascade(100, 100, levels=2, patch_size=(32, 32), overlap=32, alignment=8)
    with pytest.raises(HiFIInputError, match="levels"):
        plan_cascade(100, 100, levels=0, patch_size=(32, 32), overlap=8, alignment=8)
    assert make_patch_grid(20, 30, (64, 64), 8).boxes == ((0, 0),)


def test_bf16_autocast_and_channels_last_match_fp32_on_cpu():
    torch.manual_seed(1)
    model = build_model("tiny")
    torch.nn.init.normal_(model.unet.out_conv.weight, std=0.05)
    f0, f2 = torch.rand(2, 1, 3, 32, 32, generator=torch.Generator().manual_seed(6))
    common = dict(levels=2, patch_size=(16, 16), overlap=4, steps=2, seed=3)
    reference = interpolate(model, f0, f2, settings=CascadeSettings(**common))
    bf16 = interpolate(model, f0, f2, settings=CascadeSettings(precision="bf16", **common))
    last = interpolate(model, f0, f2, settings=CascadeSettings(channels_last=True, **common))
    assert bf16.dtype == torch.float32
    assert (bf16 - reference).abs().mean() < 0.02 and not torch.equal(bf16, reference)
    assert torch.allclose(last, reference, atol=1e-4)


def test_auto_precision_picks_half_on_cuda_and_fp32_on_cpu(monkeypatch):
    settings = CascadeSettings(precision="auto")
    assert settings.resolved_precision(torch.device("cpu")) == "fp32"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert settings.resolved_precision(torch.device("cuda")) == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert settings.resolved_precision(torch.device("cuda")) == "fp16"


def test_untrained_cascade_keeps_a_static_frame_sharp_only_with_condition_detail():
    # An untrained residual model returns its base. On a still scene the base level gives the
    # blend (= the frame) at low resolution; the finer level's base is its upsampling plus
    # the blend's detail band, so the frame comes back sharp. Without the detail band the
    # output is the blurred upsampling.
    import dataclasses

    torch.manual_seed(0)
    frame = torch.rand(1, 3, 64, 96)
    settings = CascadeSettings(levels=3, patch_size=(32, 32), overlap=8, steps=1)
    with_detail = build_model("tiny")
    assert with_detail.config.diffusion.condition_detail
    sharp = interpolate(with_detail, frame, frame, settings=settings)
    blurred_config = dataclasses.replace(with_detail.config, diffusion=dataclasses.replace(
        with_detail.config.diffusion, condition_detail=False))
    blurred = interpolate(build_model(blurred_config), frame, frame, settings=settings)
    assert (sharp - frame).abs().max() < 1e-3
    assert (blurred - frame).abs().mean() > 0.05


def _flow_pair():
    import torch.nn.functional as F
    g = torch.Generator().manual_seed(1)
    texture = F.interpolate(torch.rand(1, 3, 8, 12, generator=g), scale_factor=8, mode="bicubic",
                            align_corners=False).clamp(0, 1)
    return texture[..., :, 8:88], texture[..., :, :80]  # 8 px of motion, 64 x 80


def test_untrained_flow_cascade_returns_the_finest_levels_own_flow_average():
    # Each level's condition carries only the coarser level's correction of its own warped
    # average, so an untrained model returns the finest level's warp: no blur accumulates.
    from hifi_core.flow_base import flow_average

    f0, f2 = _flow_pair()
    model = build_model("tiny")
    out = interpolate(model, f0, f2, 0.5, settings=CascadeSettings(levels=3, patch_size=(32, 32),
                                                                   overlap=8, steps=1))
    assert torch.allclose(out, flow_average(f0, f2, 0.5), atol=2e-3)


def test_cascade_run_level_by_level_equals_one_run_for_a_flow_model():
    from hifi_core.cascade import run_cascade
    from hifi_core.progress import ProgressCounter
    from hifi_core.interpolate import level_context, plan_for

    f0, f2 = _flow_pair()
    model = per_pixel_model()
    assert model.uses_flow
    settings = CascadeSettings(levels=3, patch_size=(32, 32), overlap=8, steps=2, seed=4)
    plan = plan_for(model, 64, 80, settings)

    def context():
        return level_context(model, plan, settings, torch.device("cpu"), ProgressCounter(1), None)

    whole, _ = run_cascade(model, f0, f2, 0.5, plan, context())
    ctx = context()
    estimate, _ = run_cascade(model, f0, f2, 0.5, plan, ctx, stop_level=0)
    estimate, _ = run_cascade(model, f0, f2, 0.5, plan, ctx, start_level=1, start_estimate=estimate,
                              stop_level=1)
    chained, _ = run_cascade(model, f0, f2, 0.5, plan, ctx, start_level=2, start_estimate=estimate)
    assert torch.allclose(chained, whole, atol=1e-5)


def test_flows_come_from_the_unpadded_frames_so_a_silent_network_returns_its_flow_base():
    # DIS depends on the frame size: flows estimated on the cascade's replicate-padded frames
    # moved by pixels around a moving object, and the untrained (silent) cascade scored under
    # its own flow average (issue 14: 1.5 dB on a 960x540 object scene).
    import numpy as np

    from hifi_core.bench.data import _procedural_photo, render_stress_scene
    from hifi_core.flow_base import flow_average

    rng = np.random.default_rng(3)
    height, width = 135, 238  # tiny at 2 levels pads to 144 x 240
    background, foreground = _procedural_photo(rng, height, width), _procedural_photo(rng, height, width)
    frames = render_stress_scene("object", 16.0, background, foreground, height / 1080, rng)
    f0, _, f2 = (torch.from_numpy(f).permute(2, 0, 1)[None].float() / 255 for f in frames)
    out = interpolate(build_model("tiny"), f0, f2, 0.5,
                      settings=CascadeSettings(levels=2, patch_size=(64, 64), overlap=16, steps=1))
    assert (out - flow_average(f0, f2, 0.5)).abs().max() < 2e-3


def test_the_flows_are_let_go_before_the_finest_level_samples(monkeypatch):
    # At 1080p the mixed flows are 92 MB: the finest level's base is their last reader, so
    # they must not sit under its sampling (the cascade's peak).
    import weakref

    import hifi_core.cascade as cascade
    from hifi_core.progress import ProgressCounter
    from hifi_core.interpolate import level_context, plan_for

    f0, f2 = _flow_pair()
    model = per_pixel_model()
    settings = CascadeSettings(levels=3, patch_size=(32, 32), overlap=8, steps=1, seed=4)
    plan = plan_for(model, 64, 80, settings)
    flows_refs, alive_while_sampling = [], []
    estimate, sample = cascade.estimate_flows, cascade.sample_level

    def recorded_estimate(*args, **kwargs):
        flows = estimate(*args, **kwargs)
        flows_refs.append(weakref.ref(flows))
        return flows

    def recorded_sample(*args, **kwargs):
        alive_while_sampling.append(flows_refs[-1]() is not None)
        return sample(*args, **kwargs)

    monkeypatch.setattr(cascade, "estimate_flows", recorded_estimate)
    monkeypatch.setattr(cascade, "sample_level", recorded_sample)
    ctx = level_context(model, plan, settings, torch.device("cpu"), ProgressCounter(1), None)
    out, _ = cascade.run_cascade(model, f0, f2, 0.5, plan, ctx)
    # the coarser levels read the flows for the next level's base; the finest does not
    # (pad_flows_to_plan returns these very flows: 64 x 80 needs no padding)
    assert alive_while_sampling == [True, True, False]
    assert out.shape == (1, 3, 64, 80)
