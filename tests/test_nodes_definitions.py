"""The node pack's definitions and model loading, without ComfyUI: node ids, input specs, widget order,
the model loader and the registry metadata."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from node_pack import ROOT


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


# --- packaging -------------------------------------------------------------------------------

def test_pyproject_is_registry_ready_and_mirrors_requirements():
    import tomllib

    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project, comfy = data["project"], data["tool"]["comfy"]
    assert project["name"] == "comfyui-hifi" and project["version"] and project["description"]
    assert project["license"] and {"PublisherId", "DisplayName", "Icon", "includes"} <= set(comfy)
    runtime = [line.split("#")[0].strip() for line in (ROOT / "requirements.txt").read_text().splitlines()]
    assert sorted(project["dependencies"]) == sorted(r for r in runtime if r)
