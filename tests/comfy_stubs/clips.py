"""Tiny generated clips for node tests: a square moving over a gradient, a tone, a hard cut.

`make_frames` gives an IMAGE batch [N, H, W, 3] float32 in [0, 1]; `write_clip` encodes it
(h264 yuv444p would be exact, but users feed yuv420p, so that is what is written) with PyAV.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Optional

import av
import numpy as np
import torch


def make_frames(count: int = 5, height: int = 48, width: int = 64, step: int = 4,
                cut_at: Optional[int] = None) -> torch.Tensor:
    """A bright square moving `step` px per frame over a gradient; after `cut_at`, another shot."""
    ys = torch.linspace(0, 1, height)[:, None].expand(height, width)
    xs = torch.linspace(0, 1, width)[None, :].expand(height, width)
    frames = []
    for i in range(count):
        if cut_at is not None and i >= cut_at:  # a different shot: dark, other gradient
            image = torch.stack([0.1 + 0.2 * ys, 0.05 + 0.1 * xs, 0.3 * (1 - ys)], dim=-1).clone()
            y0 = 2 + step * (i - cut_at)
            image[y0:y0 + 8, width // 2:width // 2 + 8] = torch.tensor([0.2, 0.8, 0.9])
        else:
            image = torch.stack([0.2 + 0.6 * xs, 0.3 + 0.4 * ys, 0.5 * (1 - xs)], dim=-1).clone()
            x0 = 4 + step * i
            image[height // 3:height // 3 + 12, x0:x0 + 12] = torch.tensor([0.95, 0.9, 0.2])
        frames.append(image)
    return torch.stack(frames).contiguous()


def write_clip(path: Path, frames: torch.Tensor, fps: int = 12, audio_hz: Optional[float] = 440.0,
               sample_rate: int = 16000) -> Path:
    """Encode frames (+ a sine tone as long as the video) to an h264 mp4 with AAC audio."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count, height, width, _ = frames.shape
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=fps, options={"crf": "12", "preset": "ultrafast"})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        audio = None
        if audio_hz:
            audio = container.add_stream("aac", rate=sample_rate)
            audio.layout = "mono"
        for i in range(count):
            array = (frames[i].numpy() * 255 + 0.5).clip(0, 255).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        if audio is not None:
            samples = int(sample_rate * count / fps)
            t = np.arange(samples) / sample_rate
            tone = (0.3 * np.sin(2 * np.pi * audio_hz * t)).astype(np.float32)[None]
            chunk = 1024
            for start in range(0, samples, chunk):
                piece = av.AudioFrame.from_ndarray(np.ascontiguousarray(tone[:, start:start + chunk]),
                                                   format="fltp", layout="mono")
                piece.sample_rate = sample_rate
                piece.pts = start
                for packet in audio.encode(piece):
                    container.mux(packet)
            for packet in audio.encode():
                container.mux(packet)
    return path
