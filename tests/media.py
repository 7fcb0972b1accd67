"""Small generated video clips with known content, for tests (not a test module itself).

Every clip is written straight with PyAV (not with `hifi_core.video_io`), so the reader and
the writer are tested against an independent producer. Content is a pure function of the
frame index, so a test can recompute what any frame should show:

* `pattern_frame(i)`: a smooth diagonal gradient background with a bright square that moves
  `speed` px to the right per frame (wrapping), uint8 `[H, W, 3]` RGB.
* `cut_at=c`: frames `>= c` show a second, unrelated scene (inverted gradient, a dark
  square moving down), i.e. a hard cut between frames `c - 1` and `c`.
* `hold=n`: every picture is held for `n` frames (animation "on twos" for n=2), so frames
  `i` and `i + 1` are exact duplicates whenever `(i + 1) % n != 0`.
* `audio=True`: a 440 Hz stereo sine tone lasting exactly as long as the video.

Lossless output (`codec="ffv1"`, `pix_fmt="bgr0"`) decodes back to the exact RGB values.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Optional, Union

import av
import numpy as np

PathLike = Union[str, Path]


def pattern_frame(index: int, width: int = 64, height: int = 48, *, speed: int = 3,
                  scene: int = 0, bits: int = 8) -> np.ndarray:
    """The picture of frame `index`: uint8 (or uint16 for bits > 8) `[H, W, 3]` RGB."""
    xs = np.arange(width, dtype=np.float32)[None, :] / max(width - 1, 1)
    ys = np.arange(height, dtype=np.float32)[:, None] / max(height - 1, 1)
    grad = xs * 0.5 + ys * 0.5
    if scene == 0:
        img = np.stack([0.15 + 0.5 * grad, 0.3 + 0.3 * grad, 0.6 - 0.4 * grad], -1)
        size = max(4, height // 4)
        x0 = (index * speed) % max(width - size, 1)
        y0 = height // 3
        img[y0:y0 + size, x0:x0 + size] = (0.95, 0.9, 0.2)
    else:
        img = np.stack([0.85 - 0.6 * grad, 0.7 - 0.3 * grad, 0.2 + 0.5 * grad], -1)
        size = max(4, height // 5)
        y0 = (index * speed) % max(height - size, 1)
        x0 = width // 2
        img[y0:y0 + size, x0:x0 + size] = (0.05, 0.1, 0.15)
    scale = (1 << bits) - 1
    dtype = np.uint8 if bits <= 8 else np.uint16
    return np.clip(np.round(img * scale), 0, scale).astype(dtype)


def clip_frame(i: int, *, width: int = 64, height: int = 48, speed: int = 3,
               cut_at: Optional[int] = None, hold: int = 1, bits: int = 8) -> np.ndarray:
    """The picture that `write_clip` puts at frame `i` with the same options."""
    scene = 1 if (cut_at is not None and i >= cut_at) else 0
    local = i - cut_at if scene == 1 else i
    return pattern_frame(local // hold, width, height, speed=speed, scene=scene, bits=bits)


def tone(num_samples: int, sample_rate: int, channels: int = 2, freq: float = 440.0) -> np.ndarray:
    """A sine tone, float32 `[channels, num_samples]` in [-0.3, 0.3]."""
    t = np.arange(num_samples, dtype=np.float64) / sample_rate
    wave = (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.stack([wave] * channels)


def write_clip(path: PathLike, *, num_frames: int = 24, width: int = 64, height: int = 48,
               fps: Union[Fraction, int, str] = 24, codec: str = "ffv1",
               pix_fmt: Optional[str] = None, speed: int = 3, cut_at: Optional[int] = None,
               hold: int = 1, audio: bool = False, audio_codec: Optional[str] = None,
               sample_rate: int = 48000, color_range: Optional[int] = None,
               colorspace: Optional[int] = None, bits: int = 8,
               options: Optional[dict] = None) -> Path:
    """Write a generated clip and return its path.

    Args:
        path: target file; the extension picks the container (.mkv, .mp4, .mov, .webm).
        num_frames, width, height, fps: clip geometry and rate (`fps` as a Fraction for NTSC).
        codec: PyAV encoder name ("ffv1", "libx264", "libx265", "prores_ks", ...).
        pix_fmt: encoder pixel format; default "bgr0" for ffv1 (lossless RGB), else yuv420p
            (or yuv420p10le / yuv422p10le when `bits` is 10).
        speed, cut_at, hold: content options, see the module docstring.
        audio: add a 440 Hz stereo tone as long as the video.
        audio_codec: default "aac" for .mp4/.mov, "pcm_s16le" otherwise.
        color_range, colorspace: AVColorRange / AVColorSpace codes to tag (and convert with).
        options: extra encoder options, e.g. {"preset": "ultrafast"}.
        bits: 8 or 10 (10 draws `clip_frame(..., bits=16)` pictures, so the extra precision
            is real).
    """
    path = Path(path)
    fps = Fraction(fps)
    if pix_fmt is None:
        pix_fmt = _default_pix_fmt(codec, bits)
    options = {**({"x265-params": "log-level=error"} if codec == "libx265" else {}), **(options or {})}
    out = av.open(str(path), "w")
    try:
        vs = _add_video_stream(out, codec, fps, options, width, height, pix_fmt, color_range, colorspace)
        as_ = None
        if audio:
            acodec = audio_codec or ("aac" if path.suffix.lower() in (".mp4", ".mov", ".m4v") else "pcm_s16le")
            as_ = out.add_stream(acodec, rate=sample_rate, layout="stereo")
        content = dict(width=width, height=height, speed=speed, cut_at=cut_at, hold=hold,
                       bits=8 if bits <= 8 else 16)
        _encode_pictures(out, vs, num_frames, fps, pix_fmt, content, color_range, colorspace)
        if as_ is not None:
            _encode_tone(out, as_, int(round(num_frames / fps * sample_rate)), sample_rate)
    finally:
        out.close()
    return path


def _default_pix_fmt(codec: str, bits: int) -> str:
    """The pixel format `write_clip` uses for a codec and bit depth when none is given."""
    if codec == "ffv1":
        return "bgr0" if bits <= 8 else "yuv444p10le"
    if codec == "prores_ks":
        return "yuv422p10le"
    return "yuv420p" if bits <= 8 else "yuv420p10le"


def _add_video_stream(out, codec: str, fps: Fraction, options: dict, width: int, height: int,
                      pix_fmt: str, color_range: Optional[int], colorspace: Optional[int]):
    """The clip's video stream, with its size, pixel format, time base and colour tags."""
    vs = out.add_stream(codec, rate=fps, options=options)
    vs.width, vs.height, vs.pix_fmt = width, height, pix_fmt
    vs.codec_context.time_base = 1 / fps
    if color_range is not None:
        vs.codec_context.color_range = color_range
    if colorspace is not None:
        vs.codec_context.colorspace = colorspace
    return vs


