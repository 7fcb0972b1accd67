"""Streaming video reading and writing with PyAV, with audio passthrough and colour metadata.

Frames:
    `iter_frames` yields one frame at a time as float32 `[3, H, W]` RGB in `[0, 1]` (a torch
    tensor, or a numpy array with `as_numpy=True`), never the whole clip. `VideoWriter.write`
    takes the same layout (`[3, H, W]` or a batch `[B, 3, H, W]`, torch or numpy), or integer
    `[H, W, 3]` uint8 / uint16 arrays.

Colour:
    YUV <-> RGB conversion uses the stream's tagged matrix and range. An untagged stream is
    read the way players show it: BT.709 for height >= 720, BT.601 below, limited ("tv")
    range unless the pixel format is a full-range `yuvj*` one. The writer converts with the
    matrix/range it is given (by default the same rule) and tags the file with them, so a
    read -> write round trip keeps colours and metadata; primaries and transfer are tags only.
    Sources deeper than 8 bit are read through 16-bit RGB (`as_16bit=None` decides this from
    the stream), and the writer keeps 10/12/16 bit when the codec can store it, warning
    whenever it has to write fewer bits than asked.

Audio:
    The writer copies the first audio stream of `audio_from` packet by packet (no re-encode)
    when the container can hold its codec, else re-encodes it to AAC (Opus for WebM).
    `audio_tempo != 1` time-stretches it (FFmpeg `atempo`, pitch kept, re-encoded).
    `audio_waveform` muxes a float waveform instead (ComfyUI `AUDIO`). Audio packets are
    interleaved with the video as it is written, so nothing accumulates in memory.

Codecs (`available_codecs()` lists the ones this PyAV build can encode):
    h264 (libx264, .mp4/.mov/.mkv, 8/10 bit), h265 (libx265, 8/10/12 bit), prores (prores_ks
    422 HQ, always 10 bit, .mov/.mkv), ffv1 (lossless, .mkv, 8/10/16 bit), vp9 (.webm/.mkv),
    av1 (SVT-AV1), png (a directory of frame_000000.png, 8 or 16 bit; audio as audio.mka).
"""

from __future__ import annotations

import itertools
import math
import os
import shutil
import warnings
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator, NamedTuple, Optional, Sequence, Union

import av
import numpy as np
import torch

from .errors import HiFIInputError
from .image_io import png_with_text
from .runtime import available_memory_bytes

PathLike = Union[str, os.PathLike]

# colour tables (FFmpeg AVColor* codes)
_MATRIX_NAMES = {0: "rgb", 1: "bt709", 2: "unspecified", 4: "fcc", 5: "bt470bg", 6: "smpte170m",
                 7: "smpte240m", 8: "ycgco", 9: "bt2020nc", 10: "bt2020c"}
_MATRIX_TO_SWS = {1: "itu709", 4: "fcc", 5: "itu601", 6: "itu601", 7: "smpte240m", 9: "bt2020",
                  10: "bt2020"}
_RANGE_NAMES = {0: "unspecified", 1: "tv", 2: "pc"}
_PRIMARIES_NAMES = {1: "bt709", 2: "unspecified", 4: "bt470m", 5: "bt470bg", 6: "smpte170m",
                    7: "smpte240m", 8: "film", 9: "bt2020", 10: "smpte428", 11: "smpte431",
                    12: "smpte432", 22: "ebu3213"}
_TRC_NAMES = {1: "bt709", 2: "unspecified", 4: "gamma22", 5: "gamma28", 6: "smpte170m",
              7: "smpte240m", 8: "linear", 13: "iec61966-2-1", 14: "bt2020-10", 15: "bt2020-12",
              16: "smpte2084", 18: "arib-std-b67"}
_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 8: "7.1"}
# File names we take for videos (inputs: anything FFmpeg demuxes; what we write is CODECS').
VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".mkv", ".webm", ".m4v", ".avi", ".mpg", ".mpeg", ".ts",
                              ".wmv", ".flv", ".mxf", ".y4m", ".gif"})


@dataclass(frozen=True)
class ColorInfo:
    """Colour tags of a stream as FFmpeg codes (2 / 0 mean unspecified)."""

    range: int = 0
    matrix: int = 2
    primaries: int = 2
    transfer: int = 2

    def __post_init__(self):
        if self.range not in _RANGE_NAMES:
            raise HiFIInputError(f"colour range code {self.range} is not one of {_RANGE_NAMES}")

    @property
    def names(self) -> dict:
        """Human-readable tags, e.g. {'range': 'tv', 'matrix': 'bt709', ...}."""
        return {"range": _RANGE_NAMES.get(self.range, str(self.range)),
                "matrix": _MATRIX_NAMES.get(self.matrix, str(self.matrix)),
                "primaries": _PRIMARIES_NAMES.get(self.primaries, str(self.primaries)),
                "transfer": _TRC_NAMES.get(self.transfer, str(self.transfer))}

    def resolved(self, height: int, pix_fmt: str = "yuv420p") -> "ColorInfo":
        """Fill unspecified matrix/range the way players do (see the module docstring)."""
        matrix = self.matrix if self.matrix in _MATRIX_TO_SWS else (1 if height >= 720 else 6)
        rng = self.range or (2 if pix_fmt.startswith("yuvj") else 1)
        return ColorInfo(rng, matrix, self.primaries, self.transfer)


