"""HiFI Load Model: a checkpoint (or a built-in preset) -> HIFI_MODEL.

Checkpoints are listed from ComfyUI's `models/hifi/` folder (registered with folder_paths as
``hifi``, extra paths from extra_model_paths.yaml included) and from the pack's own
`checkpoints/` folder. ``preset:NAME`` builds an untrained model of a preset (for tests and for
checking a graph quickly). Nothing is ever downloaded; only safetensors files are read.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..hifi_core import PRESETS, build_model, load_checkpoint
from ..hifi_core.checkpoint import DEFAULT_CHECKPOINT_NAME
from . import comfy_bridge
from .handles import MODEL_TYPE, PRECISION_CHOICES, HiFIModelHandle

CATEGORY = "HiFI"
PRESET_PREFIX = "preset:"
DEVICE_CHOICES = ("auto", "cpu", "cuda")
LOG = logging.getLogger(__name__)


def checkpoint_choices():
    """The combo's entries: model-folder files, bundled files, then the presets."""
    names = list(comfy_bridge.model_folder_files())
    for bundled in comfy_bridge.bundled_checkpoints():
        if bundled not in names:
            names.append(bundled)
    if DEFAULT_CHECKPOINT_NAME in names:  # the trained default first: it is the combo's default
        names.remove(DEFAULT_CHECKPOINT_NAME)
        names.insert(0, DEFAULT_CHECKPOINT_NAME)
    return names + [PRESET_PREFIX + name for name in PRESETS]


def resolve_checkpoint(name: str) -> Path:
    """The file a combo entry names; model folder first, then the pack's checkpoints/."""
    found = comfy_bridge.model_folder_path(name)
    if found is not None:
        return Path(found)
    bundled = comfy_bridge.BUNDLED_CHECKPOINT_DIR / name
    if bundled.is_file():
        return bundled
    raise FileNotFoundError(
        f"HiFI Load Model: input 'checkpoint' {name!r} was not found in ComfyUI's models/hifi "
        f"folder nor in the pack's checkpoints/ folder. Put the .safetensors file in "
        f"ComfyUI/models/hifi/ and refresh, or pick one of: {', '.join(checkpoint_choices())}")


class HiFILoadModel:
    """Load a HiFI checkpoint for the other HiFI nodes."""

    CATEGORY = CATEGORY
    RETURN_TYPES = (MODEL_TYPE,)
    RETURN_NAMES = ("hifi_model",)
    OUTPUT_TOOLTIPS = ("The HiFI model, ready for Interpolate, Base Sample and Upsample.",)
    FUNCTION = "load"
    DESCRIPTION = ("Loads a HiFI frame-interpolation model (safetensors, config in its metadata) "
                   "from models/hifi or the pack's checkpoints folder. Never downloads anything.")

    @classmethod
    def INPUT_TYPES(cls):
        choices = checkpoint_choices()
        return {"required": {
            "checkpoint": (choices, {"default": choices[0], "tooltip": (
                "Checkpoint from ComfyUI/models/hifi or the pack's checkpoints folder. "
                "'preset:NAME' builds an UNTRAINED model of that size: only for testing graphs.")}),
            "device": (list(DEVICE_CHOICES), {"default": "auto", "tooltip": (
                "auto: ComfyUI's device (the GPU if there is one). cpu works everywhere, slowly.")}),
            "precision": (list(PRECISION_CHOICES), {"default": "auto", "tooltip": (
                "Compute precision. auto: bf16/fp16 on a GPU, fp32 on the CPU. fp16/bf16 halve "
                "memory and speed up GPUs; fp32 is exact and reproducible.")}),
        }}

    def load(self, checkpoint, device, precision):
        torch_device = comfy_bridge.resolve_device(device)
        if checkpoint.startswith(PRESET_PREFIX):
            preset = checkpoint[len(PRESET_PREFIX):]
            if preset not in PRESETS:
                raise ValueError(f"HiFI Load Model: input 'checkpoint' names unknown preset "
                                 f"{preset!r}; presets: {', '.join(PRESETS)}")
            LOG.warning("HiFI: %s is an UNTRAINED model (random weights): results are only "
                        "useful to test a graph. Load a trained checkpoint for real work.", checkpoint)
            model = build_model(preset)
        else:
            model = load_checkpoint(resolve_checkpoint(checkpoint), device="cpu")
        model.eval()
        patcher = None
        model_patcher = comfy_bridge.comfy_module("comfy.model_patcher")
        if model_patcher is not None:
            # ComfyUI loads it onto the device when a node runs and offloads it under pressure.
            patcher = model_patcher.ModelPatcher(model, load_device=torch_device,
                                                 offload_device=comfy_bridge.offload_device(torch_device))
        return (HiFIModelHandle(model=model, name=checkpoint, device=torch_device,
                                precision=precision, patcher=patcher),)
