"""Flow residual base: DIS flows once on the coarsest level, banded resize and warp, and an
untrained flow-base cascade that already interpolates motion (where a blend ghosts)."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from hifi_core import CascadeSettings, HiFIInputError, build_model, interpolate
from hifi_core.baselines import blend_interpolate, dis_flow_interpolate
from hifi_core.flow_base import (fade_small_motion, flow_average, flow_estimation_downscale, resize_flows,
                                 tau_flows, warp_average)
from hifi_core.metrics import psnr


def textured_pair(shift: int, height: int = 96, width: int = 128, seed: int = 0):
    """A smooth random texture and the same texture moved right by `shift` px; middle frame."""
    g = torch.Generator().manual_seed(seed)
    base = F.interpolate(torch.rand(1, 3, height // 8, (width + 2 * shift) // 8 + 1, generator=g),
                         scale_factor=8, mode="bicubic", align_corners=False).clamp(0, 1)
    crop = lambda dx: base[..., :height, 2 * shift - dx: 2 * shift - dx + width]  # noqa: E731
    return crop(0), crop(shift // 2), crop(shift)


def test_resize_flows_matches_interpolate_and_bands_match_the_whole():
    flows = torch.randn(2, 4, 13, 17)
    whole = resize_flows(flows, (52, 68))
    reference = F.interpolate(flows, size=(52, 68), mode="bilinear", align_corners=False) * 4.0
    assert torch.allclose(whole, reference, atol=1e-4)
    assert torch.allclose(resize_flows(flows, (52, 68), rows=(10, 31)), whole[..., 10:31, :], atol=1e-5)
    # non-uniform scale: x vectors scale with the width, y with the height
    stretched = resize_flows(torch.ones(1, 4, 8, 8), (16, 32))
    assert torch.allclose(stretched[:, 0], torch.full((1, 16, 32), 4.0))
    assert torch.allclose(stretched[:, 1], torch.full((1, 16, 32), 2.0))


@pytest.mark.parametrize("band_rows", [7, 256])
def test_warp_average_is_the_dis_baseline(band_rows):
    f0, _, f2 = textured_pair(6)
    ours = warp_average(f0, f2, tau_flows(f0, f2, 0.5), 0.5, band_rows=band_rows, still_px=None)
    assert torch.allclose(ours, dis_flow_interpolate(f0, f2, 0.5), atol=1e-4)


def test_near_still_motion_falls_back_to_the_blend_and_real_motion_is_kept():
    flows = torch.zeros(1, 4, 4, 4)
    flows[:, 0], flows[:, 2] = -0.25, 0.25  # 0.5 px frame to frame: under DIS's accuracy
    flows[..., 2:, :] *= 8                  # bottom rows: 4 px, real motion
    faded = fade_small_motion(flows)
    assert faded[..., :2, :].abs().max() == 0
    assert torch.equal(faded[..., 2:, :], flows[..., 2:, :])


def test_flows_from_a_coarser_level_still_interpolate_motion():
    f0, truth, f2 = textured_pair(12)
    blend = psnr(blend_interpolate(f0, f2)[0], truth[0])
    from_half = psnr(flow_average(f0, f2, 0.5, flow_downscale=2)[0], truth[0])
    assert from_half > blend + 8.0, (from_half, blend)


def test_untrained_flow_base_cascade_interpolates_motion_that_a_blend_ghosts():
    # An untrained residual model returns its base; with the flow base that is the DIS
    # interpolation (flows from the coarsest level), so a moving texture lands in between.
    f0, truth, f2 = textured_pair(12)
    settings = CascadeSettings(levels=2, patch_size=(32, 32), overlap=8, steps=1)
    flow_model = build_model("tiny")
    assert flow_model.config.diffusion.residual_base == "flow"
    blend_config = dataclasses.replace(flow_model.config, diffusion=dataclasses.replace(
        flow_model.config.diffusion, residual_base="blend", network_frames="raw"))
    with_flow = psnr(interpolate(flow_model, f0, f2, settings=settings)[0], truth[0])
    with_blend = psnr(interpolate(build_model(blend_config), f0, f2, settings=settings)[0], truth[0])
    assert with_flow > with_blend + 8.0, (with_flow, with_blend)


def test_flow_model_sees_its_base_and_refuses_to_run_without_flows():
    model = build_model("tiny")
    f = torch.rand(2, 3, 16, 16)
    tau, mask = torch.full((2,), 0.5), torch.tensor([False, True])
    with pytest.raises(HiFIInputError, match="warped"):
        model.base_estimate(f, f, tau, torch.zeros_like(f), mask)
    warped = torch.rand(2, 3, 16, 16)
    base = model.base_estimate(f, f, tau, torch.zeros_like(f), mask, warped)
    assert torch.equal(base[0], warped[0])  # base level: the warped average itself
    assert torch.equal(model.network_condition(torch.zeros_like(f), base), base)


def test_flows_are_estimated_at_up_to_about_1080p():
    assert flow_estimation_downscale(1080, 1920) == 1
    assert flow_estimation_downscale(1088, 1920) == 1
    assert flow_estimation_downscale(1090, 1920) == 2
    assert flow_estimation_downscale(2160, 3840) == 2
    assert flow_estimation_downscale(4320, 7680) == 4
    assert flow_estimation_downscale(100, 100, max_pixels=50 * 50) == 2


def test_cascade_estimates_flows_under_the_pixel_cap(monkeypatch):
    # untrained, the cascade returns its finest flow average, so its flows are visible; the
    # full size (test_cascade) is over a 20x20 cap, so DIS sees the frames at 1/4 size
    import hifi_core.flow_base as flow_base

    monkeypatch.setattr(flow_base, "FLOW_MAX_PIXELS", 20 * 20)
    f0, _, f2 = textured_pair(6, height=64, width=64)
    settings = CascadeSettings(levels=3, patch_size=(32, 32), overlap=8, steps=1)
    out = interpolate(build_model("tiny"), f0, f2, settings=settings)
    assert (out - flow_average(f0, f2, 0.5, flow_downscale=4)).abs().max() < 2e-3
    assert (out - flow_average(f0, f2, 0.5, flow_downscale=1)).abs().max() > 1e-2


def test_warped_network_frames_agree_where_the_flow_is_right_and_blend_to_the_base():
    from hifi_core.cascade import level_inputs
    from hifi_core.config import DiffusionConfig
    from hifi_core.flow_base import estimate_flows

    f0, _, f2 = textured_pair(12)
    tiny = build_model("tiny").config
    model = build_model(dataclasses.replace(tiny, diffusion=dataclasses.replace(tiny.diffusion, network_frames="warped")))
    assert model.sees_warped_frames
    flows = estimate_flows(f0, f2, 0.5)
    warped0, warped2, average = level_inputs(model, f0, f2, flows, 0.5)
    assert torch.allclose(average, warp_average(f0, f2, flows, 0.5), atol=1e-6)
    inner = (..., slice(16, -16), slice(16, -16))  # away from the edge the texture enters at
    assert (warped0 - warped2)[inner].abs().mean() < 0.1 * (f0 - f2)[inner].abs().mean()
    raw = build_model("tiny")
    raw0, raw2, raw_average = level_inputs(raw, f0, f2, flows, 0.5)
    assert raw0 is f0 and raw2 is f2 and torch.allclose(raw_average, average, atol=1e-6)
    with pytest.raises(HiFIInputError, match="residual_base"):
        DiffusionConfig(residual_base="blend", network_frames="warped")


def test_a_one_step_cascade_returns_what_training_at_t1_teaches():
    # Training (HiFIModel.loss at t = 1, squared error) and inference (one DDIM step through
    # the cascade) must agree on the residual: a model fitted to one triplet whose middle
    # frame no flow explains must reproduce it.
    from hifi_core.cascade import level_inputs
    from hifi_core.flow_base import estimate_flows

    torch.manual_seed(0)
    f0, truth, f2 = textured_pair(12, height=32, width=32)
    truth = truth.clone()
    truth[..., 8:24, 8:24] = 1.0 - truth[..., 8:24, 8:24]
    model = build_model("tiny")
    tau = torch.tensor([0.5])
    frame0, frame2, warped = level_inputs(model, f0, f2, estimate_flows(f0, f2, tau), tau)
    settings = CascadeSettings(levels=1, patch_size=(32, 32), overlap=0, steps=1)
    before = psnr(interpolate(model, f0, f2, settings=settings)[0], truth[0])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(200):
        loss = model.loss(truth, frame0, frame2, tau, None, torch.tensor([False]), torch.ones(1),
                          torch.randn(1, 3, 32, 32), warped, norm="l2").mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = psnr(interpolate(model, f0, f2, settings=settings)[0], truth[0])
    assert after > 25.0 and after > before + 10.0, (before, after)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_dis_sees_the_grey_image_of_the_whole_frame_made_in_bands(dtype, monkeypatch):
    import hifi_core.flow_base as flow_base
    from hifi_core.dis_flow import grey8

    monkeypatch.setattr(flow_base, "GREY_BAND_ROWS", 7)  # several bands and a short last one
    frame = (torch.rand(1, 3, 40, 30) * 1.2 - 0.1).to(dtype)  # values past [0, 1] are clamped
    whole = grey8(frame[0].float().clamp(0, 1).permute(1, 2, 0).numpy())
    assert (flow_base.grey8_frame(frame[0]) == whole).all()
    # a view into a wider buffer (how estimate_flows hands RIFE's aligned frames on)
    wider = torch.cat([frame, frame[..., :5]], dim=-1)[..., :30]
    assert (flow_base.grey8_frame(wider[0]) == whole).all()


def test_tau_flows_written_in_place_are_the_dis_baselines_numbers():
    from hifi_core.dis_flow import dis_tau_flows

    f0, _, f2 = textured_pair(6, 48, 64)
    tau = torch.tensor([0.3])  # float32, as the bases pass it on
    to0, to2 = dis_tau_flows(*(f[0].permute(1, 2, 0).numpy() for f in (f0, f2)), float(tau))
    expected = torch.cat([torch.from_numpy(to0), torch.from_numpy(to2)], dim=2).permute(2, 0, 1)
    assert torch.equal(tau_flows(f0, f2, tau)[0], expected)