def _is_rgb_format(pix_fmt: str) -> bool:
    return av.VideoFormat(pix_fmt).is_rgb


def _format_bits(pix_fmt: str) -> int:
    return max(c.bits for c in av.VideoFormat(pix_fmt).components)


# ---------------------------------------------------------------- codecs


@dataclass(frozen=True)
class CodecSpec:
    """An output codec: encoders to try, containers, pixel format per bit depth, quality knob."""

    name: str
    encoders: tuple
    extensions: tuple
    pix_fmts: dict
    quality_option: Optional[str] = None
    default_quality: Optional[int] = None
    options: dict = field(default_factory=dict)


CODECS = {
    "h264": CodecSpec("h264", ("libx264",), (".mp4", ".mov", ".mkv"),
                      {8: "yuv420p", 10: "yuv420p10le"}, "crf", 18, {"preset": "medium"}),
    "h265": CodecSpec("h265", ("libx265",), (".mp4", ".mov", ".mkv"),
                      {8: "yuv420p", 10: "yuv420p10le", 12: "yuv420p12le"}, "crf", 20,
                      {"preset": "medium", "x265-params": "log-level=error"}),
    "prores": CodecSpec("prores", ("prores_ks",), (".mov", ".mkv"),
                        {10: "yuv422p10le"}, None, None, {"profile": "3"}),
    "ffv1": CodecSpec("ffv1", ("ffv1",), (".mkv",),
                      {8: "yuv444p", 10: "yuv444p10le", 12: "yuv444p12le", 16: "yuv444p16le"},
                      None, None, {"level": "3", "slicecrc": "1"}),
    "vp9": CodecSpec("vp9", ("libvpx-vp9",), (".webm", ".mkv"), {8: "yuv420p"}, "crf", 31,
                     {"row-mt": "1", "b": "0"}),
    "av1": CodecSpec("av1", ("libsvtav1", "libaom-av1"), (".mp4", ".mkv", ".webm"),
                     {8: "yuv420p", 10: "yuv420p10le"}, "crf", 30),
    "png": CodecSpec("png", (), ("",), {8: "rgb24", 16: "rgb48le"}),
}


def _encoder_available(name: str) -> bool:
    try:
        av.codec.Codec(name, "w")
        return True
    except Exception:  # UnknownCodecError and friends: not in this build
        return False


def available_codecs() -> list[str]:
    """Output codec names this PyAV build can write."""
    return [n for n, s in CODECS.items() if not s.encoders or any(map(_encoder_available, s.encoders))]


@dataclass(frozen=True)
class OutputFormat:
    """A resolved output: codec, encoder, pixel format, bit depth, container kind."""

    codec: str
    encoder: Optional[str]
    pix_fmt: str
    bit_depth: int
    is_sequence: bool
    quality: Optional[int]


