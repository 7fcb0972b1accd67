"""Interpolator: one object that plans and runs, with each pair's own noise."""

import torch

from hifi_core import CascadeSettings, Interpolator, build_model, interpolate, plan_job
from hifi_core.interpolate import level_context, plan_for
from test_flow_base import textured_pair


def test_the_interpolator_plans_what_it_runs_and_seeds_by_pair():
    torch.manual_seed(0)
    model = build_model("tiny")
    settings = CascadeSettings(levels=2, patch_size=(32, 32), overlap=8, steps=2, seed=4, memory_budget=1 << 30)
    hifi = Interpolator(model, settings)
    job = hifi.plan(48, 64)
    assert job == plan_job(model.config, 48, 64, settings, torch.device("cpu"))
    ctx = level_context(model, plan_for(model, 48, 64, settings), settings, torch.device("cpu"), None, None)
    # 4 nominal 32x32 patches' worth: the 48x64 level is one 48x64 patch, one at a time
    assert [(g.patch_height, g.patch_width, len(g.boxes)) for g in job.cascade.grids] == [(24, 32, 1), (48, 64, 1)]
    assert job.patch_batch == ctx.batcher.batch_size == 1 and job.peak_bytes > job.working_bytes > 0
    frame0, _, frame2 = textured_pair(4, 48, 64, seed=2)
    made = hifi(frame0, frame2, [0.25, 0.5], pair=3)
    assert made.shape == (2, 3, 48, 64)
    assert torch.equal(made, interpolate(model, frame0, frame2, [0.25, 0.5], settings=settings, pair_index=3)[0])
    assert not torch.equal(made, hifi(frame0, frame2, [0.25, 0.5], pair=4))  # another pair, other noise
