"""`retime_video`: decode -> keyframes -> interpolate -> encode, streaming and resumable."""

from __future__ import annotations

import errno
import hashlib
import itertools
import os
import warnings
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable, List, Optional, Union

import torch


from ..errors import HiFIInputError
from ..progress import CancelCheck, check_cancel
from ..scenes import DEFAULT_SCENE_THRESHOLD, DuplicateSettings, SceneSettings
from ..timeline import ScheduledFrame, interval_schedule, total_output_frames
from ..validation import check_not_an_input
from ..video_io import (OutputFormat, VideoInfo, check_output_path, iter_frames, probe_video,
                        resolve_output_format)
from .interpolators import Interpolator, ModelInterpolator, make_interpolator
from .keyframes import DetectionStats, Keyframe, keyframes
from .output import (WRITE_ERRNOS, _abandon_open_segment, _finish, _finish_partial, _load_or_new_state,
                     _Output, _parts_dir, _probe_writer, _remove_strays)
from .targets import RetimeTarget, X264_PRESETS

PathLike = Union[str, os.PathLike]

# ---------------------------------------------------------------- progress / result


@dataclass(frozen=True)
class RetimeProgress:
    """Reported after every written output frame."""

    frames_done: int
    frames_total: int  # estimate until the input is fully decoded
    source_frames_read: int
    resumed_from: int


@dataclass(frozen=True)
class RetimeResult:
    output: Path
    frames_written: int
    source_frames: int
    fps: Fraction
    ratio: Fraction
    cuts: List[int]
    duplicates_dropped: int
    resumed_from: int
    audio: str  # "copied", "stretched", "dropped", "none"


# ---------------------------------------------------------------- engine


