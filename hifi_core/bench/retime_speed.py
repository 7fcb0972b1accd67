"""The retime's wall time against the network's own time, for `bench speed`.

Issue 17 asks that retiming a file take at most 1.1x the interpolator's own time: decoding,
scene detection and encoding must hide beside the network. `time_retime` makes a short
lossless clip at one frame size (a photo panning 2 % of the width a frame when a photo is
given, else a smooth random texture), retimes it x2 with the speed run's model and settings
once with the pipeline (the default) and once without, and reports each run's wall time
(`RetimeResult.seconds`) beside its time inside the interpolator
(`RetimeResult.interpolation_seconds`), as the retime's own summary line does.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, List, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .sizes import Resolution

# the target for a whole retime against its interpolator's own time
RETIME_RATIO_TARGET = 1.1


def panning_frames(res: Resolution, count: int, photos: Sequence[Path] = ()) -> List[np.ndarray]:
    """`count` uint8 [H, W, 3] frames of one picture panning 2 % of the width a frame (the
    speed run's photo pair is the first two)."""
    step = max(1, res.width // 50)
    span = res.width + step * (count - 1)
    if photos:
        from .data import _cover, _load_photo, _to_uint8

        picture = _to_uint8(_cover(_load_photo(photos[0], res.height, span), res.height, span))
    else:  # smooth enough for the flows to follow, so the network does its usual work
        coarse = torch.rand(1, 3, max(1, res.height // 16), max(1, span // 16),
                            generator=torch.Generator().manual_seed(0))
        smooth = F.interpolate(coarse, size=(res.height, span), mode="bicubic", align_corners=False)
        picture = (smooth.clamp(0, 1)[0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
    return [np.ascontiguousarray(picture[:, i * step:i * step + res.width]) for i in range(count)]


def time_retime(model, settings, res: Resolution, frames: int, *, photos: Sequence[Path] = (),
                log: Callable[[str], None] = print) -> List[Dict[str, Any]]:
    """Retime a `frames`-frame clip at `res` x2 with and without the pipeline; one row each:
    {"size", "frames", "pipeline", "seconds", "interpolation_seconds", "ratio"}."""
    from ..retime import Encoding, RetimeTarget, RunOptions, retime_video
    from ..video_io import VideoWriter

    rows = []
    with tempfile.TemporaryDirectory(prefix="hifi-bench-retime-") as folder:
        clip = Path(folder) / "clip.mkv"
        with VideoWriter(clip, 24, res.width, res.height, codec="ffv1", pix_fmt="bgr0") as writer:
            for frame in panning_frames(res, frames, photos):
                writer.write(frame)
        for pipeline in (True, False):
            result = retime_video(clip, Path(folder) / f"x2_{pipeline}.mkv", RetimeTarget(multiplier=2),
                                  model=model, settings=settings, encoding=Encoding(codec="ffv1"),
                                  run=RunOptions(pipeline=pipeline))
            ratio = result.seconds / max(result.interpolation_seconds, 1e-9)
            rows.append({"size": res.name, "frames": frames, "pipeline": pipeline, "seconds": result.seconds,
                         "interpolation_seconds": result.interpolation_seconds, "ratio": ratio})
            log(f"[speed] retime {res.name} x2, {frames} frames, {'pipeline' if pipeline else 'no pipeline'}: "
                f"{result.seconds:.2f} s, of which {result.interpolation_seconds:.2f} s interpolating = "
                f"{ratio:.2f}x (target <= {RETIME_RATIO_TARGET}x)")
    return rows


def markdown(rows: Sequence[Dict[str, Any]]) -> List[str]:
    """The report's retime table (empty without rows)."""
    if not rows:
        return []
    lines = ["", f"Retime x2 of a generated lossless clip (FFV1), whole call against the time inside the "
                 f"interpolator (target <= {RETIME_RATIO_TARGET}x):", "",
             "| size | frames | pipeline | wall s | interpolator s | wall / interpolator |", "|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['size']} | {row['frames']} | {'on' if row['pipeline'] else 'off'} | "
                     f"{row['seconds']:.2f} | {row['interpolation_seconds']:.2f} | {row['ratio']:.2f}x |")
    return lines + [""]
