"""The cascade's frame-sized memory: frames read a block at a time, bases built in bands, rows
sampled in place. Each piece is checked against the whole-frame computation it replaces."""

import pytest
import torch
import torch.nn.functional as F

from hifi_core import CascadeSettings, interpolate
from hifi_core import cascade
from hifi_core.diffusion import ddim_sample, from_model_space, to_model_space
from hifi_core.flow_base import estimate_flows, warp_average
from hifi_core.level_sampler import LevelContext, noise_generator, sample_level
from hifi_core.memory import AdaptiveBatchSize
from hifi_core.padded_frame import PaddedFrame
from hifi_core.patches import make_patch_grid, patch_weight

from models import perturbed
from test_flow_base import textured_pair


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_a_padded_frame_reads_what_padding_then_slicing_gives(dtype):
    frame = torch.rand(1, 3, 21, 30).to(dtype)
    padded = F.pad(frame.float(), (0, 10, 0, 11), mode="replicate")  # 32 x 40
    view = PaddedFrame(frame, 32, 40)
    assert view.shape == (1, 3, 32, 40)
    for top, bottom, left, right in [(0, 32, 0, 40), (5, 27, 3, 38), (20, 32, 29, 40), (25, 31, 0, 7)]:
        block = view.block(top, bottom, left, right)
        assert block.dtype == torch.float32
        assert torch.equal(block, padded[..., top:bottom, left:right])
    for factor in (1, 2, 4, 8):
        assert torch.equal(view.downsampled(factor), F.avg_pool2d(padded, factor))
    with pytest.raises(ValueError, match="smaller"):
        PaddedFrame(frame, 20, 40)


def test_warping_a_padded_frame_reads_only_its_rows_and_matches_the_whole_frame():
    f0, _, f2 = textured_pair(4, height=40, width=56)
    flows = estimate_flows(f0, f2, 0.5)
    flows[:, 1] += torch.linspace(-6, 9, 56)  # vertical reach, up and down, out of the frame too
    flows[:, 3] -= 4.5
    whole = warp_average(f0, f2, flows, 0.5, band_rows=8)
    banded = warp_average(PaddedFrame(f0.half()), PaddedFrame(f2.half()), flows, 0.5, band_rows=8)
    reference = warp_average(f0.half().float(), f2.half().float(), flows, 0.5, band_rows=8)
    assert banded.dtype == torch.float32
    assert (banded - reference).abs().max() < 1e-5
    assert (whole - reference).abs().max() < 2e-3  # the half rounding of the frames, no more
    # some rows only, any band size: the rows of the whole result
    part = warp_average(PaddedFrame(f0), PaddedFrame(f2), flows, 0.5, band_rows=5, rows=(7, 29))
    assert (part - whole[..., 7:29, :]).abs().max() < 1e-5


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
def test_a_band_warped_from_a_padded_frame_reads_the_rows_its_kernel_reaches(mode):
    # bicubic reads a row more on each side than bilinear: a block cut for bilinear's reach
    # would clamp at its own edge instead of the frame's
    from hifi_core.ifnet import backward_warp, warp_rows

    frame = torch.rand(1, 3, 30, 20)
    flow = torch.zeros(1, 2, 6, 20)
    flow[:, 1] = torch.linspace(-3.5, 4.25, 20)  # rows 7.5 .. 17.25 for output rows 11-16
    flow[:, 0] = 1.5
    banded = warp_rows(PaddedFrame(frame.half()), flow, 11, mode)
    whole = backward_warp(frame.half().float(), flow, 11, mode)
    assert (banded - whole).abs().max() < 1e-5


