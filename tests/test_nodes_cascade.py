"""The interpolation nodes, without ComfyUI: image conversion, the cascade as a graph, and
ComfyUI behaviour (progress, cancel, memory, the time readout), run on the tiny preset."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from comfy_stubs.clips import make_frames
from node_pack import TINY


# --- image conversion ---------------------------------------------------------------------

def test_grayscale_and_alpha_are_kept(nodes, comfy, tiny_model):
    rgb = make_frames(3, 32, 32)
    alpha = torch.stack([torch.full((32, 32, 1), 0.2), torch.full((32, 32, 1), 0.6),
                         torch.full((32, 32, 1), 1.0)])
    out, fps, _, _ = nodes["HiFIInterpolate"]().interpolate(
        tiny_model, torch.cat([rgb, alpha], dim=-1), 2, 0.0, scene_cuts="off",
        scene_threshold=0.15, fps=10.0, **TINY)
    assert out.shape == (5, 32, 32, 4) and fps == 20.0
    assert torch.allclose(out[1, ..., 3], torch.full((32, 32), 0.4), atol=1e-6)  # alpha blended
    assert torch.equal(out[0], torch.cat([rgb, alpha], dim=-1)[0])               # original kept
    grey = rgb.mean(dim=-1, keepdim=True)
    out, _, _, _ = nodes["HiFIInterpolate"]().interpolate(
        tiny_model, grey, 2, 0.0, scene_cuts="off", scene_threshold=0.15, **TINY)
    assert out.shape == (5, 32, 32, 1)
    assert torch.allclose(out[2], grey[1], atol=1e-6)


@pytest.mark.parametrize("bad, message", [
    (torch.rand(3, 16, 16, 2), "2 channels"),
    (torch.rand(1, 16, 16, 3), "at least 2"),
    (torch.rand(3, 16, 16, 3) * 255, r"\[0, 1\]"),
    ("frames", "IMAGE batch"),
])
def test_bad_images_are_refused_naming_the_input(nodes, comfy, tiny_model, bad, message):
    with pytest.raises(ValueError, match=f"HiFI Interpolate: input 'frames'.*{message}"):
        nodes["HiFIInterpolate"]().interpolate(tiny_model, bad, 2, 0.0, scene_cuts="off",
                                               scene_threshold=0.15, **TINY)


# --- the cascade as a graph -------------------------------------------------------------------

def test_split_graph_runs_in_time_order(nodes, comfy, tiny_model):
    frames = make_frames(3, 48, 64)
    base, preview = nodes["HiFIBaseSample"]().sample(
        tiny_model, frames, levels=2, multiplier=2, target_fps=0.0, steps=1, samples=1, seed=3,
        eta=0.0, patch_width=32, patch_height=32, overlap=8, fps=12.0)
    assert base.level == 0 and base.num_levels == 2 and base.pairs == (0, 1)
    assert preview.shape == (2, 48, 64, 3) and base.estimates[0][0].shape == (1, 3, 24, 32)
    ran = nodes["HiFIPatchCascadeUpsample"]().upsample(
        tiny_model, frames, base, "to full resolution", 32, 32, 8, False, 0, 0, 1, 2, 3, 0.0)
    assert ran["ui"]["hifi_frame"] == [{"width": 64, "height": 48}]
    full, preview, uncertainty = ran["result"]
    assert full.is_full_resolution and uncertainty.shape == (2, 48, 64, 3)
    assert float(uncertainty.max()) > 0  # two samples differ somewhere
    merged, fps = nodes["HiFIMerge"]().merge(frames, full, True, "off", 0.15, "keep")
    assert merged.shape == (5, 48, 64, 3) and fps == 24.0
    assert torch.equal(merged[0], frames[0]) and torch.equal(merged[2], frames[1])
    assert torch.equal(merged[4], frames[2])
    assert torch.equal(merged[1].permute(2, 0, 1)[None], full.estimates[0][0])
    assert torch.equal(merged[3].permute(2, 0, 1)[None], full.estimates[1][0])


def test_split_graph_matches_hifi_core(pack, nodes, comfy, tiny_model):
    """One level, one pair: Base Sample -> Merge gives exactly hifi_core.interpolate's frame."""
    core = pack.hifi_core
    frames = make_frames(2, 48, 64)
    base, _ = nodes["HiFIBaseSample"]().sample(
        tiny_model, frames, levels=1, multiplier=2, target_fps=0.0, steps=2, samples=1, seed=3,
        eta=0.0, patch_width=32, patch_height=32, overlap=8, fps=12.0)
    assert base.is_full_resolution
    merged, _ = nodes["HiFIMerge"]().merge(frames, base, True, "off", 0.15, "keep")
    rgb = frames.permute(0, 3, 1, 2)
    settings = core.CascadeSettings(levels=1, patch_size=(32, 32), overlap=8, steps=2, seed=3)
    direct = core.interpolate(tiny_model.model, rgb[0], rgb[1], 0.5, settings=settings)
    assert torch.allclose(merged[1].permute(2, 0, 1), direct, atol=1e-6)
    assert not torch.allclose(direct, 0.5 * (rgb[0] + rgb[1]), atol=1e-3)  # the model did work


