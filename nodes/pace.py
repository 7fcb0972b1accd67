"""How long one in-between takes on this machine, so the readout can give an ETA before Run.

Every HiFI Interpolate and HiFI Retime Video run records its pace: seconds per in-between per
megapixel, for its model, device, levels, steps and samples. The cost of an in-between grows
with the frame's pixels (the motion base runs at up to about 1080p, the patches cover the
frame), so a pace measured at one size predicts another. Kept in ComfyUI's user folder
(`hifi_pace.json`), so it survives a restart; outside ComfyUI, in memory only.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Dict, Optional

from . import comfy_bridge

PACE_FILE = "hifi_pace.json"
_memory: Dict[str, dict] = {}


def pace_key(model_name: str, device, levels, steps: int, samples: int) -> str:
    """What a pace depends on besides the frame size."""
    return f"{model_name}|{device}|levels={levels}|steps={int(steps)}|samples={int(samples)}"


def _store() -> Optional[Path]:
    folder_paths = comfy_bridge.comfy_module("folder_paths")
    if folder_paths is None or not hasattr(folder_paths, "get_user_directory"):
        return None
    return Path(folder_paths.get_user_directory()) / PACE_FILE


def _load() -> Dict[str, dict]:
    path = _store()
    if path is None or not path.is_file():
        return dict(_memory)
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}  # a damaged file only costs the estimate


def record(key: str, width: int, height: int, inbetweens: int, seconds: float) -> None:
    """Remember the pace of a finished run (ignored when nothing was interpolated)."""
    if inbetweens <= 0 or seconds <= 0 or width <= 0 or height <= 0:
        return
    entry = {"seconds_per_inbetween_megapixel": seconds / inbetweens / (width * height / 1e6),
             "width": int(width), "height": int(height), "inbetweens": int(inbetweens),
             "seconds": round(float(seconds), 3), "when": time.strftime("%Y-%m-%d %H:%M:%S")}
    _memory[key] = entry
    path = _store()
    if path is None:
        return
    data = _load()
    data[key] = entry
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only user folder: the pace stays in memory


def estimate(key: str, width: int, height: int) -> Optional[dict]:
    """{seconds_per_inbetween, measured_at} for this frame size, or None before any run."""
    entry = _load().get(key) or _memory.get(key)
    if not entry:
        return None
    seconds = entry["seconds_per_inbetween_megapixel"] * width * height / 1e6
    return {"seconds_per_inbetween": seconds,
            "measured_at": f"{entry['width']}×{entry['height']}, {entry['when']}"}