def resolve_output_format(path: PathLike, codec: str = "h264", *, bit_depth: Optional[int] = None,
                          pix_fmt: Optional[str] = None, crf: Optional[int] = None,
                          source_bit_depth: Optional[int] = None) -> OutputFormat:
    """Check codec, container extension, pixel format and bit depth; pick defaults.

    `bit_depth=None` keeps `source_bit_depth` (8 when unknown). Asking for fewer bits than
    the source, or a codec that cannot store the bits asked for, warns (never silently).

    Raises:
        HiFIInputError: unknown/unavailable codec (the message lists the available ones), a
            container extension the codec cannot go in, or an unsupported pixel format.
    """
    key = {"hevc": "h265", "x264": "h264", "x265": "h265", "prores_ks": "prores"}.get(codec, codec)
    avail = available_codecs()
    if key not in CODECS or key not in avail:
        raise HiFIInputError(f"unknown or unavailable codec {codec!r}; this build can write: "
                             f"{', '.join(avail)}")
    spec = CODECS[key]
    path = Path(path)
    ext = path.suffix.lower()
    if key == "png":
        if ext in VIDEO_EXTENSIONS:
            raise HiFIInputError(f"codec 'png' writes an image sequence into a directory, but "
                                 f"{str(path)!r} looks like a video file; give a directory path")
    elif ext not in spec.extensions:
        raise HiFIInputError(f"codec {key!r} cannot be written to {str(path)!r}: use one of "
                             f"{', '.join(spec.extensions)} as the file extension")
    encoder = next((e for e in spec.encoders if _encoder_available(e)), None)
    src_bits = source_bit_depth or 8
    if bit_depth is not None and bit_depth not in (8, 10, 12, 16):
        raise HiFIInputError(f"bit depth {bit_depth} is not one of 8, 10, 12, 16")
    # 10-bit H.264 (High 10) plays in few players and browsers: by default h264 stays 8-bit
    compat = key == "h264" and bit_depth is None and pix_fmt is None
    want = bit_depth if bit_depth is not None else (8 if compat else src_bits)
    if pix_fmt is None:
        depths = sorted(spec.pix_fmts)
        fits = [d for d in depths if d >= want]
        pix = spec.pix_fmts[fits[0] if fits else depths[-1]]
    else:
        pix = pix_fmt
        if key == "png":
            if pix not in ("rgb24", "rgb48le", "rgb48be"):
                raise HiFIInputError(f"png sequences are rgb24 (8 bit) or rgb48le (16 bit), not {pix!r}")
        else:
            formats = [f.name for f in (av.codec.Codec(encoder, "w").video_formats or [])]
            if pix not in formats:
                raise HiFIInputError(f"encoder {encoder} does not support pixel format {pix!r}; "
                                     f"supported: {', '.join(formats)}")
    bits = _format_bits(pix)
    if pix_fmt is not None and bit_depth is not None and bits != bit_depth:
        raise HiFIInputError(f"--pix-fmt {pix_fmt} is {bits}-bit but --bit-depth {bit_depth} was asked for; "
                             "give one of them, or a pixel format of that depth")
    if bits < max(want, src_bits):
        if compat:
            reason = ("because 10-bit H.264 plays in few players; pass --bit-depth 10 to keep "
                      "the bits in H.264")
        elif pix_fmt is not None or (bit_depth is not None and bit_depth < src_bits):
            reason = "as requested"
        else:
            reason = f"because {key} ({pix}) cannot store {want} bit"
        warnings.warn(f"writing {bits}-bit output from {max(want, src_bits)}-bit data {reason}; "
                      f"--codec h265/prores/ffv1 keep 10 bit or more", stacklevel=2)
    quality = None
    if spec.quality_option:
        quality = spec.default_quality if crf is None else int(crf)
        if not 0 <= quality <= 63:
            raise HiFIInputError(f"crf {crf} is outside 0..63 (lower is better; 18 is near-lossless)")
    elif crf is not None:
        warnings.warn(f"--crf is ignored for codec {key!r} (it has no CRF quality setting)",
                      stacklevel=2)
    return OutputFormat(key, encoder, pix, bits, key == "png", quality)


def check_output_path(path: PathLike, *, is_sequence: bool = False) -> Path:
    """Check that `path` can be written (its directory exists and is writable).

    Raises:
        HiFIInputError: naming the path and what is wrong with it.
    """
    path = Path(path).expanduser()
    if is_sequence:
        if path.exists() and not path.is_dir():
            raise HiFIInputError(f"output {str(path)!r} exists and is not a directory; a PNG "
                                 f"sequence needs a directory path")
        parent = path if path.is_dir() else path.parent
    else:
        if path.is_dir():
            raise HiFIInputError(f"output {str(path)!r} is a directory; give a file name such as "
                                 f"{str(path / 'out.mp4')!r}")
        parent = path.parent
    parent = parent if str(parent) else Path(".")
    if not parent.exists():
        raise HiFIInputError(f"output directory {str(parent)!r} does not exist; create it first")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise HiFIInputError(f"output directory {str(parent)!r} is not writable; choose another "
                             f"output path or fix its permissions")
    return path


# ---------------------------------------------------------------- probing and reading


@dataclass(frozen=True)
class VideoInfo:
    """What `probe_video` found. `frame_count` is estimated from the duration when the
    container does not store it (`frame_count_exact` is then False)."""

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
    image: Any  # torch.Tensor or np.ndarray, float32 [3, H, W] in [0, 1]


def _frame_to_array(frame: av.VideoFrame, color: ColorInfo, sixteen: bool) -> np.ndarray:
    kwargs = {}
    if not frame.format.is_rgb:
        kwargs = {"src_colorspace": _MATRIX_TO_SWS[color.matrix], "src_color_range": color.range}
    rgb = frame.reformat(format="rgb48le" if sixteen else "rgb24", **kwargs)
    return rgb.to_ndarray()


