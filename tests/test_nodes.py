"""The ComfyUI node pack, without ComfyUI: loaded like ComfyUI loads it, run on the tiny preset.

ComfyUI's modules are replaced by tests/comfy_stubs (installed per test into sys.modules).
"""

from __future__ import annotations

import json
from pathlib import Path

import av
import pytest
import torch

from comfy_stubs import install
from comfy_stubs.clips import make_frames, write_clip
from comfy_stubs.graph import load_pack

ROOT = Path(__file__).resolve().parent.parent
TINY = dict(levels=2, patch_width=32, patch_height=32, overlap=8, steps=1, samples=1, seed=0)


@pytest.fixture(scope="module")
def pack():
    return load_pack(ROOT)


@pytest.fixture
def comfy(monkeypatch, tmp_path):
    stubs = install(monkeypatch, tmp_path / "ComfyUI")
    stubs.utils.PROGRESS_UPDATES.clear()
    stubs.model_management.INTERRUPT_AFTER_CHECKS[0] = None
    stubs.model_management.INTERRUPT_CHECKS[0] = 0
    return stubs


@pytest.fixture
def nodes(pack):
    return pack.NODE_CLASS_MAPPINGS


@pytest.fixture
def tiny_model(nodes, comfy):
    torch.manual_seed(0)
    (handle,) = nodes["HiFILoadModel"]().load("preset:tiny", "cpu", "fp32")
    return handle


def _all_inputs(cls):
    spec = cls.INPUT_TYPES()
    for section in ("required", "optional"):
        yield from spec.get(section, {}).items()


# --- definitions -----------------------------------------------------------------------

def test_mappings_are_complete_and_ids_stable(pack):
    mappings, names = pack.NODE_CLASS_MAPPINGS, pack.NODE_DISPLAY_NAME_MAPPINGS
    expected = {"HiFILoadModel", "HiFIBaseSample", "HiFIPatchCascadeUpsample", "HiFIMerge",
                "HiFIInterpolate", "HiFILoadVideo", "HiFIVideoCombine", "HiFIRetimeVideo"}
    assert expected <= set(mappings)
    assert set(names) == set(mappings)
    assert pack.WEB_DIRECTORY == "./web"
    for node_id, cls in mappings.items():
        assert node_id.startswith("HiFI") and names[node_id].startswith("HiFI ")
        assert cls.CATEGORY == "HiFI"
        assert callable(getattr(cls, cls.FUNCTION))
        assert len(cls.RETURN_TYPES) == len(cls.RETURN_NAMES) == len(cls.OUTPUT_TOOLTIPS)


def test_every_input_has_a_tooltip_and_a_valid_spec(nodes, comfy):
    for node_id, cls in nodes.items():
        for name, spec in _all_inputs(cls):
            assert isinstance(spec, tuple) and 1 <= len(spec) <= 2, (node_id, name)
            options = spec[1] if len(spec) == 2 else {}
            assert options.get("tooltip"), f"{node_id}.{name} has no tooltip"
            kind = spec[0]
            if kind in ("INT", "FLOAT") and not options.get("forceInput"):
                assert options["min"] <= options["default"] <= options["max"], (node_id, name)
            if isinstance(kind, list):
                assert options.get("default", kind[0]) in kind, (node_id, name)


def test_widget_order_is_frozen(nodes, comfy):
    """Saved workflows store widget values by position: this list may only grow at the end."""
    frozen = {
        "HiFILoadModel": ["checkpoint", "device", "precision"],
        "HiFIBaseSample": ["hifi_model", "frames", "levels", "multiplier", "target_fps", "steps",
                           "samples", "seed", "eta", "patch_width", "patch_height", "overlap",
                           "fps", "taus"],
        "HiFIPatchCascadeUpsample": ["hifi_model", "frames", "intermediate", "mode", "patch_width",
                                     "patch_height", "overlap", "feather", "patch_batch",
                                     "memory_budget_mb", "steps", "samples", "seed", "eta"],
        "HiFIMerge": ["frames", "intermediate", "keep_originals", "scene_cuts", "scene_threshold",
                      "duplicates"],
        "HiFIInterpolate": ["hifi_model", "frames", "multiplier", "target_fps", "levels",
                            "patch_width", "patch_height", "overlap", "steps", "samples", "seed",
                            "scene_cuts", "scene_threshold", "fps"],
        "HiFILoadVideo": ["video", "path", "frame_cap", "skip_first", "every_nth"],
        "HiFIVideoCombine": ["frames", "fps", "filename_prefix", "format", "crf", "bit_depth", "audio"],
        "HiFIRetimeVideo": ["hifi_model", "video", "path", "multiplier", "target_fps", "slow_motion",
                            "scene_detect", "scene_threshold", "dedup", "format", "crf",
                            "filename_prefix", "levels", "patch_width", "patch_height", "overlap",
                            "steps", "samples", "seed", "resume"],
    }
    for node_id, names in frozen.items():
        actual = [name for name, _ in _all_inputs(nodes[node_id])]
        assert actual[:len(names)] == names, node_id