def test_upsample_chains_one_level_per_node(nodes, comfy, tiny_model):
    frames = make_frames(2, 64, 64)
    base, _ = nodes["HiFIBaseSample"]().sample(
        tiny_model, frames, levels=3, multiplier=3, target_fps=0.0, steps=1, samples=1, seed=0,
        eta=0.0, patch_width=32, patch_height=32, overlap=8)
    assert base.taus == ((1 / 3, 2 / 3),) and base.estimates[0][0].shape[-1] == 16
    up = nodes["HiFIPatchCascadeUpsample"]()
    mid, _, _ = up.upsample(tiny_model, frames, base, "next level", 32, 32, 8, False, 0, 0, 1, 1, 0,
                            0.0)["result"]
    assert mid.level == 1 and mid.estimates[0][0].shape[-1] == 32
    with pytest.raises(ValueError, match="not full resolution"):
        nodes["HiFIMerge"]().merge(frames, mid, True, "off", 0.15, "keep")
    top, _, _ = up.upsample(tiny_model, frames, mid, "next level", 32, 32, 8, False, 0, 0, 1, 1, 0,
                            0.0)["result"]
    assert top.is_full_resolution and top.estimates[0][1].shape == (1, 3, 64, 64)
    with pytest.raises(ValueError, match="already at full resolution"):
        up.upsample(tiny_model, frames, top, "next level", 32, 32, 8, False, 0, 0, 1, 1, 0, 0.0)
    with pytest.raises(ValueError, match="not the clip"):
        up.upsample(tiny_model, make_frames(2, 64, 64, step=9), base, "next level", 32, 32, 8,
                    False, 0, 0, 1, 1, 0, 0.0)


def test_base_sample_timelines(nodes, comfy, tiny_model):
    frames = make_frames(4, 32, 32)
    sample = nodes["HiFIBaseSample"]().sample
    common = dict(levels=1, steps=1, samples=1, seed=0, eta=0.0, patch_width=32, patch_height=32,
                  overlap=8)
    inter, _ = sample(tiny_model, frames, multiplier=2, target_fps=0.0, taus="0.25, 0.75", **common)
    assert inter.taus == ((0.25, 0.75),) * 3 and inter.multiplier is None
    inter, _ = sample(tiny_model, frames, multiplier=2, target_fps=20.0, fps=10.0, **common)
    # a frame rate keeps the duration: 4 frames at 10 fps last 0.4 s = 8 frames at 20, the last held
    assert inter.schedule == ((0, 0.0), (0, 0.5), (1, 0.0), (1, 0.5), (2, 0.0), (2, 0.5), (3, 0.0), (3, 0.0))
    with pytest.raises(ValueError, match="input 'fps'"):
        sample(tiny_model, frames, multiplier=2, target_fps=60.0, **common)
    with pytest.raises(ValueError, match="input 'taus'"):
        sample(tiny_model, frames, multiplier=2, target_fps=0.0, taus="0.5, 1.5", **common)


