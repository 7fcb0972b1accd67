"""HiFI Load Model: a checkpoint (or a built-in preset) -> HIFI_MODEL.

Checkpoints are listed from ComfyUI's `models/hifi/` folder (registered with folder_paths as
``hifi``, extra paths from extra_model_paths.yaml included) and from the pack's own
`checkpoints/` folder. ``preset:NAME`` builds an untrained model of a preset (for tests and for
checking a graph quickly). Nothing is ever downloaded; only safetensors files are read.
"""

from __future__ import annotations

import logging

from ..hifi_core import PRESETS, build_model, load_checkpoint
from . import comfy_bridge
from .handles import MODEL_TYPE, PRECISION_CHOICES, HiFIModelHandle
from .inputs import PRESET_PREFIX, checkpoint_choices, resolve_checkpoint

CATEGORY = "HiFI"
DEVICE_CHOICES = ("auto", "cpu", "cuda")
LOG = logging.getLogger(__name__)


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
