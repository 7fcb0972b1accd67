"""The HiFI ComfyUI nodes: thin glue between ComfyUI's graph and hifi_core.

ComfyUI reads `NODE_CLASS_MAPPINGS` (node id -> class) and `NODE_DISPLAY_NAME_MAPPINGS` from
the pack's root `__init__.py`, which re-exports these. Node ids are stable: saved workflows
refer to them, so they are never renamed. Importing this package needs no ComfyUI; ComfyUI's
services are looked up when a node runs (comfy_bridge.py).
"""

from . import comfy_bridge
from .cascade_nodes import HiFIBaseSample, HiFIPatchCascadeUpsample
from .merge_nodes import HiFIInterpolate, HiFIMerge
from .model_nodes import HiFILoadModel
from .video_nodes import HiFILoadVideo, HiFIRetimeVideo, HiFIVideoCombine

NODE_CLASS_MAPPINGS = {
    "HiFILoadModel": HiFILoadModel,
    "HiFIBaseSample": HiFIBaseSample,
    "HiFIPatchCascadeUpsample": HiFIPatchCascadeUpsample,
    "HiFIMerge": HiFIMerge,
    "HiFIInterpolate": HiFIInterpolate,
    "HiFILoadVideo": HiFILoadVideo,
    "HiFIVideoCombine": HiFIVideoCombine,
    "HiFIRetimeVideo": HiFIRetimeVideo,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "HiFILoadModel": "HiFI Load Model",
    "HiFIBaseSample": "HiFI Base Sample",
    "HiFIPatchCascadeUpsample": "HiFI Patch-Cascade Upsample",
    "HiFIMerge": "HiFI Merge",
    "HiFIInterpolate": "HiFI Interpolate",
    "HiFILoadVideo": "HiFI Load Video",
    "HiFIVideoCombine": "HiFI Video Combine",
    "HiFIRetimeVideo": "HiFI Retime Video",
}

# Inside ComfyUI: the models/hifi folder, the templates' example clip in the input folder,
# and the web extension's small server route.
comfy_bridge.register_model_folder()
comfy_bridge.install_example_input()
try:
    from . import routes  # noqa: F401  (registers /hifi/* routes with PromptServer)
except ImportError:  # outside ComfyUI there is no server to register with
    pass

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
