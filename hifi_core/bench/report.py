"""Reporting helpers shared by the benchmarks: machine facts, Markdown, JSON, PNG sheets.

Images handled here are uint8 numpy arrays `[H, W, 3]` RGB. JSON is strict (no NaN or
Infinity tokens): an infinite PSNR (identical images) is written as the string "inf".
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from ..runtime import total_memory_bytes


def machine_info(device: str = "cpu") -> Dict[str, Any]:
    """What ran the benchmark: CPU model, cores, memory, torch build, accelerator."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    memory = total_memory_bytes()
    info = {"date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "platform": platform.platform(), "python": platform.python_version(),
            "cpu": cpu, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "memory_bytes": memory, "torch": torch.__version__, "device": device,
            "load_average_1m": os.getloadavg()[0]}
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def machine_line(info: Dict[str, Any]) -> str:
    memory = f"{info['memory_bytes'] / 2 ** 30:.0f} GiB RAM" if info.get("memory_bytes") else "RAM ?"
    gpu = f", GPU {info['gpu']}" if info.get("gpu") else ""
    load = info.get("load_average_1m")
    load = f", load average {load:.1f} at the start" if load is not None else ""
    return (f"{info['cpu']} ({info['cpu_count']} cores, torch {info['torch_threads']} threads), "
            f"{memory}, torch {info['torch']}, device {info['device']}{gpu}{load}")


def jsonable(value: Any) -> Any:
    """Replace non-finite floats with strings so the JSON stays strict."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        return jsonable(value.item())
    if isinstance(value, Path):
        return str(value)
    return value


def write_json(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(jsonable(data), indent=2, allow_nan=False) + "\n")
    return path


def fmt(value: Optional[float], digits: int = 2, unit: str = "") -> str:
    """A number for a table cell: inf, None (-> '—') and units handled."""
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    if math.isinf(value):
        return "inf"
    if math.isnan(value):
        return "nan"
    return f"{value:.{digits}f}{unit}"


def fmt_bytes(value: Optional[float]) -> str:
    if value is None:
        return "—"
    if abs(value) >= 2 ** 30:
        return f"{value / 2 ** 30:.2f} GiB"
    if abs(value) >= 2 ** 20:
        return f"{value / 2 ** 20:.0f} MiB"
    return f"{value / 2 ** 10:.0f} KiB"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]], caption: str = "") -> str:
    lines = []
    if caption:
        lines += [caption, ""]
    lines.append("| " + " | ".join(map(str, header)) + " |")
    lines.append("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        lines.append("| " + " | ".join(str(c) for c in row) + " |")
    return "\n".join(lines) + "\n"


# contact sheets
def _label(tile: np.ndarray, text: str) -> np.ndarray:
    import cv2

    bar_h = 16
    bar = np.full((bar_h, tile.shape[1], 3), 24, np.uint8)
    scale = 0.38
    cv2.putText(bar, text[:max(8, tile.shape[1] // 7)], (3, 12), cv2.FONT_HERSHEY_SIMPLEX, scale, (235, 235, 235), 1,
                cv2.LINE_AA)
    return np.concatenate([bar, tile], axis=0)


def _fit(image: np.ndarray, width: int) -> np.ndarray:
    import cv2

    height = max(1, round(image.shape[0] * width / image.shape[1]))
    interp = cv2.INTER_AREA if width < image.shape[1] else cv2.INTER_NEAREST
    return cv2.resize(image, (width, height), interpolation=interp)


def error_map(prediction: np.ndarray, truth: np.ndarray, gain: float = 4.0) -> np.ndarray:
    """|prediction - truth| (mean over RGB) x gain, as a colour map (black = exact)."""
    import cv2

    diff = np.abs(prediction.astype(np.float32) - truth.astype(np.float32)).mean(axis=2)
    gray = np.clip(diff * gain, 0, 255).astype(np.uint8)
    return cv2.applyColorMap(gray, cv2.COLORMAP_INFERNO)[:, :, ::-1]


def contact_sheet(path: Path, rows: Sequence[Dict[str, Any]], tile_width: int = 256) -> Optional[Path]:
    """A PNG with one row per case: labelled tiles left to right.

    Args:
        rows: dicts with "title" (str) and "tiles" (list of (label, uint8 [H, W, 3] RGB)).
    """
    import cv2

    if not rows:
        return None
    rendered = []
    for row in rows:
        tiles = [_label(_fit(img, tile_width), label) for label, img in row["tiles"]]
        height = max(t.shape[0] for t in tiles)
        tiles = [np.pad(t, ((0, height - t.shape[0]), (0, 2), (0, 0))) for t in tiles]
        line = np.concatenate(tiles, axis=1)
        title = _label(np.zeros((2, line.shape[1], 3), np.uint8), row["title"])
        rendered.append(np.concatenate([title, line], axis=0))
    width = max(r.shape[1] for r in rendered)
    sheet = np.concatenate([np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0))) for r in rendered], 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), sheet[:, :, ::-1]):
        raise OSError(f"cannot write {path}")
    return path


def write_markdown(path: Path, title: str, sections: List[str], info: Dict[str, Any],
                   command: str, duration_s: float) -> Path:
    end_load = os.getloadavg()[0]
    header = [f"# {title}", "",
              f"- date: {info['date']}", f"- machine: {machine_line(info)} and {end_load:.1f} at the end "
              "(other jobs sharing the cores slow every timing)",
              f"- command: `{command}`", f"- duration: {duration_s:.1f} s", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(header) + "\n" + "\n".join(sections))
    return path
