"""Every valid DiffusionConfig, and a sweep of cascade settings, through the whole cascade
(in the manner of diffusers' scheduler tests): finite frames in [0, 1] of the right shape,
reproducible for a seed, and a network that predicts no correction returns its base."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
import torch

from hifi_core import CascadeSettings, HiFIInputError, build_model, interpolate
from hifi_core.baselines import blend_interpolate
from hifi_core.config import (NETWORK_FRAMES, PARAMETERISATIONS, PREDICTIONS, RESIDUAL_BASES, DiffusionConfig,
                              get_preset)
from hifi_core.flow_base import flow_average
from test_flow_base import textured_pair


def valid_diffusion_configs():
    for parameterisation, base, frames, prediction, detail in itertools.product(
            PARAMETERISATIONS, RESIDUAL_BASES, NETWORK_FRAMES, PREDICTIONS, (False, True)):
        try:
            yield DiffusionConfig(parameterisation=parameterisation, residual_base=base, network_frames=frames,
                                  prediction=prediction, condition_detail=detail)
        except HiFIInputError:
            continue


CONFIGS = list(valid_diffusion_configs())
SMALL = CascadeSettings(levels=2, patch_size=(32, 32), overlap=8, steps=1, seed=3)


def tiny_model(diffusion: DiffusionConfig):
    torch.manual_seed(0)
    return build_model(dataclasses.replace(get_preset("tiny"), diffusion=diffusion))


def test_the_sweep_covers_every_option_axis():
    assert len(CONFIGS) >= 40
    for axis in ("parameterisation", "residual_base", "network_frames", "prediction", "condition_detail"):
        assert len({getattr(c, axis) for c in CONFIGS}) >= 2, axis


@pytest.mark.parametrize("diffusion", CONFIGS, ids=lambda c: "-".join(
    [c.parameterisation, c.residual_base, c.network_frames, c.prediction, "detail" if c.condition_detail else "plain"]))
def test_every_diffusion_config_runs_the_cascade(diffusion):
    model = tiny_model(diffusion)
    frame0, _, frame2 = textured_pair(4, 48, 64, seed=1)
    out = interpolate(model, frame0[0], frame2[0], [0.25, 0.5], settings=SMALL)
    assert out.shape == (1, 2, 3, 48, 64) and bool(torch.isfinite(out).all())
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    assert torch.equal(out, interpolate(model, frame0[0], frame2[0], [0.25, 0.5], settings=SMALL))
    if diffusion.parameterisation == "residual" and diffusion.prediction == "x" and diffusion.condition_detail:
        # a network that predicts no correction returns the residual base, at every level
        # (without the detail band, a finer level's base is the coarser one's, upsampled)
        model.network_output = lambda z, *rest: torch.zeros_like(z)
        silent = interpolate(model, frame0[0], frame2[0], 0.5, settings=SMALL)
        base = (blend_interpolate(frame0, frame2, 0.5) if diffusion.residual_base == "blend"
                else flow_average(frame0, frame2, 0.5, base=diffusion.residual_base))[0]
        assert torch.allclose(silent, base.clamp(0, 1), atol=2e-3), float((silent - base).abs().max())


@pytest.mark.parametrize("levels, steps, samples, feather, overlap, eta", [
    (1, 1, 1, False, 8, 0.0), (2, 2, 1, True, 8, 0.0), (3, 1, 2, False, 16, 0.0), (2, 2, 2, True, 0, 1.0),
    ("auto", 1, 1, False, 8, 0.5)])
def test_cascade_settings_sweep(levels, steps, samples, feather, overlap, eta):
    model = tiny_model(get_preset("tiny").diffusion)
    frame0, _, frame2 = textured_pair(6, 64, 96, seed=2)
    settings = CascadeSettings(levels=levels, patch_size=(32, 32), overlap=overlap, steps=steps, samples=samples,
                               feather=feather, eta=eta, seed=5)
    out, variance = interpolate(model, frame0[0], frame2[0], 0.5, settings=settings, return_variance=True)
    assert out.shape == (3, 64, 96) and bool(torch.isfinite(out).all()) and 0 <= float(out.min())
    assert torch.equal(out, interpolate(model, frame0[0], frame2[0], 0.5, settings=settings))
    assert (float(variance.max()) > 0) == (samples > 1)
    other = interpolate(model, frame0[0], frame2[0], 0.5, settings=dataclasses.replace(settings, seed=6))
    assert not torch.equal(out, other)  # the seed is the noise's
