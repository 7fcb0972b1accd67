"""What a retime looks for in the source, how it encodes, and how the run is cut up.

Three small groups of `retime_video` settings, each validated when built, so a bad value
fails before any decoding starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..errors import HiFIInputError
from ..scenes import DEFAULT_SCENE_THRESHOLD, DuplicateSettings, SceneSettings
from .targets import X264_PRESETS

SLOWMO_AUDIO = ("drop", "stretch")


@dataclass(frozen=True)
class Detection:
    """Scene cuts and duplicate frames in the source.

    Attributes:
        scene_cuts (bool, default True): never interpolate across a detected cut (the nearer
            frame is repeated instead).
        scene_threshold (float, default 0.15): the absolute cut-score threshold, in (0, 1]
            (see `hifi_core.scenes`).
        dedup (bool, default False): drop duplicate frames and re-time the motion across them.
        dedup_threshold (float or None, default None = 0.004): mean thumbnail difference
            below which a frame duplicates the last kept one.
    """

    scene_cuts: bool = True
    scene_threshold: float = DEFAULT_SCENE_THRESHOLD
    dedup: bool = False
    dedup_threshold: Optional[float] = None

    def scene_settings(self) -> Optional[SceneSettings]:
        """The cut detector's settings, or None when cuts are not looked for."""
        return SceneSettings(threshold=self.scene_threshold) if self.scene_cuts else None

    def duplicate_settings(self) -> Optional[DuplicateSettings]:
        """The duplicate detector's settings, or None when duplicates are kept."""
        if not self.dedup:
            return None
        return DuplicateSettings(threshold=self.dedup_threshold) if self.dedup_threshold else DuplicateSettings()


@dataclass(frozen=True)
class Encoding:
    """How the output is written.

    Attributes:
        codec (str, default "h264"): "h264", "h265", "prores", "ffv1", "vp9", "png", ...
            (see `hifi_core.video_io.formats`).
        crf (int or None): the codec's quality (lower is better); None = its default.
        pix_fmt (str or None): an explicit pixel format; None = chosen from codec and depth.
        bit_depth (int or None): 8, 10, 12 or 16; None keeps the source's where the codec can.
        preset (str or None): x264/x265 speed preset, "ultrafast" ... "veryslow"; None =
            "medium". Only for h264 and h265.
        slowmo_audio (str, default "drop"): slow motion drops the audio, or "stretch"es it
            (atempo, pitch kept).
        metadata (dict or None): container tags (e.g. a ComfyUI workflow); not written for
            image sequences.
    """

    codec: str = "h264"
    crf: Optional[int] = None
    pix_fmt: Optional[str] = None
    bit_depth: Optional[int] = None
    preset: Optional[str] = None
    slowmo_audio: str = "drop"
    metadata: Optional[dict] = None

    def __post_init__(self) -> None:
        if self.slowmo_audio not in SLOWMO_AUDIO:
            raise HiFIInputError(f"slowmo_audio={self.slowmo_audio!r} must be 'drop' or 'stretch'")
        if self.preset is not None and (self.codec not in ("h264", "h265") or self.preset not in X264_PRESETS):
            raise HiFIInputError(f"preset {self.preset!r} needs --codec h264 or h265 and one of "
                                 f"{', '.join(X264_PRESETS)}")


@dataclass(frozen=True)
class RunOptions:
    """How the run is cut up, resumed, limited and spread over threads.

    Attributes:
        resume (bool, default False): continue an interrupted run of the same command.
        tau_batch (int, default 4): in-betweens computed per interpolator call (bounds memory).
        segment_seconds (float, default 10.0): output seconds per segment (what a hard kill
            can lose).
        max_frames (int or None): retime only the first `max_frames` source frames (a quick
            preview; the audio is cut to the same length); at least 2.
        pipeline (bool or None, default None): True decodes in one thread (a few frames
            ahead) and encodes in another (a few frames behind) while the interpolator runs,
            so it rarely waits for either (`hifi_core.retime.pipeline`); the same frames
            either way. False runs everything in the caller's thread, one step after the
            other. None: on, except when a HiFI model on the CPU does the work, whose cores
            the threads would only take (on 2 cores the pipelined runs were 3-29 % slower,
            and at 1080p 260 MB larger; docs/benchmarks.md). With the pipeline a custom
            interpolator must return a new tensor on every call (the encoder may still be
            reading the last one).
    """

    resume: bool = False
    tau_batch: int = 4
    segment_seconds: float = 10.0
    max_frames: Optional[int] = None
    pipeline: Optional[bool] = None

    def __post_init__(self) -> None:
        if self.tau_batch < 1 or self.segment_seconds <= 0:
            raise HiFIInputError("tau_batch must be >= 1 and segment_seconds > 0")
        if self.max_frames is not None and self.max_frames < 2:
            raise HiFIInputError(f"max_frames={self.max_frames}: interpolation needs at least 2 source frames")
