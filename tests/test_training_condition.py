"""Own-prediction conditions: the upsampler trains on exactly what the cascade feeds it."""

import dataclasses
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from models import perturbed  # noqa: E402
from test_flow_base import textured_pair  # noqa: E402

import hifi_core.cascade as cascade  # noqa: E402
from hifi_core import build_model  # noqa: E402
from hifi_core.diffusion import to_model_space  # noqa: E402
from hifi_core.flow_base import estimate_flows, flow_average, warp_average  # noqa: E402
from hifi_core.memory import AdaptiveBatchSize  # noqa: E402
from hifi_core.training.condition import (ConditionConfig, apply_own_predictions,  # noqa: E402
                                          own_prediction_condition)


def perturbed_model(seed: int = 0, network_frames: str = "raw"):
    """A tiny flow model whose output is not zero, so its base prediction is not its warp."""
    tiny = build_model("tiny").config
    return perturbed(dataclasses.replace(tiny, diffusion=dataclasses.replace(tiny.diffusion,
                                                                             network_frames=network_frames)), seed)


@pytest.mark.parametrize("network_frames", ["raw", "warped"])
def test_own_prediction_condition_is_what_the_cascade_gives_its_second_level(monkeypatch, network_frames):
    model = perturbed_model(network_frames=network_frames)
    f0, _, f2 = textured_pair(6, height=32, width=32)
    seen = {}
    real_build = cascade.build_level_base

    def recording(*args, **kwargs):
        built = real_build(*args, **{**kwargs, "keep_condition": True})
        if built.condition is not None:
            seen["condition"] = built.condition
        return built

    monkeypatch.setattr(cascade, "build_level_base", recording)
    plan = cascade.plan_cascade(32, 32, levels=2, patch_size=(16, 16), overlap=0, alignment=model.alignment)
    ctx = cascade.LevelContext(steps=1, samples=1, eta=0.0, overlap=0, feather=False,
                               seed=5, batcher=AdaptiveBatchSize(4))
    cascade.run_cascade(model, f0, f2, 0.5, plan, ctx)
    ours = own_prediction_condition(model, f0, f2, 0.5, 5)
    assert torch.allclose(ours, seen["condition"], atol=1e-6)
    # the trainer hands over its batch's flows and warped average instead of a second DIS
    flows = estimate_flows(f0, f2, 0.5)
    given = own_prediction_condition(model, f0, f2, 0.5, 5, 1,
                                     flows, warp_average(f0, f2, flows, 0.5))
    assert torch.equal(given, ours)
    # a non-trivial prediction: the condition is not just the warp seen through down/up
    half_warp = half(flow_average(f0, f2, 0.5))  # any stand-in: the prediction's correction is zero
    plain = cascade.level_condition(half_warp, half_warp, flow_average(f0, f2, 0.5))
    assert (ours - plain).abs().max() > 1e-3


def half(frame):
    return torch.nn.functional.avg_pool2d(frame, 2)


def test_untrained_own_prediction_gives_the_finest_warp_as_base():
    model = build_model("tiny")  # untrained: reproduces its base at every level
    f0, _, f2 = textured_pair(6, height=32, width=32)
    cond = own_prediction_condition(model, f0, f2, 0.5, 0)
    warped = flow_average(f0, f2, 0.5)
    base = model.base_estimate(to_model_space(f0), to_model_space(f2), torch.tensor([0.5]),
                               to_model_space(cond), torch.tensor([True]), to_model_space(warped))
    assert (base - to_model_space(warped)).abs().max() < 1e-3  # float rounding of the v round trip


def test_apply_own_predictions_replaces_only_kept_conditions_and_draws_nothing_when_off():
    model = perturbed_model(1)
    f0, _, f2 = textured_pair(6, height=32, width=32)
    f0, f2 = f0.repeat(3, 1, 1, 1), f2.repeat(3, 1, 1, 1)
    tau, mask = torch.full((3,), 0.5), torch.tensor([True, False, True])
    cond = torch.zeros(3, 3, 32, 32)
    gen = torch.Generator().manual_seed(2)
    off = apply_own_predictions(model, f0, f2, tau, cond, mask, ConditionConfig(), gen)
    assert not off.any() and cond.abs().max() == 0
    assert torch.equal(gen.get_state(), torch.Generator().manual_seed(2).get_state())
    on = apply_own_predictions(model, f0, f2, tau, cond, mask, ConditionConfig(own_prediction_prob=1.0), gen)
    assert on.tolist() == [True, False, True]
    assert cond[0].abs().max() > 0 and cond[1].abs().max() == 0 and cond[2].abs().max() > 0


def test_own_prediction_base_level_uses_the_context_warps_where_motion_leaves_the_crop(monkeypatch):
    import hifi_core.training.condition as condition

    # a pan of 8 px over a 32 px crop cut from a 3x larger view (DataConfig.flow_context): warping
    # the crop itself has no pixels to fetch at its edges; the view's warps do
    view0, view_mid, view2 = textured_pair(8, height=96, width=96)
    flows = estimate_flows(view0, view2, 0.5)
    warps = cascade.warp_frames(view0, view2, flows)
    centre = lambda x: x[..., 32:64, 32:64].contiguous()  # noqa: E731
    f0, target, f2, crop_flows = centre(view0), centre(view_mid), centre(view2), centre(flows)
    context_warps = tuple(centre(w) for w in warps)
    seen = []
    real_denoise = condition.denoise_level

    def recording(model_, net0, net2, cond, tau, grid, *args):
        seen.append(args[-1].clone())  # the base level's warped average
        return real_denoise(model_, net0, net2, cond, tau, grid, *args)

    monkeypatch.setattr(condition, "denoise_level", recording)
    model = perturbed_model(2, network_frames="warped")
    plain = own_prediction_condition(model, f0, f2, 0.5, 0, 1, crop_flows)
    wide = own_prediction_condition(model, f0, f2, 0.5, 0, 1, crop_flows,
                                    None, context_warps)
    context_average = half(context_warps[0] + context_warps[1]) / 2
    assert torch.allclose(seen[1], context_average, atol=1e-6)
    edge_error = lambda x: (x - half(target))[..., :, -3:].abs().mean()  # noqa: E731 (motion is rightward)
    assert edge_error(seen[1]) < 0.5 * edge_error(seen[0]), (edge_error(seen[1]), edge_error(seen[0]))
    assert not torch.equal(plain, wide)