def _encode_pictures(out, vs, num_frames: int, fps: Fraction, pix_fmt: str, content: dict,
                     color_range: Optional[int], colorspace: Optional[int]) -> None:
    """Encode `clip_frame(i, **content)` for every frame, converted to the stream's format; flush."""
    rgb_fmt = "rgb24" if content["bits"] <= 8 else "rgb48le"
    convert = {}
    if colorspace is not None:
        convert["dst_colorspace"] = {1: "itu709", 5: "itu601", 6: "itu601", 9: "bt2020"}.get(
            colorspace, "default")
    if color_range is not None:
        convert["dst_color_range"] = color_range
    for i in range(num_frames):
        frame = av.VideoFrame.from_ndarray(clip_frame(i, **content), format=rgb_fmt)
        frame = frame.reformat(format=pix_fmt, **convert)
        frame.pts = i
        frame.time_base = 1 / fps
        out.mux(vs.encode(frame))
    out.mux(vs.encode(None))


def _encode_tone(out, as_, total: int, sample_rate: int) -> None:
    """Encode `total` samples of `tone` in 1024-sample frames of the stream's sample format; flush."""
    wave = tone(total, sample_rate)
    fmt = as_.codec_context.format.name if as_.codec_context.format else "fltp"
    step = 1024
    for s in range(0, total, step):
        chunk = wave[:, s:s + step]
        if fmt.startswith("s16"):
            data = (chunk * 32767).astype(np.int16)
            data = data.T.reshape(1, -1) if not fmt.endswith("p") else data
            af = av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format=fmt,
                                            layout="stereo")
        else:
            af = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="fltp",
                                            layout="stereo")
        af.sample_rate = sample_rate
        af.pts = s
        af.time_base = Fraction(1, sample_rate)
        out.mux(as_.encode(af))
    out.mux(as_.encode(None))


def audio_duration(path: PathLike) -> float:
    """Decoded audio duration in seconds (0.0 when the file has no audio)."""
    with av.open(str(path)) as c:
        if not c.streams.audio:
            return 0.0
        stream = c.streams.audio[0]
        samples = sum(f.samples for f in c.decode(stream))
        return samples / stream.codec_context.sample_rate


def decode_all(path: PathLike) -> tuple[np.ndarray, list[float], Fraction]:
    """All frames of a small clip as uint8 `[N, H, W, 3]` RGB, their times (s) and the rate."""
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        frames, times = [], []
        for f in c.decode(stream):
            frames.append(f.to_ndarray(format="rgb24"))
            times.append(float(f.time))
    return np.stack(frames), times, Fraction(rate)