def retime_video(input: PathLike, output: PathLike, *, model=None, settings=None,
                 interpolator: Optional[Interpolator] = None, method: str = "hifi",
                 multiplier: Optional[int] = None, fps=None, slowmo: Optional[int] = None,
                 scene_detect: bool = True, scene_threshold: float = DEFAULT_SCENE_THRESHOLD,
                 dedup: bool = False, dedup_threshold: Optional[float] = None,
                 codec: str = "h264", crf: Optional[int] = None, pix_fmt: Optional[str] = None,
                 bit_depth: Optional[int] = None, preset: Optional[str] = None,
                 slowmo_audio: str = "drop",
                 resume: bool = False, tau_batch: int = 4, segment_seconds: float = 10.0,
                 max_frames: Optional[int] = None, metadata: Optional[dict] = None,
                 progress: Optional[Callable[[RetimeProgress], None]] = None,
                 model_progress: Optional[Callable] = None,
                 cancel: Optional[CancelCheck] = None) -> RetimeResult:
    """Retime a video file into another, streaming (see the module docstring).

    Args:
        input: the source video.
        output: the output file (its extension picks the container), or a directory for
            `codec="png"`. Overwritten if it exists.
        model, settings: a `HiFIModel` and `CascadeSettings` for `method="hifi"`.
        interpolator: a custom `(frame0 [1,3,H,W], frame2, taus) -> [T,3,H,W]` callable
            (overrides `method`).
        method: "hifi", "blend" (cross-fade stand-in) or "dis" (optical-flow baseline).
        multiplier, fps, slowmo: the target, exactly one (see `RetimeTarget`).
        scene_detect, scene_threshold: never interpolate across detected cuts.
        dedup, dedup_threshold: drop duplicate frames and re-time the motion across the gap.
        codec, crf, pix_fmt, bit_depth: output encoding (`bit_depth=None` keeps the source's
            when the codec can; see `video_io.resolve_output_format`).
        preset: x264/x265 speed preset ("ultrafast" ... "veryslow"; default "medium").
        slowmo_audio: "drop" (default) or "stretch" (atempo, pitch kept) for slow motion.
        resume: continue an interrupted run of the same command.
        tau_batch: in-betweens computed per interpolator call (bounds memory).
        segment_seconds: output seconds per segment (what a hard kill can lose).
        max_frames: retime only the first `max_frames` source frames (a quick preview);
            the audio is cut to the same length.
        metadata: container tags for the output file (e.g. a ComfyUI workflow in
            "comment"); not written for image sequences.
        progress: called with a `RetimeProgress` after every output frame.
        model_progress: passed to `interpolate` (patch-level `ProgressEvent`s, method "hifi").
        cancel: polled between frames and inside the model; True (or raising) stops.

    Returns:
        A `RetimeResult`.

    Raises:
        HiFIInputError: bad input file, output path, codec or settings (before any work).
        Cancelled / KeyboardInterrupt: after writing the partial output (see above).
    """
    target = RetimeTarget(multiplier=multiplier, fps=fps, slowmo=slowmo)
    _check_options(slowmo_audio, tau_batch, segment_seconds, max_frames)
    scene = SceneSettings(threshold=scene_threshold) if scene_detect else None
    dups = (DuplicateSettings(**({"threshold": dedup_threshold} if dedup_threshold else {}))
            if dedup else None)
    info, fmt, out_path = check_retime_io(input, output, codec=codec, crf=crf, pix_fmt=pix_fmt,
                                          bit_depth=bit_depth)
    in_path = Path(info.path)
    ratio, out_fps = target.resolve(info.fps)
    method_key = method if interpolator is None else "custom"
    if interpolator is None:
        interpolator = make_interpolator(method, model, settings, progress=model_progress,
                                         cancel=cancel)
    audio_mode, audio_tempo = _audio_plan(target, info, slowmo_audio)
    writer_kwargs = _writer_kwargs(info, fmt, out_fps, preset)
    # fail now, not after an hour of work, if the encoder refuses the size/format
    _probe_writer(out_path, fmt, writer_kwargs)
    settings_key = dict(_settings_key(ratio, out_fps, fmt, scene, dups, method_key, settings, tau_batch,
                                      segment_seconds, slowmo_audio, model), preset=preset, max_frames=max_frames)
    source_frames = info.frame_count if max_frames is None else min(info.frame_count, max_frames)
    out = _open_output(out_path, fmt, in_path, settings_key, resume, writer_kwargs,
                       max(1, round(segment_seconds * float(out_fps))), metadata)
    resumed_from = out.frames_done
    stats = DetectionStats()
    estimate = total_output_frames(source_frames, ratio)
    trim_audio = max_frames is not None

    def report(done: int) -> None:
        if progress is not None:
            total = estimate if stats.source_frames < source_frames else max(estimate, done)
            progress(RetimeProgress(done, max(total, done), stats.source_frames, resumed_from))

    pairs = _PairWriter(out, interpolator, tau_batch, cancel, report)
    try:
        _walk_keyframes(in_path, ratio, scene, dups, stats, max_frames, pairs.emit)
        out.close_segment()
    except OSError as error:
        if error.errno not in WRITE_ERRNOS:
            _finish_partial(out, in_path, audio_mode, audio_tempo)
            raise
        raise _write_failure(error, out_path, out) from None
    except BaseException:
        _finish_partial(out, in_path, audio_mode, audio_tempo)
        raise
    if out.frames_done == 0:
        raise HiFIInputError(f"{str(in_path)!r} produced no frames")
    try:
        _finish(out, in_path, out_fps, audio_mode, audio_tempo, trim_audio)
    except OSError as error:
        if error.errno not in WRITE_ERRNOS:
            raise
        raise HiFIInputError(
            f"joining the finished segments into {str(out_path)!r} failed: {error.strerror or error} "
            f"(errno {errno.errorcode.get(error.errno, error.errno)}); no partial file was left. All "
            f"{out.frames_done} frames are kept in {str(out.parts)!r}: free space (or raise the "
            "file-size limit) and run the same command with --resume") from None
    return RetimeResult(out_path, out.frames_done, stats.source_frames, out_fps, ratio,
                        list(stats.cuts), stats.duplicates, resumed_from, audio_mode)


def _writer_kwargs(info: VideoInfo, fmt: OutputFormat, out_fps: Fraction, preset: Optional[str]) -> dict:
    """`VideoWriter` arguments for every segment of the output."""
    if preset is not None and (fmt.codec not in ("h264", "h265") or preset not in X264_PRESETS):
        raise HiFIInputError(f"preset {preset!r} needs --codec h264 or h265 and one of "
                             f"{', '.join(X264_PRESETS)}")
    return dict(fps=out_fps, width=info.width, height=info.height, codec=fmt.codec, crf=fmt.quality,
                pix_fmt=fmt.pix_fmt, color=info.color, options={"preset": preset} if preset else None)