# --- model loading -----------------------------------------------------------------------

def test_loader_lists_model_folder_and_presets(pack, nodes, comfy):
    from hifi_core import build_model, save_checkpoint

    folder = Path(comfy.folder_paths.models_dir) / "hifi"
    folder.mkdir(parents=True)
    save_checkpoint(build_model("tiny"), folder / "mine.safetensors")
    (folder / "notes.txt").write_text("not a model")
    choices = nodes["HiFILoadModel"].INPUT_TYPES()["required"]["checkpoint"][0]
    assert "mine.safetensors" in choices and "notes.txt" not in choices
    assert "preset:tiny" in choices and choices[-1].startswith("preset:")
    assert "hifi" in comfy.folder_paths.folder_names_and_paths
    (handle,) = nodes["HiFILoadModel"]().load("mine.safetensors", "auto", "auto")
    assert handle.device == torch.device("cpu") and handle.dtype == torch.float32
    assert handle.patcher is not None and handle.patcher.model is handle.model
    assert handle.model.config.preset == "tiny"


def test_motion_weights_in_the_model_folder_are_found_and_not_listed_as_models(pack, nodes, comfy, monkeypatch):
    import sys

    from hifi_core.ifnet import IFNet
    from safetensors.torch import save_file

    motion_base = sys.modules[pack.__name__ + ".hifi_core.motion_base"]  # the pack's own copy
    monkeypatch.setattr(motion_base, "_extra_dirs", [])
    motion = Path(comfy.folder_paths.models_dir) / "hifi" / "motion"
    motion.mkdir(parents=True)
    save_file(IFNet().state_dict(), str(motion / motion_base.RIFE_FILE_NAME),
              metadata={"format": motion_base.MOTION_FORMAT, "arch": motion_base.RIFE_ARCH})
    choices = nodes["HiFILoadModel"].INPUT_TYPES()["required"]["checkpoint"][0]
    assert not any("rife" in c for c in choices), choices
    assert motion_base.find_rife_weights() == motion / motion_base.RIFE_FILE_NAME


def test_loader_errors_name_the_input(nodes, comfy):
    with pytest.raises(FileNotFoundError, match="input 'checkpoint'.*models/hifi"):
        nodes["HiFILoadModel"]().load("missing.safetensors", "cpu", "fp32")
    with pytest.raises(ValueError, match="unknown preset"):
        nodes["HiFILoadModel"]().load("preset:huge", "cpu", "fp32")


def test_loader_refuses_a_pickle_file(nodes, comfy):
    folder = Path(comfy.folder_paths.models_dir) / "hifi"
    folder.mkdir(parents=True)
    (folder / "evil.safetensors").write_bytes(b"\x80\x04K\x01.")  # a pickle, misnamed
    with pytest.raises(ValueError, match="evil.safetensors"):
        nodes["HiFILoadModel"]().load("evil.safetensors", "cpu", "fp32")


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
    # levels 24x32 (1 patch) and 48x64 (2x3 patches of 32 with overlap 8) x 2 steps x 2 pairs
    total = (1 + 6) * 2 * 2
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
    assert done < (1 + 6) * 2  # stopped before the job was finished