def iter_frames(path: PathLike, *, start: int = 0, every_nth: int = 1,
                max_frames: Optional[int] = None, as_16bit: Optional[bool] = None,
                as_numpy: bool = False) -> Iterator[DecodedFrame]:
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

    Yields:
        `DecodedFrame(index, time, image)`, image float32 `[3, H, W]` RGB in [0, 1].

    Raises:
        HiFIInputError: for unreadable inputs, or a decode error (naming the frame index).
    """
    if start < 0 or every_nth < 1 or (max_frames is not None and max_frames < 0):
        raise HiFIInputError(f"iter_frames: need start >= 0, every_nth >= 1, max_frames >= 0; "
                             f"got start={start}, every_nth={every_nth}, max_frames={max_frames}")
    path, container, stream = _open_input(path)
    with container:
        stream.thread_type = "AUTO"
        cc = stream.codec_context
        fps = _stream_fps(stream)
        base = ColorInfo(cc.color_range or 0, cc.colorspace if cc.colorspace is not None else 2)
        start_pts = stream.start_time or 0
        yielded, index, color, sixteen = 0, -1, None, as_16bit
        if max_frames == 0:
            return
        try:
            for frame in container.decode(stream):
                index += 1
                if index < start or (index - start) % every_nth:
                    continue
                if color is None:
                    color = base.resolved(frame.height, frame.format.name)
                    if sixteen is None:
                        sixteen = _format_bits(frame.format.name) > 8
                arr = _frame_to_array(frame, color, sixteen)
                if sixteen:  # torch has few uint16 kernels: widen first
                    arr = arr.astype(np.int32)
                img = torch.from_numpy(arr).permute(2, 0, 1).contiguous().float()
                img.mul_(1.0 / (65535.0 if sixteen else 255.0))
                time = (float((frame.pts - start_pts) * frame.time_base)
                        if frame.pts is not None and frame.time_base else index / float(fps))
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


# ---------------------------------------------------------------- audio


def _layout_name(channels: int) -> str:
    if channels not in _LAYOUTS:
        raise HiFIInputError(f"{channels} audio channels are not supported (1-6 or 8)")
    return _LAYOUTS[channels]


def read_audio(path: PathLike) -> tuple[torch.Tensor, int]:
    """Decode the first audio stream: (waveform float32 `[channels, samples]`, sample rate).

    Raises:
        HiFIInputError: missing/unreadable file, or a file without audio.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise HiFIInputError(f"audio/video file not found: {str(path)!r}")
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as exc:
        raise HiFIInputError(f"could not read {str(path)!r} ({exc})") from exc
    with container:
        if not container.streams.audio:
            raise HiFIInputError(f"{str(path)!r} has no audio stream")
        stream = container.streams.audio[0]
        channels = stream.codec_context.channels
        rate = stream.codec_context.sample_rate
        resampler = av.AudioResampler(format="fltp", layout=_layout_name(channels), rate=rate)
        chunks = []
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray())
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray())
    data = np.concatenate(chunks, axis=1) if chunks else np.zeros((channels, 0), np.float32)
    return torch.from_numpy(np.ascontiguousarray(data, dtype=np.float32)), rate


def _video_start_seconds(container) -> float:
    if container.streams.video and container.streams.video[0].start_time is not None:
        v = container.streams.video[0]
        return float(v.start_time * v.time_base)
    return 0.0


def _audio_encoder_for(out) -> str:
    return "libopus" if "webm" in out.format.name.split(",")[0] else "aac"


# audio codecs that can be copied into each container family without surprises (PCM in MP4
# for instance fails on unordered channel layouts); anything else is re-encoded
_COPYABLE_AUDIO = {"mp4": {"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"},
                   "mov": {"aac", "mp3", "ac3", "eac3", "alac"},
                   "webm": {"opus", "vorbis"}}


def _can_copy_audio(out, codec: str) -> bool:
    family = out.format.name.split(",")[0]
    allowed = _COPYABLE_AUDIO.get(family)
    return codec in out.supported_codecs and (allowed is None or codec in allowed)