def _open_output(out_path: Path, fmt: OutputFormat, in_path: Path, settings_key: dict, resume: bool,
                 writer_kwargs: dict, segment_frames: int, metadata: Optional[dict]) -> _Output:
    """The output with its resume state (new, or the interrupted run's), strays removed."""
    state = _load_or_new_state(out_path, fmt, in_path, settings_key, resume)
    _parts_dir(out_path, fmt).mkdir(parents=True, exist_ok=True)
    out = _Output(out_path, fmt, writer_kwargs, state, segment_frames, metadata)
    _remove_strays(out)
    return out


def _check_options(slowmo_audio: str, tau_batch: int, segment_seconds: float, max_frames: Optional[int]) -> None:
    if slowmo_audio not in ("drop", "stretch"):
        raise HiFIInputError(f"slowmo_audio={slowmo_audio!r} must be 'drop' or 'stretch'")
    if tau_batch < 1 or segment_seconds <= 0:
        raise HiFIInputError("tau_batch must be >= 1 and segment_seconds > 0")
    if max_frames is not None and max_frames < 2:
        raise HiFIInputError(f"max_frames={max_frames}: interpolation needs at least 2 source frames")


def _write_failure(error: OSError, out_path: Path, out: _Output) -> HiFIInputError:
    """A full disk or a size limit while writing: the open segment goes, the finished stay."""
    kept = _abandon_open_segment(out)
    return HiFIInputError(
        f"writing {str(out_path)!r} failed: {error.strerror or error} (errno {errno.errorcode.get(error.errno, error.errno)}). "
        f"The unfinished segment was removed; {kept} finished frames are kept in {str(out.parts)!r}: "
        "free space (or raise the file-size limit) and run the same command with --resume, "
        "or delete that folder")


def _audio_plan(target: RetimeTarget, info: VideoInfo, slowmo_audio: str) -> tuple[str, float]:
    """(what happens to the audio: copied / stretched / dropped / none, its tempo)."""
    if not info.has_audio:
        return "none", 1.0
    if target.keeps_duration:
        return "copied", 1.0
    if slowmo_audio == "stretch":
        return "stretched", 1.0 / float(target.slowmo)
    return "dropped", 1.0


