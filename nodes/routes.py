"""Small HTTP routes for the web extension, registered with ComfyUI's PromptServer.

Importing this module outside ComfyUI raises ImportError (no `server` module); the package
__init__ treats that as "no server". Routes:
- GET /hifi/estimate?checkpoint=&width=&height=&levels=&patch_width=&patch_height=&overlap=
  &patch_batch=&memory_budget_mb=&precision=&samples= -> readout.cascade_readout JSON.
- GET /hifi/probe?video=NAME or ?path=PATH -> {width, height, fps, frame_count} of a video.
- GET /hifi/eta?checkpoint=&device=&width=&height=&levels=&steps=&samples=&frame_count=
  &multiplier=&target_fps=&fps= -> readout.eta_readout JSON (this machine's pace, the ETA).
"""

from __future__ import annotations

from aiohttp import web
from server import PromptServer

from ..hifi_core import video_io
from . import comfy_bridge
from .readout import cascade_readout, eta_readout
from .inputs import resolve_video_path

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


@PromptServer.instance.routes.get("/hifi/eta")
async def eta(request):
    query = request.rel_url.query
    try:
        ints = {name: int(float(query.get(name, default))) for name, default in
                (("width", 0), ("height", 0), ("levels", 2), ("steps", 1), ("samples", 1),
                 ("frame_count", 0), ("multiplier", 2))}
        floats = {name: float(query.get(name, 0.0)) for name in ("target_fps", "fps")}
        device = comfy_bridge.resolve_device(query.get("device", "auto") or "auto")
        result = eta_readout(checkpoint=query.get("checkpoint", ""), device=device, **ints, **floats)
    except ValueError as error:
        return _error(str(error))
    return web.json_response(result)