def test_free_memory_drives_the_patch_batch(pack, nodes, comfy, tiny_model):
    from hifi_core.memory import estimate_patch_bytes

    engine = pack.nodes.engine
    per_patch = estimate_patch_bytes(tiny_model.model.config.unet, 32, 32)
    comfy.model_management.FREE_MEMORY[0] = int(per_patch * 3 / 0.8) + 100
    settings = engine.make_settings(tiny_model, **TINY)
    assert settings.memory_budget == int(comfy.model_management.FREE_MEMORY[0] * 0.8)
    from hifi_core.interpolate import level_context
    plan = engine.plan(tiny_model, (96, 96), settings)
    ctx = level_context(tiny_model.model, plan, settings, torch.device("cpu"), None, None)
    assert ctx.batcher.batch_size == 3
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
    assert shown["patch_batch"] == run_batch == min(free_patches, 4)


# --- video in and out --------------------------------------------------------------------------

def test_load_video_options_and_audio(nodes, comfy):
    frames = make_frames(10, 48, 64)
    write_clip(Path(comfy.folder_paths.get_input_directory()) / "clip.mp4", frames, fps=12)
    loader = nodes["HiFILoadVideo"]
    assert "clip.mp4" in loader.INPUT_TYPES()["required"]["video"][0]
    assert loader.VALIDATE_INPUTS("clip.mp4", "") is True
    assert "not in ComfyUI's input folder" in loader.VALIDATE_INPUTS("nope.mp4", "")
    images, fps, count, audio = loader().load("clip.mp4", "", 3, 2, 2)
    assert images.shape == (3, 48, 64, 3) and count == 3 and fps == 6.0
    assert images.dtype == torch.float32 and 0 <= float(images.min()) <= float(images.max()) <= 1
    # frame 2 of the source is the first loaded one (lossy h264: compare loosely)
    assert float((images[0] - frames[2]).abs().mean()) < 0.03
    assert float((images[1] - frames[4]).abs().mean()) < 0.03
    assert audio["sample_rate"] == 16000 and audio["waveform"].shape[:2] == (1, 1)
    # 3 frames at 2-frame steps = 0.5 s of the 12 fps source
    assert abs(audio["waveform"].shape[-1] - 8000) <= 1100


def test_load_video_refuses_what_does_not_fit(nodes, comfy, monkeypatch, pack):
    write_clip(Path(comfy.folder_paths.get_input_directory()) / "clip.mp4", make_frames(10, 48, 64),
               fps=12, audio_hz=None)
    monkeypatch.setattr(pack.hifi_core.runtime, "available_memory_bytes", lambda device=None: 48 * 64 * 3 * 4 * 5)
    with pytest.raises(MemoryError, match="frame cap"):
        nodes["HiFILoadVideo"]().load("clip.mp4", "", 0, 0, 1)
    images, _, count, audio = nodes["HiFILoadVideo"]().load("clip.mp4", "", 2, 0, 1)
    assert count == 2 and audio is None


def test_load_video_path_input_and_errors(nodes, comfy, tmp_path):
    clip = write_clip(tmp_path / "elsewhere" / "a.mp4", make_frames(4, 32, 32), fps=8, audio_hz=None)
    _, fps, count, _ = nodes["HiFILoadVideo"]().load("", str(clip), 0, 0, 1)
    assert (fps, count) == (8.0, 4)
    with pytest.raises(ValueError, match="input 'path'"):
        nodes["HiFILoadVideo"]().load("", str(tmp_path / "missing.mp4"), 0, 0, 1)
    with pytest.raises(ValueError, match="skip_first"):
        nodes["HiFILoadVideo"]().load("", str(clip), 0, 50, 1)


@pytest.mark.parametrize("fmt, suffix", [("h264-mp4", ".mp4"), ("prores-mov", ".mov"),
                                         ("png-sequence", ""), ("h265-mp4", ".mp4"), ("ffv1-mkv", ".mkv")])
