"""Probing and reading video files one frame at a time, and whether a batch of frames fits."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator, NamedTuple, Optional, Union

import av
import numpy as np
import torch

from ..errors import HiFIInputError
from .. import runtime

from .formats import ColorInfo, _MATRIX_TO_SWS, _format_bits

PathLike = Union[str, os.PathLike]

# ---------------------------------------------------------------- probing and reading


@dataclass(frozen=True)
class VideoInfo:
    """What `probe_video` found.

    Attributes:
        path (Path): the file.
        width, height (int): the frame size; fps (Fraction): the average frame rate.
        frame_count (int): frames; estimated from the duration when the container does not
            store it (`frame_count_exact` is then False). duration (float): seconds.
        pix_fmt (str), bit_depth (int), color (ColorInfo), codec (str): the video stream's.
        has_audio (bool); audio_codec (str), audio_sample_rate (int), audio_channels (int):
            the first audio stream's, or None.
    """

    path: Path
    width: int
    height: int
    fps: Fraction
    frame_count: int
    frame_count_exact: bool
    duration: float
    pix_fmt: str
    bit_depth: int
    color: ColorInfo
    codec: str
    has_audio: bool
    audio_codec: Optional[str] = None
    audio_sample_rate: Optional[int] = None
    audio_channels: Optional[int] = None

    def __post_init__(self):
        if self.width <= 0 or self.height <= 0:
            raise HiFIInputError(f"{self.path}: video size {self.width}x{self.height} is invalid")
        if self.fps <= 0:
            raise HiFIInputError(f"{self.path}: frame rate {self.fps} is invalid")

    @property
    def color_range(self) -> str:
        return self.color.names["range"]

    @property
    def color_matrix(self) -> str:
        return self.color.names["matrix"]

    @property
    def color_primaries(self) -> str:
        return self.color.names["primaries"]

    @property
    def color_transfer(self) -> str:
        return self.color.names["transfer"]


def _open_input(path: PathLike):
    path = Path(path).expanduser()
    if not path.exists():
        raise HiFIInputError(f"video file not found: {str(path)!r}; check the path")
    if path.is_dir():
        raise HiFIInputError(f"{str(path)!r} is a directory, not a video file")
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as exc:
        raise HiFIInputError(f"could not read {str(path)!r} as a video ({exc}); is it a video "
                             f"file that FFmpeg can read?") from exc
    if not container.streams.video:
        container.close()
        raise HiFIInputError(f"{str(path)!r} has no video stream (audio-only or not a video)")
    stream = container.streams.video[0]
    if stream.codec_context is None or not stream.codec_context.codec.is_decoder:
        container.close()
        raise HiFIInputError(f"{str(path)!r}: this PyAV build has no decoder for its video codec")
    return path, container, stream


def _stream_fps(stream) -> Fraction:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    if not rate:
        raise HiFIInputError("the video stream has no frame rate")
    return Fraction(rate)


def probe_video(path: PathLike, *, decode_check: bool = True) -> VideoInfo:
    """Read a video's geometry, rate, length, pixel format, colour tags and audio presence.

    Args:
        path: the video file.
        decode_check: also decode the first frame, so an undecodable stream fails here.

    Raises:
        HiFIInputError: missing file, a directory, not a video, no video stream, no decoder,
            or a stream that does not decode.
    """
    path, container, stream = _open_input(path)
    with container:
        cc = stream.codec_context
        fps = _stream_fps(stream)
        tag = (stream.metadata or {}).get("DURATION")  # Matroska keeps it per stream as a tag
        if stream.duration is not None and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        elif tag:
            h, m, sec = tag.split(":")
            start = float(stream.start_time * stream.time_base) if stream.start_time else 0.0
            duration = int(h) * 3600 + int(m) * 60 + float(sec) - start
        elif container.duration:
            duration = container.duration / av.time_base
        else:
            duration = 0.0
        exact = bool(stream.frames)
        count = int(stream.frames) if exact else max(1, int(round(duration * fps)))
        pix_fmt = cc.pix_fmt or "yuv420p"
        if decode_check:
            try:
                first = next(container.decode(stream), None)
            except av.error.FFmpegError as exc:
                raise HiFIInputError(f"the video stream of {str(path)!r} could not be decoded "
                                     f"({exc}); the file may be damaged") from exc
            if first is None:
                raise HiFIInputError(f"{str(path)!r} contains no decodable video frames")
            pix_fmt = first.format.name
        color = ColorInfo(cc.color_range or 0, cc.colorspace if cc.colorspace is not None else 2,
                          cc.color_primaries or 2, cc.color_trc or 2)
        audio = container.streams.audio[0] if container.streams.audio else None
        return VideoInfo(
            path=path, width=cc.width, height=cc.height, fps=fps, frame_count=count,
            frame_count_exact=exact, duration=duration or count / float(fps), pix_fmt=pix_fmt,
            bit_depth=_format_bits(pix_fmt), color=color, codec=cc.name,
            has_audio=audio is not None,
            audio_codec=audio.codec_context.name if audio is not None else None,
            audio_sample_rate=audio.codec_context.sample_rate if audio is not None else None,
            audio_channels=audio.codec_context.channels if audio is not None else None)


class DecodedFrame(NamedTuple):
    """One decoded frame: source index, time in seconds from the stream start, picture."""

    index: int
    time: float
    image: Any  # torch.Tensor or np.ndarray, float32 (or float16) [3, H, W] in [0, 1]


# the deepest source a half-precision frame holds: fp16's 11 significant bits keep a 10-bit code
HALF_PRECISION_MAX_BITS = 10
DECODE_BAND_ROWS = 256  # rows converted at a time: a float32 band, never a float32 frame


def decode_dtype(bit_depth: int) -> torch.dtype:
    """The frame dtype a streaming consumer (the retime) decodes a `bit_depth`-bit source to:
    float16 up to 10 bits (half the memory; at 8K 200 MB a frame, not 400), float32 deeper."""
    return torch.float16 if bit_depth <= HALF_PRECISION_MAX_BITS else torch.float32


def as_float32(image: torch.Tensor, bit_depth: int) -> torch.Tensor:
    """A frame `iter_frames` decoded from a `bit_depth`-bit source, as float32: for 8-bit sources
    exactly the values a float32 decode gives (a half value is within 1/16 of its 8-bit code,
    so it is rounded back to the code), deeper ones within half precision's rounding. A float32
    frame is returned as it is; anything else comes back as a new tensor."""
    if image.dtype == torch.float32:
        return image
    if bit_depth > 8:
        return image.float()
    return image.float().mul_(255.0).round_().mul_(1.0 / 255.0)  # the decode's own division


def _frame_to_array(frame: av.VideoFrame, color: ColorInfo, sixteen: bool) -> np.ndarray:
    kwargs = {}
    if not frame.format.is_rgb:
        kwargs = {"src_colorspace": _MATRIX_TO_SWS[color.matrix], "src_color_range": color.range}
    rgb = frame.reformat(format="rgb48le" if sixteen else "rgb24", **kwargs)
    return rgb.to_ndarray()


def _array_to_tensor(arr: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    """uint8 or uint16 `[H, W, 3]` -> `dtype` `[3, H, W]` in [0, 1], a band of rows at a time
    (each value is the float32 division, then rounded to `dtype`: `.to(dtype)` of a float32
    decode, without a float32 frame beside the result)."""
    sixteen = arr.dtype == np.uint16
    image = torch.empty(3, arr.shape[0], arr.shape[1], dtype=dtype)
    for top in range(0, arr.shape[0], DECODE_BAND_ROWS):
        rows = arr[top:top + DECODE_BAND_ROWS]
        if sixteen:  # torch has few uint16 kernels: widen first
            rows = rows.astype(np.int32)
        band = torch.from_numpy(rows).permute(2, 0, 1).float()
        image[:, top:top + DECODE_BAND_ROWS] = band.mul_(1.0 / (65535.0 if sixteen else 255.0))
    return image


# FFmpeg's frame threading decodes a frame per thread (cores + 1 threads, at most 17) and holds
# each: 8K RGB frames are 133 MB, and a 2-frame 8K clip held +269 MiB decoding with two threads
# against +136 with one (2026-12-02), 2.2 GB would be in flight on sixteen cores. Frames stay
# in flight up to this budget; beyond it the decoder threads within a frame (slice threading)
# and holds one: as fast for files cut in slices, and at such sizes the network sets the pace.
DECODE_FRAMES_BUDGET = 128 * 2 ** 20
FFMPEG_MAX_AUTO_THREADS = 16


def set_decoder_threads(stream: "av.video.stream.VideoStream") -> None:
    """Choose the stream's decoder threading (before its first frame) within
    `DECODE_FRAMES_BUDGET`, the frames counted as 4 bytes per pixel (8 above 8 bits)."""
    context = stream.codec_context
    deep = context.format is not None and _format_bits(context.format.name) > 8
    frame_bytes = max(1, context.width * context.height * (8 if deep else 4))
    automatic = min(os.cpu_count() or 1, FFMPEG_MAX_AUTO_THREADS) + 1
    in_flight = DECODE_FRAMES_BUDGET // frame_bytes
    if in_flight >= automatic:
        stream.thread_type = "AUTO"
    elif in_flight >= 2:
        stream.thread_type = "AUTO"
        context.thread_count = int(in_flight)
    else:
        stream.thread_type = "SLICE"


def decoded_frames(container: "av.container.InputContainer", stream) -> Iterator["av.VideoFrame"]:
    """`container.decode(stream)`, holding no frame while suspended: PyAV's own generator keeps
    each packet's list of frames alive until the next packet, so the frame a caller is done
    with (at 8K 133 MB) would stay resident under all of the caller's work."""
    for packet in container.demux(stream):
        frames = packet.decode()
        while frames:
            yield frames.pop(0)