class _AudioFeed:
    """Produces encoded audio packets for one output stream in time order, pulled by time.

    Sources: packets copied from a file, the file decoded (optionally atempo-stretched) and
    re-encoded, or a float waveform encoded. `max_seconds` trims the end.
    """

    def __init__(self, out, *, source: Optional[Path] = None, waveform: Optional[np.ndarray] = None,
                 sample_rate: Optional[int] = None, tempo: float = 1.0,
                 max_seconds: Optional[float] = None):
        self.out = out
        self.max_seconds = max_seconds
        self._inp = None
        self._pending: Optional[tuple[float, list]] = None
        if source is not None:
            self._inp = av.open(str(source))
            ain = self._inp.streams.audio[0]
            offset = _video_start_seconds(self._inp)
            name = ain.codec_context.name
            if tempo == 1.0 and _can_copy_audio(out, name):
                self.stream = out.add_stream_from_template(ain)
                self._items = self._copy(ain, offset)
            else:
                self.stream = self._add_encoder(ain.codec_context.sample_rate,
                                                ain.codec_context.channels)
                self._items = self._encode(self._decoded(ain, offset, tempo))
        else:
            wave = np.asarray(waveform, dtype=np.float32)
            self.stream = self._add_encoder(int(sample_rate), wave.shape[0])
            self._items = self._encode(self._from_waveform(wave, int(sample_rate)))

    def _add_encoder(self, rate: int, channels: int):
        enc = _audio_encoder_for(self.out)
        if enc == "libopus":
            rate = 48000  # Opus only runs at 48 kHz; the resampler converts
        stream = self.out.add_stream(enc, rate=rate, layout=_layout_name(min(channels, 2)
                                                                          if enc == "libopus" else channels))
        if enc == "aac":
            stream.codec_context.bit_rate = 192000 * max(1, channels) // 2
        self._resampler = av.AudioResampler(format=stream.codec_context.format or "fltp",
                                            layout=stream.codec_context.layout, rate=rate)
        return stream

    def _copy(self, ain, offset: float):
        shift = int(round(offset / ain.time_base))
        for pkt in self._inp.demux(ain):
            if pkt.pts is None or not pkt.size:
                continue
            t = float((pkt.pts - shift) * ain.time_base)
            if self.max_seconds is not None and t >= self.max_seconds:
                break
            pkt.pts -= shift
            if pkt.dts is not None:
                pkt.dts -= shift
            pkt.stream = self.stream
            yield t, [pkt]

    def _decoded(self, ain, offset: float, tempo: float):
        graph = None
        if tempo != 1.0:
            if not 0.01 <= tempo <= 100:
                raise HiFIInputError(f"audio tempo {tempo} is outside 0.01..100")
            graph = av.filter.Graph()
            nodes = [graph.add_abuffer(template=ain)]
            left = tempo
            while left < 0.5 - 1e-9:  # atempo takes 0.5..100 per instance: chain halvings
                nodes.append(graph.add("atempo", "0.5"))
                left /= 0.5
            nodes.append(graph.add("atempo", f"{left:.9f}"))
            nodes.append(graph.add("abuffersink"))
            graph.link_nodes(*nodes).configure()
        for frame in self._inp.decode(ain):
            if frame.pts is not None and float(frame.pts * frame.time_base) < offset - 1e-6:
                continue
            if graph is None:
                yield frame
                continue
            graph.push(frame)
            yield from self._drain(graph)
        if graph is not None:
            graph.push(None)
            yield from self._drain(graph)

    @staticmethod
    def _drain(graph):
        while True:
            try:
                yield graph.pull()
            except (av.error.BlockingIOError, av.error.EOFError):
                return

    def _from_waveform(self, wave: np.ndarray, rate: int):
        step = 4096
        for s in range(0, wave.shape[1], step):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(wave[:, s:s + step]),
                                               format="fltp", layout=_layout_name(wave.shape[0]))
            frame.sample_rate = rate
            yield frame

    def _limit(self, rate: int) -> Optional[int]:
        return None if self.max_seconds is None else int(round(self.max_seconds * rate))

    def _encode(self, frames):
        rate = self.stream.codec_context.sample_rate
        done = 0

        def stamped(out):
            nonlocal done
            limit = self._limit(rate)  # read each time: the writer sets it when it closes
            if limit is not None and done + out.samples > limit:
                keep = np.ascontiguousarray(out.to_ndarray()[:, :max(limit - done, 0)])
                out = av.AudioFrame.from_ndarray(keep, format=out.format.name,
                                                 layout=out.layout.name)
                out.sample_rate = rate
            t = done / rate
            out.pts = done
            out.time_base = Fraction(1, rate)
            done += out.samples
            return t, out

        for frame in itertools.chain(frames, [None]):
            if frame is not None:
                frame.pts = None  # re-stamped from the running sample count
            for out in self._resampler.resample(frame):
                limit = self._limit(rate)
                if limit is not None and done >= limit:
                    break
                t, out = stamped(out)
                if out.samples:
                    yield t, self.stream.encode(out)
            limit = self._limit(rate)
            if limit is not None and done >= limit:
                break
        yield math.inf, self.stream.encode(None)

    def pump(self, until: float = math.inf) -> None:
        """Mux every packet that starts before `until` seconds."""
        while True:
            if self._pending is None:
                self._pending = next(self._items, None)
                if self._pending is None:
                    return
            t, packets = self._pending
            if t >= until and until != math.inf:
                return
            for pkt in packets:
                self.out.mux(pkt)
            self._pending = None

    def close(self) -> None:
        if self._inp is not None:
            self._inp.close()
            self._inp = None


def _has_audio(path: Optional[PathLike]) -> bool:
    if path is None:
        return False
    try:
        with av.open(str(path)) as c:
            return bool(c.streams.audio)
    except av.error.FFmpegError:
        return False


def _waveform_array(waveform) -> np.ndarray:
    if isinstance(waveform, dict):  # ComfyUI AUDIO
        waveform = waveform["waveform"]
    if isinstance(waveform, torch.Tensor):
        waveform = waveform.detach().cpu().float().numpy()
    wave = np.asarray(waveform, dtype=np.float32)
    if wave.ndim == 3:
        wave = wave[0]
    if wave.ndim == 1:
        wave = wave[None]
    if wave.ndim != 2:
        raise HiFIInputError(f"audio waveform must be [channels, samples] or [B, channels, "
                             f"samples], got shape {tuple(np.shape(waveform))}")
    return np.clip(wave, -1.0, 1.0)


def write_audio_file(path: PathLike, *, audio_from: Optional[PathLike] = None, waveform=None,
                     sample_rate: Optional[int] = None, tempo: float = 1.0,
                     max_seconds: Optional[float] = None) -> Optional[Path]:
    """Write audio alone (a Matroska file: any codec is copied untouched). None if no audio."""
    if waveform is None and not _has_audio(audio_from):
        return None
    out = av.open(str(path), "w", format="matroska")
    try:
        feed = _AudioFeed(out, source=Path(audio_from) if waveform is None else None,
                          waveform=_waveform_array(waveform) if waveform is not None else None,
                          sample_rate=sample_rate, tempo=tempo, max_seconds=max_seconds)
        feed.pump()
        feed.close()
    finally:
        out.close()
    return Path(path)