def test_video_combine_writes_previews_and_embeds_the_workflow(nodes, comfy, fmt, suffix):
    frames = make_frames(4, 48, 64)
    audio = {"waveform": torch.sin(torch.linspace(0, 600, 16000))[None, None] * 0.2, "sample_rate": 16000}
    workflow = {"nodes": [{"id": 1, "type": "HiFIVideoCombine"}]}
    result = nodes["HiFIVideoCombine"]().combine(frames, 8.0, "HiFI/test", fmt, 18, "8", audio=audio,
                                                 prompt={"1": {"class_type": "HiFIVideoCombine"}},
                                                 extra_pnginfo={"workflow": workflow})
    (path,) = result["result"]
    entry = result["ui"]["hifi_video"][0]
    assert Path(path).name.endswith(suffix) and Path(path).exists()
    assert entry["frame_count"] == 4 and entry["frame_rate"] == 8.0 and entry["file_subfolder"] == "HiFI"
    preview_root = comfy.folder_paths.get_output_directory() if entry["type"] == "output" \
        else comfy.folder_paths.get_temp_directory()
    preview = Path(preview_root) / entry["subfolder"] / entry["filename"]
    with av.open(str(preview)) as container:
        assert container.streams.video[0].codec_context.name == "h264"
    prompt = {"1": {"class_type": "HiFIVideoCombine"}}
    if fmt == "png-sequence":
        from hifi_core.image_io import read_png_text

        pngs = sorted(Path(path).glob("frame_*.png"))
        assert len(pngs) == 4
        assert json.loads((Path(path) / "workflow.json").read_text())["workflow"] == workflow
        for png in pngs:  # where the frontend reads a PNG's graph, as core SaveImage writes it
            text = read_png_text(png)
            assert json.loads(text["workflow"]) == workflow and json.loads(text["prompt"]) == prompt
        return
    with av.open(path) as container:
        stream = container.streams.video[0]
        assert sum(1 for _ in container.decode(stream)) == 4
        # the keys the frontend reads from a video, as core SaveVideo writes them (Matroska
        # stores tag names upper-cased, for core's files too)
        tags = {key.lower(): value for key, value in container.metadata.items()}
        assert json.loads(tags["workflow"]) == workflow and json.loads(tags["prompt"]) == prompt
        assert json.loads(tags["comment"])["workflow"] == workflow
    with av.open(path) as container:
        assert container.streams.audio, "audio was not muxed"


def test_video_combine_errors(nodes, comfy):
    with pytest.raises(ValueError, match="input 'fps'"):
        nodes["HiFIVideoCombine"]().combine(make_frames(2, 32, 32), 0.0, "x", "h264-mp4", 18, "8")
    with pytest.raises(ValueError, match="input 'format'"):
        nodes["HiFIVideoCombine"]().combine(make_frames(2, 32, 32), 8.0, "x", "gif", 18, "8")


def test_retime_video_streams_file_to_file(nodes, comfy, tiny_model):
    write_clip(Path(comfy.folder_paths.get_input_directory()) / "clip.mp4", make_frames(6, 48, 64),
               fps=12)
    node = nodes["HiFIRetimeVideo"]
    assert node.VALIDATE_INPUTS("clip.mp4", "") is True
    args = dict(hifi_model=tiny_model, video="clip.mp4", path="", multiplier=2, target_fps=0.0,
                slow_motion=False, scene_detect=True, scene_threshold=0.15, dedup=False,
                format="h264-mp4", crf=18, filename_prefix="HiFI/retime", levels=2,
                patch_width=32, patch_height=32, overlap=8, steps=1, samples=1, seed=0,
                resume=False)
    workflow = {"nodes": [{"id": 1, "type": "HiFIRetimeVideo"}]}
    result = node().retime(**args, prompt={"1": {"class_type": "HiFIRetimeVideo"}},
                           extra_pnginfo={"workflow": workflow})
    path, fps, count, video_out = result["result"]
    assert video_out.get_stream_source() == path  # a core VIDEO for Save Video
    assert fps == 24.0 and count == 12  # the duration is kept: 6 frames at 12 fps -> 12 at 24
    with av.open(path) as container:
        assert sum(1 for _ in container.decode(container.streams.video[0])) == 12
        assert container.streams.audio
        assert json.loads(container.metadata["comment"])["workflow"] == workflow
        assert json.loads(container.metadata["workflow"]) == workflow  # joined segments keep it
    assert result["ui"]["hifi_video"][0]["filename"] == Path(path).name
    assert comfy.utils.PROGRESS_UPDATES[-1][1:] == (12, 12)
    comfy.model_management.INTERRUPT_AFTER_CHECKS[0] = 4
    with pytest.raises(comfy.model_management.InterruptProcessingException):
        node().retime(**dict(args, target_fps=30.0))
    with pytest.raises(ValueError, match="slow_motion"):
        node().retime(**dict(args, target_fps=30.0, slow_motion=True))