def test_merge_scene_cuts_and_duplicates(nodes, comfy, tiny_model):
    frames = make_frames(6, 32, 32, cut_at=3)
    frames[1] = frames[0]  # a duplicate
    base, _ = nodes["HiFIBaseSample"]().sample(
        tiny_model, frames, levels=1, multiplier=2, target_fps=0.0, steps=1, samples=1, seed=0,
        eta=0.0, patch_width=32, patch_height=32, overlap=8, fps=10.0)
    merge = nodes["HiFIMerge"]().merge
    repeated, _ = merge(frames, base, True, "repeat", 0.15, "keep")
    assert repeated.shape[0] == 11
    assert torch.equal(repeated[5], frames[3])  # pair (2, 3) straddles the cut; tau 0.5 -> 3
    blended, _ = merge(frames, base, True, "blend", 0.15, "keep")
    assert torch.allclose(blended[5], 0.5 * (frames[2] + frames[3]), atol=1e-6)
    interpolated, _ = merge(frames, base, True, "off", 0.15, "keep")
    assert not torch.allclose(interpolated[5], blended[5])
    deduped, fps = merge(frames, base, True, "repeat", 0.15, "drop")
    assert deduped.shape[0] == 9 and fps == 20.0  # frame 1 and the in-between before it dropped
    only_new, fps = merge(frames, base, False, "repeat", 0.15, "keep")
    assert only_new.shape[0] == 5 and fps == 10.0


# --- ComfyUI behaviour: progress, cancel, memory ------------------------------------------------

def test_progress_counts_every_patch_step_and_level(nodes, comfy, tiny_model):
    frames = make_frames(3, 48, 64)
    nodes["HiFIInterpolate"]().interpolate(tiny_model, frames, 2, 0.0, scene_cuts="off",
                                           scene_threshold=0.15, **dict(TINY, steps=2))
    updates = comfy.utils.PROGRESS_UPDATES
    # levels 24x32 and 48x64, one patch each (4 nominal 32x32 patches' area, <= 2x their
    # side) x 2 steps x 2 pairs
    total = (1 + 1) * 2 * 2
    assert updates[-1][1:] == (total, total)
    values = [value for _, value, _ in updates]
    assert values == sorted(values) and len(updates) >= 2 * 2 * 2


def test_cancel_interrupts_mid_run(nodes, comfy, tiny_model):
    comfy.model_management.INTERRUPT_AFTER_CHECKS[0] = 5
    with pytest.raises(comfy.model_management.InterruptProcessingException):
        nodes["HiFIInterpolate"]().interpolate(tiny_model, make_frames(3, 48, 64), 2, 0.0,
                                               scene_cuts="off", scene_threshold=0.15, **TINY)
    assert comfy.model_management.INTERRUPT_CHECKS[0] == 5
    done = comfy.utils.PROGRESS_UPDATES[-1][1] if comfy.utils.PROGRESS_UPDATES else 0
    assert done < (1 + 1) * 2  # stopped before the job was finished


def test_free_memory_drives_the_patch_batch(pack, nodes, comfy, tiny_model):
    from hifi_core.memory import estimate_patch_bytes

    engine = pack.nodes.engine
    per_patch = estimate_patch_bytes(tiny_model.model.config.unet, 32, 32)
    comfy.model_management.FREE_MEMORY[0] = int(per_patch * 3 / 0.8) + 100
    settings = engine.make_settings(tiny_model, **TINY)
    assert settings.memory_budget == int(comfy.model_management.FREE_MEMORY[0] * 0.8)
    from hifi_core.interpolate import level_context, max_patch_pixels
    assert max_patch_pixels(tiny_model.model.config, settings, torch.device("cpu")) == 3 * 32 * 32
    plan = engine.plan(tiny_model, (96, 96), settings)
    ctx = level_context(tiny_model.model, plan, settings, torch.device("cpu"), None, None)
    largest = max(g.patch_height * g.patch_width for g in plan.grids)
    assert largest > 32 * 32 and ctx.batcher.batch_size * largest <= 3 * 32 * 32  # the memory of 3 patches
    explicit = engine.make_settings(tiny_model, **dict(TINY, patch_batch=7, memory_budget_mb=0))
    assert explicit.patch_batch == 7


@pytest.mark.parametrize("free_patches", [3, 40])  # 40: above the CPU cap of 4 patches per call
def test_the_readout_shows_the_patch_batch_the_run_uses(pack, nodes, comfy, tiny_model, free_patches):
    from hifi_core.interpolate import level_context
    from hifi_core.memory import estimate_patch_bytes

    import importlib

    engine = pack.nodes.engine
    readout = importlib.import_module(f"{pack.__name__}.nodes.readout")
    per_patch = estimate_patch_bytes(tiny_model.model.config.unet, 32, 32)
    comfy.model_management.FREE_MEMORY[0] = int(per_patch * free_patches / 0.8) + 100
    settings = engine.make_settings(tiny_model, **TINY)
    plan = engine.plan(tiny_model, (96, 96), settings)
    run_batch = level_context(tiny_model.model, plan, settings, torch.device("cpu"), None, None).batcher.batch_size
    shown = readout.cascade_readout(checkpoint="preset:tiny", width=96, height=96, levels=2, patch_width=32,
                                    patch_height=32, overlap=8, device=torch.device("cpu"),
                                    free_bytes=pack.nodes.comfy_bridge.free_memory_bytes(torch.device("cpu")))
    largest = max(level["patch"][0] * level["patch"][1] for level in shown["levels"])
    assert shown["patch_batch"] == run_batch and run_batch * largest <= min(free_patches, 4) * 32 * 32