@pytest.mark.parametrize("preset,band_rows", [("tiny", 6), ("tiny", 128), ("small", 10)])
def test_a_level_base_built_in_bands_equals_the_whole_frame_functions(preset, band_rows):
    model = perturbed(preset, seed=3).eval()
    f0, _, f2 = textured_pair(6, height=48, width=64)
    flows = estimate_flows(f0, f2, 0.5, base=model.motion_base) if model.uses_flow else None
    half0, half2 = F.avg_pool2d(f0, 2), F.avg_pool2d(f2, 2)
    estimate = torch.rand(1, 3, 24, 32)
    coarser = warp_average(half0, half2, flows, 0.5) if flows is not None else None
    warped = warp_average(f0, f2, flows, 0.5) if flows is not None else None
    condition = cascade.level_condition(estimate, coarser, warped)
    whole = cascade.level_base(model, f0, f2, condition.clone(), 0.5, warped)
    built = cascade.build_level_base(model, f0, f2, flows, 0.5, estimate, coarser, keep_warped=True,
                                     keep_condition=True, band_rows=band_rows)
    assert (built.base - whole).abs().max() < 1e-5
    assert (built.condition - condition).abs().max() < 1e-6
    if warped is not None:
        assert (built.warped - warped).abs().max() < 1e-6
    # the coarsest level: no estimate, the base is the reference itself
    coarsest = cascade.build_level_base(model, half0, half2, flows, 0.5, band_rows=band_rows).base
    assert (coarsest - cascade.level_base(model, half0, half2, None, 0.5, coarser)).abs().max() < 1e-5


def whole_frame_multidiffusion(model, frame0, frame2, base, tau, grid, ctx, pair, level):
    """The paper's MultiDiffusion step on whole tensors: every patch's v summed with its weight
    over the frame, divided by the summed weights, one DDIM update of the whole frame."""
    ph, pw = grid.patch_height, grid.patch_width
    weight = patch_weight(ph, pw, ctx.overlap, ctx.feather)
    generator = noise_generator(ctx.seed, pair, tau, level)
    noise = torch.randn(frame0.shape, generator=generator)
    diffusion = model.config.diffusion

    def predict(z, logsnr, step):
        v_sum, w_sum = torch.zeros_like(z), torch.zeros(1, 1, *z.shape[-2:])
        for y, x in grid.boxes:
            crop = (..., slice(y, y + ph), slice(x, x + pw))
            v = model.predict_v(z[crop], logsnr, to_model_space(frame0[crop]), to_model_space(frame2[crop]),
                                base[crop], torch.tensor([True]), torch.tensor([float(tau)]))
            v_sum[crop] += v * weight
            w_sum[crop] += weight
        return v_sum / w_sum

    def clamp(y):
        return model.to_diffusion_space(model.from_diffusion_space(y, base).clamp(-1, 1), base)

    with torch.inference_mode():
        y = ddim_sample(predict, noise, steps=ctx.steps, eta=ctx.eta, logsnr_min=diffusion.logsnr_min,
                        logsnr_max=diffusion.logsnr_max, generator=generator, clamp_x=clamp)
        return from_model_space(model.from_diffusion_space(y, base).clamp(-1, 1))


@pytest.mark.parametrize("batch,eta,feather", [(1, 0.0, False), (5, 0.6, True), (16, 0.0, False)])
def test_rows_sampled_in_place_equal_whole_frame_multidiffusion(batch, eta, feather):
    model = perturbed("tiny", seed=3).eval()
    f0, _, f2 = textured_pair(7, height=48, width=64)
    base = to_model_space(torch.rand(1, 3, 48, 64))
    grid = make_patch_grid(48, 64, (16, 32), 6)  # overlapping rows and columns, the last flush
    ctx = LevelContext(steps=2, samples=1, eta=eta, overlap=6, feather=feather, seed=11,
                       batcher=AdaptiveBatchSize(batch))
    ours, _ = sample_level(model, f0, f2, base.clone(), 0.5, grid, 1, 2, ctx, has_condition=True, pair=4)
    reference = whole_frame_multidiffusion(model, f0, f2, base, 0.5, grid, ctx, pair=4, level=1)
    assert (ours - reference).abs().max() < 1e-5
    # the half-precision frames as the sampler reads them (a block at a time)
    halves, _ = sample_level(model, PaddedFrame(f0.half()), PaddedFrame(f2.half()), base.clone(), 0.5, grid, 1,
                             2, ctx, has_condition=True, pair=4)
    expected = whole_frame_multidiffusion(model, f0.half().float(), f2.half().float(), base, 0.5, grid, ctx, 4, 1)
    assert (halves - expected).abs().max() < 1e-5