# ---------------------------------------------------------------- writing


def _to_hwc(frame, bits: int) -> np.ndarray:
    """Any accepted frame -> uint8/uint16 `[H, W, 3]` (float input clamped to [0, 1])."""
    # more than 8 bits always travels as full-scale 16-bit RGB (rgb48); swscale reduces it
    scale, dtype = (255, np.uint8) if bits <= 8 else (65535, np.uint16)
    if isinstance(frame, np.ndarray) and frame.dtype in (np.uint8, np.uint16):
        if frame.ndim != 3 or frame.shape[2] != 3:
            raise HiFIInputError(f"integer frames must be [H, W, 3], got {frame.shape}")
        src_scale = 255 if frame.dtype == np.uint8 else 65535
        if src_scale == scale:
            return frame
        return np.round(frame.astype(np.float32) * (scale / src_scale)).astype(dtype)
    t = torch.as_tensor(frame).detach()
    if t.dim() != 3 or t.shape[0] != 3 or not t.is_floating_point():
        raise HiFIInputError(f"float frames must be [3, H, W] RGB in [0, 1], got "
                             f"{tuple(t.shape)} {t.dtype}")
    # torch rather than numpy: the multi-threaded kernels matter at 4K
    q = t.to("cpu", torch.float32).clamp(0.0, 1.0).mul(scale).add_(0.5).permute(1, 2, 0)
    if bits <= 8:
        return q.to(torch.uint8).contiguous().numpy()
    return q.to(torch.int32).contiguous().numpy().astype(np.uint16)