def iter_frames(path: PathLike, *, start: int = 0, every_nth: int = 1,
                max_frames: Optional[int] = None, as_16bit: Optional[bool] = None,
                as_numpy: bool = False, dtype: torch.dtype = torch.float32) -> Iterator[DecodedFrame]:
    """Decode frames one at a time (streaming: memory does not grow with the clip length).

    Args:
        path: the video file.
        start: first source frame index to yield (earlier frames are decoded and dropped,
            which is exact for any container, not a keyframe seek).
        every_nth: yield every n-th frame from `start`.
        max_frames: stop after yielding this many frames (None: to the end).
        as_16bit: convert through 16-bit RGB; None decides from the stream (True for
            sources deeper than 8 bit), so 10-bit precision is not lost by default.
        as_numpy: yield numpy arrays instead of torch tensors.
        dtype: torch.float32 (default) or torch.float16 (half the memory; each value is the
            float32 decode's, rounded; `decode_dtype` says which a source's depth allows).

    Yields:
        `DecodedFrame(index, time, image)`, image `dtype` `[3, H, W]` RGB in [0, 1].

    Raises:
        HiFIInputError: for unreadable inputs, or a decode error (naming the frame index).
    """
    if start < 0 or every_nth < 1 or (max_frames is not None and max_frames < 0):
        raise HiFIInputError(f"iter_frames: need start >= 0, every_nth >= 1, max_frames >= 0; "
                             f"got start={start}, every_nth={every_nth}, max_frames={max_frames}")
    if dtype not in (torch.float32, torch.float16):
        raise HiFIInputError(f"iter_frames: dtype {dtype} is not torch.float32 or torch.float16")
    path, container, stream = _open_input(path)
    with container:
        set_decoder_threads(stream)
        cc = stream.codec_context
        fps = _stream_fps(stream)
        base = ColorInfo(cc.color_range or 0, cc.colorspace if cc.colorspace is not None else 2)
        start_pts = stream.start_time or 0
        yielded, index, color, sixteen = 0, -1, None, as_16bit
        if max_frames == 0:
            return
        try:
            for frame in decoded_frames(container, stream):
                index += 1
                if index < start or (index - start) % every_nth:
                    continue
                if color is None:
                    color = base.resolved(frame.height, frame.format.name)
                    if sixteen is None:
                        sixteen = _format_bits(frame.format.name) > 8
                img = _array_to_tensor(_frame_to_array(frame, color, sixteen), dtype)
                time = (float((frame.pts - start_pts) * frame.time_base)
                        if frame.pts is not None and frame.time_base else index / float(fps))
                del frame  # not held while the caller works on the frame (at 8K 133 MB)
                yield DecodedFrame(index, time, img.numpy() if as_numpy else img)
                yielded += 1
                if max_frames is not None and yielded >= max_frames:
                    return
        except av.error.FFmpegError as exc:
            raise HiFIInputError(f"decoding {str(path)!r} failed after frame {index} ({exc}); "
                                 f"the file may be truncated or damaged") from exc


