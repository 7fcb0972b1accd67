"""Sampler maths: schedule, v/x/eps conversions, DDIM exactness with an oracle."""

import math

import pytest
import torch

from hifi_core.diffusion import (alpha_sigma, ddim_sample, ddim_times, eps_from_v, logsnr_schedule,
                                 q_sample, v_from_x_eps, x_from_v)
from hifi_core.errors import HiFIInputError


def test_schedule_is_clipped_cosine_and_monotone():
    t = torch.linspace(0, 1, 101)
    logsnr = logsnr_schedule(t, -20.0, 20.0)
    assert torch.isfinite(logsnr).all()
    assert logsnr[0] == pytest.approx(20.0, abs=1e-3)
    assert logsnr[-1] == pytest.approx(-20.0, abs=1e-3)
    assert (logsnr[1:] < logsnr[:-1]).all()
    alpha, sigma = alpha_sigma(logsnr)
    assert torch.allclose(alpha ** 2 + sigma ** 2, torch.ones_like(alpha), atol=1e-6)
    # Away from the clipped ends the schedule is alpha = cos(pi t / 2).
    mid = logsnr_schedule(torch.tensor(0.5), -30.0, 30.0)
    assert alpha_sigma(mid)[0] == pytest.approx(math.cos(math.pi / 4), abs=1e-4)


@pytest.mark.parametrize("t", [0.01, 0.3, 0.7, 0.99])
def test_v_x_eps_round_trip(t, rng):
    x = torch.randn(2, 3, 8, 8, generator=rng)
    eps = torch.randn(2, 3, 8, 8, generator=rng)
    alpha, sigma = alpha_sigma(logsnr_schedule(torch.tensor(t)))
    z = q_sample(x, eps, alpha, sigma)
    v = v_from_x_eps(x, eps, alpha, sigma)
    assert torch.allclose(x_from_v(z, v, alpha, sigma), x, atol=1e-5)
    assert torch.allclose(eps_from_v(z, v, alpha, sigma), eps, atol=1e-5)


def oracle(x):
    """A 'model' that returns the exact v for clean data x at any z."""
    def predict_v(z, logsnr, step):
        alpha, sigma = alpha_sigma(logsnr)
        return (alpha * z - x) / sigma
    return predict_v


@pytest.mark.parametrize("steps,eta", [(1, 0.0), (2, 0.0), (8, 0.0), (4, 1.0), (3, 0.5)])
def test_ddim_with_true_v_recovers_x(steps, eta, rng):
    x = torch.rand(1, 3, 16, 16, generator=rng) * 2 - 1
    noise = torch.randn(x.shape, generator=rng)
    out = ddim_sample(oracle(x), noise, steps=steps, eta=eta, generator=rng)
    assert torch.allclose(out, x, atol=1e-4)


def test_ddim_starts_at_t1_and_calls_back_every_step(rng):
    seen = []
    x = torch.zeros(1, 3, 4, 4)
    ddim_sample(oracle(x), torch.randn(1, 3, 4, 4, generator=rng), steps=3,
                callback=lambda i, n, xh: seen.append((i, n)))
    assert seen == [(0, 3), (1, 3), (2, 3)]
    times = ddim_times(3)
    assert times[0] == 1.0 and times[-1] == 0.0


def test_ddim_is_deterministic_with_seed():
    x = torch.full((1, 3, 4, 4), 0.2)

    def run(seed):
        g = torch.Generator().manual_seed(seed)
        noisy = lambda z, l, s: torch.zeros_like(z)  # noqa: E731  (depends on the noise only)
        return ddim_sample(noisy, torch.randn(x.shape, generator=g), steps=3, eta=1.0, generator=g)

    assert torch.equal(run(5), run(5))
    assert not torch.equal(run(5), run(6))


def test_bad_sampler_arguments():
    with pytest.raises(HiFIInputError, match="steps"):
        ddim_times(0)
    with pytest.raises(HiFIInputError, match="eta"):
        ddim_sample(oracle(torch.zeros(1)), torch.zeros(1), steps=1, eta=-1)