class VideoWriter:
    """Encode frames to a video file (or a PNG directory) with optional audio; a context manager.

    Args:
        path: output file (extension picks the container) or directory for `codec="png"`.
        fps: frame rate (Fraction for NTSC rates such as 24000/1001).
        width, height: frame size; every frame must match.
        codec: one of `available_codecs()`.
        crf: quality for h264/h265/vp9/av1 (lower is better); None = codec default.
        pix_fmt: encoder pixel format; None picks one for `bit_depth`.
        bit_depth: 8, 10, 12 or 16; None = 8 unless `source_bit_depth` says more.
        source_bit_depth: bit depth of the material (for the never-silently-lose-bits warning).
        audio_from: copy the first audio stream of this file.
        audio_tempo: time-stretch factor for that audio (1 = copy untouched).
        audio_waveform, audio_sample_rate: mux this float waveform `[C, T]` / `[B, C, T]` (or a
            ComfyUI AUDIO dict as `audio_waveform`) instead.
        trim_audio: cut the audio at the end of the video (default) or keep all of it.
        color: colour tags to write and the matrix/range to convert with (unspecified fields
            follow the module rule).
        start_number: first PNG file number (sequences only).
        options: extra encoder options (strings).
        metadata: container tags, e.g. {"workflow": ..., "prompt": ...}: Matroska keeps any key,
            MP4/MOV are written with movflags=use_metadata_tags so they keep them too (as
            ComfyUI's SaveVideo does), and each PNG of a sequence carries them as text chunks
            (as SaveImage does).

    Raises:
        HiFIInputError: bad codec/extension/pixel format, unwritable path, wrong frame size.
    """

    def __init__(self, path: PathLike, fps, width: int, height: int, *, codec: str = "h264",
                 crf: Optional[int] = None, pix_fmt: Optional[str] = None,
                 bit_depth: Optional[int] = None, source_bit_depth: Optional[int] = None,
                 audio_from: Optional[PathLike] = None, audio_tempo: float = 1.0,
                 audio_waveform=None, audio_sample_rate: Optional[int] = None,
                 trim_audio: bool = True, color: Optional[ColorInfo] = None,
                 start_number: int = 0, options: Optional[dict] = None,
                 metadata: Optional[dict] = None):
        self.fps = Fraction(fps).limit_denominator(1_000_000)
        if self.fps <= 0:
            raise HiFIInputError(f"fps must be positive, got {fps}")
        if width <= 0 or height <= 0:
            raise HiFIInputError(f"frame size {width}x{height} is invalid")
        self.format = resolve_output_format(path, codec, bit_depth=bit_depth, pix_fmt=pix_fmt,
                                            crf=crf, source_bit_depth=source_bit_depth)
        self.path = check_output_path(path, is_sequence=self.format.is_sequence)
        self.width, self.height = int(width), int(height)
        self._check_chroma(av.VideoFormat(self.format.pix_fmt))
        self.frames_written = 0
        self._start_number = int(start_number)
        self._closed = False
        self._audio = None
        self._audio_container = None
        wave = _waveform_array(audio_waveform) if audio_waveform is not None else None
        if wave is not None and not audio_sample_rate:
            audio_sample_rate = (audio_waveform.get("sample_rate")
                                 if isinstance(audio_waveform, dict) else None)
            if not audio_sample_rate:
                raise HiFIInputError("audio_waveform needs audio_sample_rate")
        if audio_from is not None and not Path(audio_from).is_file():
            raise HiFIInputError(f"audio source not found: {str(audio_from)!r}")
        want_audio = wave is not None or _has_audio(audio_from)

        def audio_feed(container):  # the audio end is set at close(), once the length is known
            return _AudioFeed(container, source=Path(audio_from) if wave is None else None,
                              waveform=wave, sample_rate=audio_sample_rate, tempo=audio_tempo)

        color = color or ColorInfo()
        self.color = color.resolved(self.height, self.format.pix_fmt)
        if _is_rgb_format(self.format.pix_fmt):
            self.color = ColorInfo(2, 0, color.primaries, color.transfer)
        self._trim = trim_audio
        self._png_text = {str(k): str(v) for k, v in (metadata or {}).items()}
        if self.format.is_sequence:
            self.path.mkdir(parents=True, exist_ok=True)
            if want_audio:
                self._audio_container = av.open(str(self.path / "audio.mka"), "w", format="matroska")
                self._audio = audio_feed(self._audio_container)
            return
        try:
            self._out = av.open(str(self.path), "w", options=container_options(self.path, metadata))
        except (av.error.FFmpegError, OSError) as exc:
            raise HiFIInputError(f"cannot open {str(self.path)!r} for writing ({exc})") from exc
        try:
            spec = CODECS[self.format.codec]
            opts = dict(spec.options)
            if spec.quality_option and self.format.quality is not None:
                opts[spec.quality_option] = str(self.format.quality)
            opts.update({k: str(v) for k, v in (options or {}).items()})
            bitrate_zero = opts.pop("b", None) == "0"  # libvpx: bit rate 0 = pure CRF mode
            stream = self._out.add_stream(self.format.encoder, rate=self.fps, options=opts)
            stream.width, stream.height = self.width, self.height
            stream.pix_fmt = self.format.pix_fmt
            stream.time_base = 1 / self.fps
            cc = stream.codec_context
            cc.time_base = 1 / self.fps
            if bitrate_zero:
                cc.bit_rate = 0
            cc.color_range = self.color.range
            cc.colorspace = self.color.matrix
            cc.color_primaries = self.color.primaries
            cc.color_trc = self.color.transfer
            if self.format.codec == "h265" and self.path.suffix.lower() in (".mp4", ".mov"):
                stream.codec_tag = "hvc1"  # the tag Apple players require for HEVC
            self._stream = stream
            for key, value in (metadata or {}).items():
                self._out.metadata[str(key)] = str(value)
            if want_audio:
                self._audio = audio_feed(self._out)
        except Exception:
            self._out.close()
            raise

    def _check_chroma(self, vf) -> None:
        if self.format.is_sequence or vf.is_rgb:
            return
        sub_w = vf.chroma_width(self.width) < self.width
        sub_h = vf.chroma_height(self.height) < self.height
        if (sub_w and self.width % 2) or (sub_h and self.height % 2):
            raise HiFIInputError(f"pixel format {self.format.pix_fmt} needs an even width and "
                                 f"height, got {self.width}x{self.height}; crop/pad the video or "
                                 f"pick a 4:4:4 pixel format (e.g. --pix-fmt yuv444p)")

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def write(self, frame) -> None:
        """Encode one frame `[3, H, W]`, a batch `[B, 3, H, W]`, or an integer `[H, W, 3]` array."""
        if self._closed:
            raise HiFIInputError("VideoWriter.write after close()")
        if (isinstance(frame, (torch.Tensor, np.ndarray)) and frame.ndim == 4):
            for f in frame:
                self.write(f)
            return
        arr = _to_hwc(frame, self.format.bit_depth)
        if arr.shape[:2] != (self.height, self.width):
            raise HiFIInputError(f"frame size {arr.shape[1]}x{arr.shape[0]} differs from the "
                                 f"writer's {self.width}x{self.height}")
        index = self.frames_written
        if self.format.is_sequence:
            self._write_png(arr, self._start_number + index)
        else:
            rgb_fmt = "rgb24" if arr.dtype == np.uint8 else "rgb48le"
            vframe = av.VideoFrame.from_ndarray(arr, format=rgb_fmt)
            if _is_rgb_format(self.format.pix_fmt):
                vframe = vframe.reformat(format=self.format.pix_fmt)
            else:
                vframe = vframe.reformat(format=self.format.pix_fmt,
                                         dst_colorspace=_MATRIX_TO_SWS[self.color.matrix],
                                         dst_color_range=self.color.range)
            vframe.pts = index
            vframe.time_base = 1 / self.fps
            for pkt in self._stream.encode(vframe):
                self._out.mux(pkt)
        self.frames_written += 1
        if self._audio is not None:
            self._audio.pump(self.frames_written / float(self.fps))

    def _write_png(self, arr: np.ndarray, number: int) -> None:
        import cv2  # lazy: only PNG sequences need OpenCV

        target = self.path / f"frame_{number:06d}.png"
        tmp = target.with_name(f".{target.name}.tmp.png")
        ok, encoded = cv2.imencode(".png", np.ascontiguousarray(arr[:, :, ::-1]))
        try:
            if not ok:
                raise OSError("OpenCV could not encode the frame")
            tmp.write_bytes(png_with_text(encoded.tobytes(), self._png_text))
        except OSError as error:
            tmp.unlink(missing_ok=True)
            raise HiFIInputError(f"could not write {str(target)!r} ({error}; disk full or not writable?)") from None
        os.replace(tmp, target)  # atomic: an interrupted run never leaves a half-written PNG

    @property
    def duration(self) -> float:
        """Seconds of video written so far."""
        return self.frames_written / float(self.fps)

    def close(self) -> None:
        """Flush the encoder and the audio, and close the file (safe to call twice)."""
        if self._closed:
            return
        self._closed = True
        try:
            if not self.format.is_sequence:
                for pkt in self._stream.encode(None):
                    self._out.mux(pkt)
            if self._audio is not None:
                if self._trim:
                    self._audio.max_seconds = self.duration
                self._audio.pump()
        finally:
            if self._audio is not None:
                self._audio.close()
            if not self.format.is_sequence:
                self._out.close()
            if self._audio_container is not None:
                self._audio_container.close()