def count_frames(path: PathLike) -> int:
    """Exact frame count by demuxing (no decoding); slower than `probe_video` but exact."""
    path, container, stream = _open_input(path)
    with container:
        return sum(1 for p in container.demux(stream) if p.size)


# ---------------------------------------------------------------- memory


def frames_nbytes(num_frames: int, height: int, width: int, channels: int = 3,
                  bytes_per_value: int = 4) -> int:
    """Bytes needed to hold `num_frames` frames of `height x width` (float32 by default)."""
    return int(num_frames) * int(height) * int(width) * int(channels) * int(bytes_per_value)


def check_frames_fit(num_frames: int, height: int, width: int, *,
                     available: Optional[int] = None, fraction: float = 0.8) -> int:
    """Refuse (before loading) a frame batch that would not fit in RAM; returns the bytes.

    Raises:
        HiFIInputError: if `num_frames` float32 frames exceed `fraction` of the available
            memory; the message says how many frames would fit.
    """
    need = frames_nbytes(num_frames, height, width)
    avail = runtime.available_memory_bytes() if available is None else available
    if avail is not None and need > fraction * avail:
        fit = int(fraction * avail // max(frames_nbytes(1, height, width), 1))
        raise HiFIInputError(
            f"loading {num_frames} frames of {width}x{height} needs {need / 2**30:.1f} GiB as "
            f"float32 but only {avail / 2**30:.1f} GiB is available (about {fit} frames fit); "
            f"load fewer frames (frame cap / every n-th frame) or use the streaming retime "
            f"(`python -m hifi_core retime` or the HiFI Retime Video node)")
    return need


def remove_tree(path: PathLike) -> None:
    """Delete a directory tree if it exists (used for segment folders)."""
    shutil.rmtree(path, ignore_errors=True)