def test_model_loss_is_l1_or_squared_error_on_v(monkeypatch):
    import hifi_core.model as model_module
    from hifi_core import build_model

    model = build_model("tiny")
    seen = []
    real_v = model_module.v_from_x_eps
    monkeypatch.setattr(model_module, "v_from_x_eps", lambda *a: seen.append(real_v(*a)) or seen[-1])
    monkeypatch.setattr(model, "network_output", lambda z, *rest: torch.zeros_like(z))  # v_hat = 0
    g = torch.Generator().manual_seed(0)
    frames = [torch.rand(2, 3, 16, 16, generator=g) for _ in range(4)]
    args = (frames[0], frames[1], frames[2], torch.full((2,), 0.5), None, torch.tensor([False, False]),
            torch.tensor([0.3, 1.0]), torch.randn(2, 3, 16, 16, generator=g), frames[3])
    l1, l2 = model.loss(*args), model.loss(*args, norm="l2")
    assert torch.allclose(l1, seen[0].abs().flatten(1).mean(1))
    assert torch.allclose(l2, seen[1].square().flatten(1).mean(1))
    weight = torch.rand(2, 1, 16, 16, generator=g)
    weighted = model.loss(*args, pixel_weight=weight)
    assert torch.allclose(weighted, (seen[2].abs() * weight).flatten(1).mean(1))
    # log_l2: the log of each sample's mean squared error (a batch mean of it is a mean PSNR)
    log_l2 = model.loss(*args, norm="log_l2")
    assert torch.allclose(log_l2, (seen[3].square().flatten(1).mean(1) + model_module.LOG_L2_FLOOR).log())
    with pytest.raises(HiFIInputError, match="l2"):
        model.loss(*args, norm="huber")


def _tiny_with_prediction(prediction):
    import dataclasses

    from hifi_core import build_model
    from hifi_core.config import get_preset

    tiny = get_preset("tiny")
    return build_model(dataclasses.replace(tiny, diffusion=dataclasses.replace(tiny.diffusion, prediction=prediction)))


def test_x_prediction_samples_exactly_what_the_network_predicts(monkeypatch):
    # Read as -x, a network's output is the sample at every t: nothing of the noisy input has
    # to be reproduced. Read as v, the same output is the sample only at t = 1, which is why
    # v-trained weights start an x-prediction fine-tune with their one-step output unchanged.
    g = torch.Generator().manual_seed(1)
    out = torch.randn(2, 3, 16, 16, generator=g)
    z = torch.randn(2, 3, 16, 16, generator=g)
    frames = [torch.rand(2, 3, 16, 16, generator=g) for _ in range(3)]
    samples = {}
    for prediction in ("x", "v"):
        model = _tiny_with_prediction(prediction)
        monkeypatch.setattr(model, "network_output", lambda *args: out)
        for t in (1.0, 0.5):
            logsnr = logsnr_schedule(torch.tensor(t))
            alpha, sigma = alpha_sigma(logsnr)
            v_hat = model.predict_v(z, logsnr, *frames, torch.tensor([False, False]), torch.tensor(0.5))
            samples[prediction, t] = x_from_v(z, v_hat, alpha, sigma)
    assert torch.allclose(samples["x", 1.0], -out, atol=1e-4)
    assert torch.allclose(samples["x", 0.5], -out, atol=1e-5)
    # alpha at t = 1 is 4.5e-5, not 0 (logsnr_min -20): v's sample keeps that much of z
    assert torch.allclose(samples["v", 1.0], samples["x", 1.0], atol=1e-3)
    assert (samples["v", 0.5] + out).abs().mean() > 0.1  # v at mid t: the input noise is in it


def test_x_prediction_loss_is_the_error_of_the_predicted_sample(monkeypatch):
    g = torch.Generator().manual_seed(2)
    frames = [torch.rand(2, 3, 16, 16, generator=g) for _ in range(4)]
    noise = torch.randn(2, 3, 16, 16, generator=g)

    def loss(prediction, t):
        model = _tiny_with_prediction(prediction)
        monkeypatch.setattr(model, "network_output", lambda z, *rest: torch.zeros_like(z))
        return model.loss(frames[0], frames[1], frames[2], torch.full((2,), 0.5), None,
                          torch.tensor([False, False]), torch.full((2,), t), noise, frames[3])

    # output 0 = predicting x = 0: the error is the residual itself, whatever t and the noise
    assert torch.allclose(loss("x", 0.3), loss("x", 1.0))
    # at t = 1 the x error and the v error are the same quantity
    assert torch.allclose(loss("x", 1.0), loss("v", 1.0), atol=1e-4)
    # at mid t they differ: v = alpha * eps - sigma * x also holds the noise
    assert not torch.allclose(loss("v", 0.3), loss("x", 0.3), atol=1e-2)


def test_unknown_prediction_is_named():
    with pytest.raises(HiFIInputError, match="prediction='eps'.*'v', 'x'"):
        _tiny_with_prediction("eps")