# ---------------------------------------------------------------- joining segments


def container_options(path: PathLike, metadata: Optional[dict]) -> dict:
    """Muxer options for writing `metadata` tags: MP4/MOV keep non-standard keys (ComfyUI's
    "workflow" and "prompt") only with movflags=use_metadata_tags, as core SaveVideo sets."""
    if metadata and Path(path).suffix.lower() in (".mp4", ".mov", ".m4v"):
        return {"movflags": "use_metadata_tags"}
    return {}


def _reorder_delay(segments: Sequence[PathLike], fps: Fraction) -> int:
    """The most frames any segment's packets arrive ahead of their display time (B-frame
    reordering): decode times lag display times by this much so that no dts exceeds its pts."""
    delay = 0
    for seg in segments:
        with av.open(str(seg)) as inp:
            src = inp.streams.video[0]
            shown = [round(p.pts * src.time_base * fps) for p in inp.demux(src) if p.size and p.pts is not None]
        delay = max([delay] + [order - index for order, index in enumerate(shown)])
    return delay


def join_segments(segments: Sequence[PathLike], output: PathLike, fps, *,
                  audio_from: Optional[PathLike] = None, audio_tempo: float = 1.0,
                  trim_audio: bool = False, metadata: Optional[dict] = None) -> int:
    """Concatenate encoded segment files into one file without re-encoding the video.

    The segments must come from identically configured encoders (same codec, size, pixel
    format, extradata), as `VideoWriter` produces. Video timestamps are rebuilt from frame
    indices at `fps`, so the result's timing equals one uninterrupted encode. The audio of
    `audio_from` is muxed interleaved (untouched, see `VideoWriter`), trimmed to the video
    length when `trim_audio`. `metadata` are container tags (see `VideoWriter`). The file is
    written next to `output` and renamed over it only when complete.

    Returns:
        The number of video frames in the output.
    """
    if not segments:
        raise HiFIInputError("join_segments: no segments to join")
    fps = Fraction(fps).limit_denominator(1_000_000)
    output = Path(output)
    tmp = output.with_name(f".{output.stem}.joining{output.suffix}")
    first = av.open(str(segments[0]))
    out = av.open(str(tmp), "w", options=container_options(output, metadata))
    frames = 0
    feed = None
    try:
        for key, value in (metadata or {}).items():
            out.metadata[str(key)] = str(value)
        vs = out.add_stream_from_template(first.streams.video[0])
        tag = first.streams.video[0].codec_tag
        if tag and tag.strip("\x00"):
            vs.codec_tag = tag
        if _has_audio(audio_from):
            feed = _AudioFeed(out, source=Path(audio_from), tempo=audio_tempo)
        frame_tb = 1 / fps
        delay = _reorder_delay(segments, fps)
        for seg in segments:
            with av.open(str(seg)) as inp:
                src = inp.streams.video[0]
                tb = src.time_base
                count = 0
                for pkt in inp.demux(src):
                    if not pkt.size or pkt.pts is None:
                        continue
                    pkt.pts = frames + round(pkt.pts * tb * fps)
                    # one evenly spaced decode clock for the whole file: a short segment lags
                    # less (fewer B-frames), and a dts jump at its join would become one long
                    # frame in the container (a wrong average frame rate)
                    pkt.dts = frames + count - delay
                    pkt.duration = 1
                    pkt.time_base = frame_tb
                    pkt.stream = vs
                    if feed is not None:
                        feed.pump(float(pkt.dts * frame_tb))
                    out.mux(pkt)
                    count += 1
                frames += count
        if feed is not None:
            if trim_audio:
                feed.max_seconds = frames / float(fps)
            feed.pump()
    except BaseException:
        for closing in ((feed.close if feed is not None else None), first.close, out.close):
            try:
                if closing is not None:
                    closing()
            except Exception:  # noqa: BLE001 - the first error is the one to report
                pass
        tmp.unlink(missing_ok=True)
        raise
    try:
        if feed is not None:
            feed.close()
        first.close()
        out.close()  # flushes: a full disk or a size limit can fail here
        os.replace(tmp, output)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return frames


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
    avail = available_memory_bytes() if available is None else available
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