def test_a_run_measures_its_pace_and_the_readout_gives_the_eta_before_the_next(pack, nodes, comfy, tiny_model):
    """The time readout: nothing before any run; after one, seconds per in-between scaled to
    another frame size, the in-betweens a clip needs (the shared timeline) and the ETA; kept
    on disk in ComfyUI's user folder, so it survives a restart."""
    import importlib

    readout = importlib.import_module(f"{pack.__name__}.nodes.readout")
    pace = importlib.import_module(f"{pack.__name__}.nodes.pace")
    pace._memory.clear()
    settings = dict(checkpoint="preset:tiny", device=torch.device("cpu"), levels=2, steps=1, samples=1)
    before = readout.eta_readout(width=64, height=48, frame_count=5, multiplier=2, **settings)
    assert before["seconds_per_inbetween"] is None and before["inbetweens"] == 4 and before["eta_seconds"] is None
    nodes["HiFIInterpolate"]().interpolate(tiny_model, make_frames(5, 48, 64), 2, 0.0, scene_cuts="off",
                                           scene_threshold=0.15, fps=12.0, **TINY)
    stored = json.loads((Path(comfy.folder_paths.get_user_directory()) / "hifi_pace.json").read_text())
    assert len(stored) == 1 and next(iter(stored.values()))["inbetweens"] == 4
    pace._memory.clear()  # as after a restart: read back from the file
    same = readout.eta_readout(width=64, height=48, frame_count=5, multiplier=2, **settings)
    assert same["seconds_per_inbetween"] > 0 and same["eta_seconds"] == pytest.approx(4 * same["seconds_per_inbetween"])
    bigger = readout.eta_readout(width=128, height=96, frame_count=31, target_fps=60.0, fps=30.0, **settings)
    assert bigger["seconds_per_inbetween"] == pytest.approx(4 * same["seconds_per_inbetween"])  # 4x the pixels
    assert bigger["inbetweens"] == 30  # 31 frames at 30 fps -> 62 at 60 (duration kept): 30 new, the last held
    other = readout.eta_readout(width=64, height=48, frame_count=5, **dict(settings, steps=2))
    assert other["seconds_per_inbetween"] is None  # other settings are not guessed


def test_out_of_memory_halves_the_patch_batch_and_the_result_is_unchanged(nodes, comfy, tiny_model,
                                                                          monkeypatch):
    frames = make_frames(2, 96, 128)  # 6 patches of the full level
    run = nodes["HiFIPatchCascadeUpsample"]().upsample
    base, _ = nodes["HiFIBaseSample"]().sample(
        tiny_model, frames, levels=2, multiplier=2, target_fps=0.0, steps=1, samples=1, seed=0,
        eta=0.0, patch_width=32, patch_height=32, overlap=8)
    args = (tiny_model, frames, base, "to full resolution", 32, 32, 8, False)
    reference = run(*args, 2, 0, 1, 1, 0, 0.0)["result"][0].estimates[0][0]
    original = tiny_model.model.predict_v
    batches = []

    def limited(z, *rest, **kwargs):  # a GPU that fits one patch at a time
        batches.append(z.shape[0])
        if z.shape[0] > 1:
            raise comfy.model_management.OOM_EXCEPTION("CUDA out of memory. Tried to allocate 2 GiB")
        return original(z, *rest, **kwargs)

    monkeypatch.setattr(tiny_model.model, "predict_v", limited)
    result = run(*args, 8, 0, 1, 1, 0, 0.0)["result"][0].estimates[0][0]
    # batch 8 nominal patches = 2 of the level's 6 larger ones; halved to 1 after the refusal
    assert batches == [2, 1, 1, 1, 1, 1, 1]
    assert torch.allclose(result, reference, atol=1e-6)
