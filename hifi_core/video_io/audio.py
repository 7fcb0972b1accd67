"""Audio beside the video: read, copy, re-encode, time-stretch, interleave."""

from __future__ import annotations

import itertools
import math
import os
from fractions import Fraction
from pathlib import Path
from typing import Optional, Union

import av
import numpy as np
import torch

from ..errors import HiFIInputError

from .formats import _LAYOUTS

PathLike = Union[str, os.PathLike]

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
    """Write audio alone to `path` (a Matroska file: any codec is copied untouched).

    Args:
        audio_from (path or None): a file whose first audio stream is copied.
        waveform, sample_rate: or a float waveform [channels, samples] in [-1, 1] at this rate.
        tempo (float, default 1.0): time-stretch factor (FFmpeg atempo, pitch kept; re-encoded).
        max_seconds (float or None): cut the audio to this length.

    Returns:
        The path written, or None when there was no audio.
    """
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