def test_the_image_path_and_the_file_path_give_the_same_number_of_frames_at_a_target_fps(nodes, comfy, tiny_model):
    """10 frames at 29.97 fps to 60 fps: 21 frames (the duration kept) through HiFI Interpolate
    and through HiFI Retime Video, as one timeline (hifi_core.timeline) says."""
    from fractions import Fraction

    frames = make_frames(10, 48, 64)
    write_clip(Path(comfy.folder_paths.get_input_directory()) / "ntsc.mp4", frames, fps=Fraction(30000, 1001))
    image_out, image_fps, _, image_video = nodes["HiFIInterpolate"]().interpolate(
        tiny_model, frames, 2, 60.0, scene_cuts="off", scene_threshold=0.15, fps=30000 / 1001, **TINY)
    result = nodes["HiFIRetimeVideo"]().retime(
        hifi_model=tiny_model, video="ntsc.mp4", path="", multiplier=2, target_fps=60.0, slow_motion=False,
        scene_detect=False, scene_threshold=0.15, dedup=False, format="h264-mp4", crf=18,
        filename_prefix="HiFI/ntsc", levels=2, patch_width=32, patch_height=32, overlap=8, steps=1,
        samples=1, seed=0, resume=False)
    _, file_fps, file_count, _ = result["result"]
    assert image_out.shape[0] == file_count == 21 and image_fps == file_fps == 60.0
    components = image_video.get_components()  # the IMAGE path hands a core VIDEO on too
    assert torch.equal(components.images, image_out) and components.frame_rate == 60
    assert torch.equal(image_out[-1], frames[-1])  # the last frame is held to the end


def test_retime_video_takes_a_core_video_from_a_file_or_from_memory(nodes, comfy, tiny_model):
    """Core Load Video -> HiFI Retime Video -> core Save Video, without unpacking frames."""
    import io

    clip = write_clip(Path(comfy.folder_paths.get_input_directory()) / "core.mp4", make_frames(5, 48, 64), fps=12)
    node = nodes["HiFIRetimeVideo"]
    assert node.VALIDATE_INPUTS("", "", input_types={"source_video": "VIDEO"}) is True
    assert node.VALIDATE_INPUTS("", "") is not True  # no file and no VIDEO: named error
    args = dict(hifi_model=tiny_model, video="", path="", multiplier=2, target_fps=0.0, slow_motion=False,
                scene_detect=False, scene_threshold=0.15, dedup=False, format="h264-mp4", crf=18,
                filename_prefix="HiFI/core", levels=2, patch_width=32, patch_height=32, overlap=8,
                steps=1, samples=1, seed=0, resume=False)
    api = comfy.comfy_api
    for source in (api.InputImpl.VideoFromFile(str(clip)), api.InputImpl.VideoFromFile(io.BytesIO(clip.read_bytes()))):
        path, fps, count, video = node().retime(**args, source_video=source)["result"]
        assert fps == 24.0 and count == 10 and Path(video.get_stream_source()) == Path(path)
        with av.open(path) as container:
            assert sum(1 for _ in container.decode(container.streams.video[0])) == 10
    with pytest.raises(ValueError, match="VIDEO input"):
        node().retime(**args, source_video=object())


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


def test_pyproject_is_registry_ready_and_mirrors_requirements():
    import tomllib

    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project, comfy = data["project"], data["tool"]["comfy"]
    assert project["name"] == "comfyui-hifi" and project["version"] and project["description"]
    assert project["license"] and {"PublisherId", "DisplayName", "Icon", "includes"} <= set(comfy)
    runtime = [line.split("#")[0].strip() for line in (ROOT / "requirements.txt").read_text().splitlines()]
    assert sorted(project["dependencies"]) == sorted(r for r in runtime if r)


