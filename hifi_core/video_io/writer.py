"""`VideoWriter`: frames to a video file or a PNG sequence, with audio and tags."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Callable, Optional, Union

import av
import numpy as np
import torch

from ..errors import HiFIInputError
from ..image_io import png_with_text

from .audio import _AudioFeed, _has_audio, _waveform_array
from .formats import CODECS, ColorInfo, _MATRIX_TO_SWS, _is_rgb_format, check_output_path, resolve_output_format
from .segments import container_options

PathLike = Union[str, os.PathLike]

# ---------------------------------------------------------------- writing

ENCODE_BAND_ROWS = 256  # rows quantized at a time


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
    out = np.empty((t.shape[1], t.shape[2], 3), dtype)
    for top in range(0, t.shape[1], ENCODE_BAND_ROWS):  # float32 bands, not a float32 frame
        out[top:top + ENCODE_BAND_ROWS] = _quantize(t[:, top:top + ENCODE_BAND_ROWS], scale)
    return out


def _quantize(rows: torch.Tensor, scale: int) -> np.ndarray:
    """Float `[3, h, W]` (any precision, any device) -> integer `[h, W, 3]` codes of `scale`."""
    # torch rather than numpy: the multi-threaded kernels matter at 4K
    # (scaling before clamping gives the same values: clamp(x, 0, 1) * s == clamp(x * s, 0, s))
    q = rows.to("cpu", torch.float32).mul(scale).clamp_(0.0, scale).add_(0.5).permute(1, 2, 0)
    return q.to(torch.uint8 if scale == 255 else torch.int32).numpy()


def _audio_feed_opener(audio_from: Optional[PathLike], audio_tempo: float, audio_waveform,
                       audio_sample_rate: Optional[int]) -> Optional[Callable]:
    """Check the audio inputs; returns `container -> _AudioFeed`, or None when there is no audio."""
    wave = _waveform_array(audio_waveform) if audio_waveform is not None else None
    if wave is not None and not audio_sample_rate:
        audio_sample_rate = (audio_waveform.get("sample_rate")
                             if isinstance(audio_waveform, dict) else None)
        if not audio_sample_rate:
            raise HiFIInputError("audio_waveform needs audio_sample_rate")
    if audio_from is not None and not Path(audio_from).is_file():
        raise HiFIInputError(f"audio source not found: {str(audio_from)!r}")
    if wave is None and not _has_audio(audio_from):
        return None

    def audio_feed(container):  # the audio end is set at close(), once the length is known
        return _AudioFeed(container, source=Path(audio_from) if wave is None else None,
                          waveform=wave, sample_rate=audio_sample_rate, tempo=audio_tempo)

    return audio_feed


def _encoder_options(fmt, extra: Optional[dict]) -> dict:
    """The codec's own options, its quality setting and the caller's extra options, as strings."""
    spec = CODECS[fmt.codec]
    opts = dict(spec.options)
    if spec.quality_option and fmt.quality is not None:
        opts[spec.quality_option] = str(fmt.quality)
    opts.update({k: str(v) for k, v in (extra or {}).items()})
    return opts


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
        audio_feed = _audio_feed_opener(audio_from, audio_tempo, audio_waveform, audio_sample_rate)
        self.color = self._resolve_color(color or ColorInfo())
        self._trim = trim_audio
        self._png_text = {str(k): str(v) for k, v in (metadata or {}).items()}
        if self.format.is_sequence:
            self._open_sequence(audio_feed)
        else:
            self._open_container(audio_feed, options, metadata)

    def _resolve_color(self, color: ColorInfo) -> ColorInfo:
        """The colour tags to write: unspecified ones by the module rule; full range, RGB matrix for RGB."""
        resolved = color.resolved(self.height, self.format.pix_fmt)
        if _is_rgb_format(self.format.pix_fmt):
            return ColorInfo(2, 0, color.primaries, color.transfer)
        return resolved

    def _open_sequence(self, audio_feed: Optional[Callable]) -> None:
        """Create the PNG directory, with the audio in audio.mka beside the frames."""
        self.path.mkdir(parents=True, exist_ok=True)
        if audio_feed is not None:
            self._audio_container = av.open(str(self.path / "audio.mka"), "w", format="matroska")
            self._audio = audio_feed(self._audio_container)

    def _open_container(self, audio_feed: Optional[Callable], options: Optional[dict],
                        metadata: Optional[dict]) -> None:
        """Open the video file with its video stream, tags and audio; closed again if any of it fails."""
        try:
            self._out = av.open(str(self.path), "w", options=container_options(self.path, metadata))
        except (av.error.FFmpegError, OSError) as exc:
            raise HiFIInputError(f"cannot open {str(self.path)!r} for writing ({exc})") from exc
        try:
            self._stream = self._add_video_stream(options)
            for key, value in (metadata or {}).items():
                self._out.metadata[str(key)] = str(value)
            if audio_feed is not None:
                self._audio = audio_feed(self._out)
        except Exception:
            self._out.close()
            raise

    def _add_video_stream(self, options: Optional[dict]):
        """The encoder stream: codec options, frame size, pixel format, time base and colour tags."""
        opts = _encoder_options(self.format, options)
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
        return stream

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