class _PairWriter:
    """Writes one keyframe pair's share of the schedule: originals, repeats and in-betweens.

    In-betweens are computed in fixed chunks of the pair's full tau list (so a resumed run
    makes exactly the same calls) and written as soon as their chunk is ready, so at most one
    chunk is held. A model interpolator is told the pair's index (its noise is the pair's).
    """

    def __init__(self, out: _Output, interpolator: Interpolator, tau_batch: int,
                 cancel: Optional[CancelCheck], report: Callable[[int], None]):
        self.out, self.interpolator, self.tau_batch = out, interpolator, tau_batch
        self.cancel, self.report = cancel, report

    def _interpolate(self, a: Keyframe, b: Keyframe, taus: List[float]) -> torch.Tensor:
        if isinstance(self.interpolator, ModelInterpolator):
            return self.interpolator(a.image[None], b.image[None], taus, pair=a.position)
        return self.interpolator(a.image[None], b.image[None], taus)

    def emit(self, schedule: List[ScheduledFrame], a: Keyframe, b: Optional[Keyframe]) -> None:
        todo = [s for s in schedule if s.index >= self.out.frames_done]
        if not todo:
            return
        between = [s for s in schedule if s.mode == "interpolate"]
        chunk_of = {s.index: n // self.tau_batch for n, s in enumerate(between)}
        made = {}
        for s in todo:
            if s.mode == "interpolate":
                if s.index not in made:
                    c = chunk_of[s.index]
                    chunk = between[c * self.tau_batch:(c + 1) * self.tau_batch]
                    check_cancel(self.cancel)
                    made = dict(zip((f.index for f in chunk), self._interpolate(a, b, [f.tau for f in chunk])))
                img = made.pop(s.index)
            else:
                img = a.image if s.source == a.position else b.image
            self.out.write(s.index, img)
            self.report(self.out.frames_done)
        check_cancel(self.cancel)


def _walk_keyframes(in_path: Path, ratio: Fraction, scene: Optional[SceneSettings],
                    dups: Optional[DuplicateSettings], stats: DetectionStats, max_frames: Optional[int],
                    emit: Callable[[List[ScheduledFrame], Keyframe, Optional[Keyframe]], None]) -> None:
    """Decode, find keyframes and hand every interval's schedule to `emit`, in order."""
    prev = lookahead = None
    # with max_frames one more frame is read: the partner of the last interval (a preview's
    # tail moves toward the next real frame instead of holding the last one); not output
    frames = itertools.islice(iter_frames(in_path), None if max_frames is None else max_frames + 1)
    for key in keyframes(frames, scene=scene, dedup=dups, stats=stats):
        if max_frames is not None and key.position >= max_frames:
            lookahead = key
            break
        if prev is not None:
            emit(interval_schedule(prev.position, key.position, ratio, cut=key.cut_before), prev, key)
        prev = key
    if max_frames is not None:
        _forget_lookahead(stats, max_frames, lookahead)
    if prev is not None and lookahead is not None and not lookahead.cut_before:
        emit(interval_schedule(prev.position, lookahead.position, ratio), prev, lookahead)
    elif prev is not None:
        emit(interval_schedule(prev.position, stats.source_frames, ratio, last=True), prev, None)


def check_retime_io(input: PathLike, output: PathLike, *, codec: str = "h264",
                    crf: Optional[int] = None, pix_fmt: Optional[str] = None,
                    bit_depth: Optional[int] = None) -> tuple[VideoInfo, OutputFormat, Path]:
    """Validate the input video, the output path and the encoding before any work.

    Returns:
        (input info, resolved output format, output path).

    Raises:
        HiFIInputError: naming the bad file, path, codec or format and how to fix it.
    """
    info = probe_video(input)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fmt = resolve_output_format(output, codec, bit_depth=bit_depth, pix_fmt=pix_fmt, crf=crf,
                                    source_bit_depth=info.bit_depth)
    for w in caught:  # re-issued so they point at the caller
        warnings.warn(str(w.message), stacklevel=3)
    out_path = check_output_path(output, is_sequence=fmt.is_sequence)
    check_not_an_input(out_path, [info.path])
    return info, fmt, out_path


def _settings_key(ratio, out_fps, fmt, scene, dups, method, settings, tau_batch, segment_seconds,
                  slowmo_audio, model) -> dict:
    model_id = None
    if model is not None:
        digest = hashlib.sha256()
        for name, tensor in sorted(model.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().view(-1)[:64].numpy().tobytes())
        model_id = digest.hexdigest()[:16]
    cascade = None
    if settings is not None:
        cascade = {k: (str(v) if not isinstance(v, (int, float, str, bool, type(None))) else v)
                   for k, v in asdict(settings).items() if k not in ("device", "memory_budget", "patch_batch")}
    return {"ratio": str(ratio), "fps": str(out_fps), "codec": fmt.codec, "pix_fmt": fmt.pix_fmt,
            "quality": fmt.quality, "scene": asdict(scene) if scene else None,
            "dedup": asdict(dups) if dups else None, "method": method, "cascade": cascade,
            "model": model_id, "tau_batch": tau_batch, "segment_seconds": segment_seconds,
            "slowmo_audio": slowmo_audio}


def _forget_lookahead(stats: DetectionStats, max_frames: int, lookahead: Optional[Keyframe]) -> None:
    """Count only the first `max_frames` source frames: the extra frame read as the tail's
    partner is neither a source frame of the output, nor its cut nor its duplicate."""
    if stats.source_frames > max_frames:
        if lookahead is None:  # read, and dropped as a duplicate
            stats.duplicates -= 1
        stats.cuts = [c for c in stats.cuts if c < max_frames]
        stats.source_frames = max_frames


# the output side failed: disk full, file-size limit, quota, read-only or failing disk
