"""Joining encoded segments into one file without re-encoding (resumable retimes)."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Optional, Sequence, Union

import av

from ..errors import HiFIInputError

from .audio import _AudioFeed, _has_audio

PathLike = Union[str, os.PathLike]

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
    `audio_from` is muxed interleaved (untouched, see `VideoWriter`; time-stretched when
    `audio_tempo` != 1), trimmed to the video length when `trim_audio`. `metadata` are container tags (see `VideoWriter`). The file is
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
