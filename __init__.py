"""ComfyUI entry point of the HiFI node pack.

ComfyUI imports this folder as a package and reads the mappings below. The library itself
lives in `hifi_core/` (plain PyTorch, usable without ComfyUI); `nodes/` is the thin glue.
"""

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

WEB_DIRECTORY = "./web"

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