def test_half_precision_frames_give_the_float32_result_of_their_values():
    model = perturbed("tiny", seed=3).eval()
    f0, _, f2 = textured_pair(8, height=64, width=90)  # padded to the cascade's multiple
    settings = CascadeSettings(levels=2, patch_size=(32, 32), overlap=8, steps=2, seed=2)
    half = interpolate(model, f0.half(), f2.half(), 0.5, settings=settings)
    full = interpolate(model, f0.half().float(), f2.half().float(), 0.5, settings=settings)
    assert half.dtype == torch.float16 and half.shape == (1, 3, 64, 90)
    assert full.dtype == torch.float32
    # the only difference: with half frames the base and z are held in float16 (each value
    # rounded by <= 2.5e-4)
    difference = (half.float() - full).abs()
    assert difference.max() < 2e-3 and difference.mean() < 2e-4, (difference.max(), difference.mean())
    assert difference.max() > 0  # the compact base is in use


@pytest.mark.parametrize("height,width", [(70, 40), (3, 5), (200, 33), (4, 4), (7, 9)])
def test_compact_noise_is_one_whole_float32_draw_made_in_chunks(height, width, monkeypatch):
    # a float16 z is drawn a chunk at a time (no 400 MB float32 twin at 8K): the numbers must
    # be the whole draw's, or a compact run would not reproduce its float32 twin's noise
    from hifi_core import level_sampler
    from hifi_core.level_sampler import draw_noise

    monkeypatch.setattr(level_sampler, "NOISE_CHUNK_VALUES", 48)

    whole = torch.randn(1, 3, height, width, generator=torch.Generator().manual_seed(7))
    banded = draw_noise((1, 3, height, width), torch.Generator().manual_seed(7), torch.float16, torch.device("cpu"))
    assert banded.dtype == torch.float16
    assert torch.equal(banded, whole.half())


@pytest.mark.parametrize("eta", [0.0, 0.6])
def test_a_float16_base_keeps_z_in_float16_and_samples_as_float32_would(monkeypatch, eta):
    from hifi_core import level_sampler

    model = perturbed("tiny", seed=3).eval()
    f0, _, f2 = textured_pair(7, height=48, width=64)
    base = to_model_space(torch.rand(1, 3, 48, 64)).half()
    grid = make_patch_grid(48, 64, (16, 32), 6)
    ctx = LevelContext(steps=3, samples=1, eta=eta, overlap=6, feather=True, seed=11, batcher=AdaptiveBatchSize(2))
    drawn, randn = [], torch.randn

    def recorded_randn(*size, **kwargs):
        out = randn(*size, **kwargs)
        drawn.append(out.numel())
        return out

    monkeypatch.setattr(level_sampler.torch, "randn", recorded_randn)
    monkeypatch.setattr(level_sampler, "NOISE_CHUNK_VALUES", 1024)
    compact, _ = sample_level(model, f0, f2, base, 0.5, grid, 1, 2, ctx, has_condition=True, pair=4)
    monkeypatch.undo()
    assert compact.dtype == torch.float16 and max(drawn) < 2 * 1024  # chunks, never the whole z
    full, _ = sample_level(model, f0, f2, base.float(), 0.5, grid, 1, 2, ctx, has_condition=True, pair=4)
    difference = (compact.float() - full).abs()
    assert difference.max() < 2e-3 and difference.mean() < 2e-4, (difference.max(), difference.mean())


@pytest.mark.parametrize("batch", [1, 2, 7])
def test_the_row_window_never_grows_past_its_planned_rows(monkeypatch, batch):
    from hifi_core import level_sampler
    from hifi_core.memory import sampler_window_rows

    grown = []
    real_cat = torch.cat
    monkeypatch.setattr(level_sampler.torch, "cat", lambda tensors, dim=0: (grown.append(dim), real_cat(tensors, dim=dim))[1])
    model = perturbed("tiny", seed=3).eval()
    f0, _, f2 = textured_pair(5, height=96, width=64)
    grid = make_patch_grid(96, 64, (16, 32), 4)  # 7 patch rows of 2
    ctx = LevelContext(steps=1, samples=1, eta=0.0, overlap=4, feather=False, seed=1,
                       batcher=AdaptiveBatchSize(batch))
    sample_level(model, f0, f2, to_model_space(torch.rand(1, 3, 96, 64)), 0.5, grid, 1, 2, ctx, has_condition=True)
    assert -2 not in grown  # rows were never added to the window: its planned size held
    assert sampler_window_rows(grid, batch) < 96  # and it is a band, not the level
