"""Small HTTP routes for the web extension, registered with ComfyUI's PromptServer.

Importing this module outside ComfyUI raises ImportError (no `server` module); the package
__init__ treats that as "no server". Routes:
- GET /hifi/estimate?checkpoint=&width=&height=&levels=&patch_width=&patch_height=&overlap=
  &patch_batch=&memory_budget_mb=&precision=&samples= -> readout.cascade_readout JSON.
- GET /hifi/probe?video=NAME or ?path=PATH -> {width, height, fps, frame_count} of a video.
"""

from __future__ import annotations

from aiohttp import web
from server import PromptServer

from ..hifi_core import video_io
from . import comfy_bridge
from .readout import cascade_readout
from .video_nodes import resolve_video_path

INT_FIELDS = ("width", "height", "levels", "patch_width", "patch_height", "overlap", "patch_batch",
              "memory_budget_mb", "samples")


def _error(message: str, status: int = 400):
    return web.json_response({"error": message}, status=status)


@PromptServer.instance.routes.get("/hifi/estimate")
async def estimate(request):
    query = request.rel_url.query
    try:
        values = {name: int(float(query[name])) for name in INT_FIELDS if name in query}
    except ValueError as error:
        return _error(f"bad number: {error}")
    missing = [n for n in ("width", "height", "patch_width", "patch_height") if n not in values]
    if missing:
        return _error(f"missing parameters: {', '.join(missing)}")
    values.setdefault("levels", 2)
    values.setdefault("overlap", 32)
    device = comfy_bridge.resolve_device("auto")
    try:
        result = cascade_readout(checkpoint=query.get("checkpoint") or None,
                                 precision=query.get("precision", "fp32"),
                                 free_bytes=comfy_bridge.free_memory_bytes(device), device=device, **values)
    except (ValueError, FileNotFoundError) as error:
        return _error(str(error))
    result["device"] = str(device)
    return web.json_response(result)


@PromptServer.instance.routes.get("/hifi/probe")
async def probe(request):
    query = request.rel_url.query
    try:
        source = resolve_video_path(query.get("video", ""), query.get("path", ""), "HiFI Load Video")
        info = video_io.probe_video(source, decode_check=False)
    except ValueError as error:
        return _error(str(error))
    return web.json_response({"width": info.width, "height": info.height, "fps": float(info.fps),
                              "frame_count": info.frame_count})