def test_out_of_memory_halves_the_patch_batch_and_the_result_is_unchanged(nodes, comfy, tiny_model,
                                                                          monkeypatch):
    frames = make_frames(2, 48, 64)
    run = nodes["HiFIPatchCascadeUpsample"]().upsample
    base, _ = nodes["HiFIBaseSample"]().sample(
        tiny_model, frames, levels=2, multiplier=2, target_fps=0.0, steps=1, samples=1, seed=0,
        eta=0.0, patch_width=32, patch_height=32, overlap=8)
    args = (tiny_model, frames, base, "to full resolution", 32, 32, 8, False)
    reference = run(*args, 2, 0, 1, 1, 0, 0.0)["result"][0].estimates[0][0]
    original = tiny_model.model.predict_v
    batches = []

    def limited(z, *rest, **kwargs):  # a GPU that fits two patches at a time
        batches.append(z.shape[0])
        if z.shape[0] > 2:
            raise comfy.model_management.OOM_EXCEPTION("CUDA out of memory. Tried to allocate 2 GiB")
        return original(z, *rest, **kwargs)

    monkeypatch.setattr(tiny_model.model, "predict_v", limited)
    result = run(*args, 8, 0, 1, 1, 0, 0.0)["result"][0].estimates[0][0]
    assert batches == [6, 4, 2, 2, 2]  # all 6 patches of batch 8 tried, halved to 4, then to 2
    assert torch.allclose(result, reference, atol=1e-6)


# --- one noise per pair, whatever the path ---------------------------------------------------

def test_same_seed_same_frames_through_the_image_path_the_file_path_and_a_resumed_file(
        pack, nodes, comfy, tiny_model, tmp_path):
    """Each pair's noise comes from (seed, pair index, tau, level), so HiFI Interpolate on an
    IMAGE batch, `retime_video` on the file and a retime cancelled and resumed agree."""
    import numpy as np

    core = pack.hifi_core
    retime = pack.hifi_core.retime
    frames = make_frames(5, 48, 64)
    clip = tmp_path / "clip.mkv"
    with av.open(str(clip), "w") as out:  # lossless, so both paths read the same pixels
        stream = out.add_stream("ffv1", rate=12)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "bgr0"
        for image in frames:
            rgb = (image * 255).round().to(torch.uint8).numpy()
            out.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        out.mux(stream.encode(None))
    decoded = torch.stack([torch.from_numpy(f.to_ndarray(format="rgb24")) for f in av.open(str(clip)).decode(video=0)])
    images = decoded.float() / 255
    widgets = dict(levels=2, patch_width=32, patch_height=32, overlap=8, steps=2, samples=1)

    def image_path(seed):
        out, _, _, _ = nodes["HiFIInterpolate"]().interpolate(
            tiny_model, images, 2, 0.0, scene_cuts="off", scene_threshold=0.15, fps=12.0, seed=seed, **widgets)
        return (out * 255).round().to(torch.uint8).numpy()

    settings = core.CascadeSettings(levels=2, patch_size=(32, 32), overlap=8, steps=2, seed=5)
    lossless = dict(codec="ffv1", pix_fmt="bgr0", scene_detect=False)
    whole = tmp_path / "whole.mkv"
    retime.retime_video(clip, whole, model=tiny_model.model, settings=settings, multiplier=2, **lossless)
    file_frames = np.stack([f.to_ndarray(format="rgb24") for f in av.open(str(whole)).decode(video=0)])

    nodes_frames = image_path(5)
    assert nodes_frames.shape == (9, 48, 64, 3) and file_frames.shape[0] == 10  # the file keeps the duration
    assert np.abs(nodes_frames.astype(int) - file_frames[:9].astype(int)).max() <= 1
    other_seed = image_path(6)
    assert np.abs(other_seed.astype(int) - nodes_frames.astype(int)).max() > 8  # the noise matters

    calls = []

    def stop_after_two_pairs():
        return len(calls) >= 2

    resumed = tmp_path / "resumed.mkv"

    class Counting(retime.ModelInterpolator):
        def __call__(self, frame0, frame2, taus, pair=0):
            calls.append(pair)
            return super().__call__(frame0, frame2, taus, pair=pair)

    with pytest.raises(core.Cancelled):
        retime.retime_video(clip, resumed, interpolator=Counting(tiny_model.model, settings), multiplier=2,
                            segment_seconds=0.1, cancel=stop_after_two_pairs, **lossless)
    retime.retime_video(clip, resumed, interpolator=Counting(tiny_model.model, settings), multiplier=2,
                        segment_seconds=0.1, resume=True, **lossless)
    assert calls[:2] == [0, 1] and 0 not in calls[2:]  # the resumed run started later in the clip
    resumed_frames = np.stack([f.to_ndarray(format="rgb24") for f in av.open(str(resumed)).decode(video=0)])
    assert np.array_equal(resumed_frames, file_frames)
