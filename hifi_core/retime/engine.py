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
from ..timeline import ScheduledFrame, interval_schedule, total_output_frames
from ..validation import check_not_an_input
from ..video_io import (OutputFormat, VideoInfo, check_output_path, iter_frames, probe_video,
                        resolve_output_format)
from ..interpolate import Interpolator
from .interpolators import FrameInterpolator, make_interpolator
from .keyframes import DetectionStats, Keyframe, keyframes
from .output import (WRITE_ERRNOS, _abandon_open_segment, _finish, _finish_partial, _load_or_new_state,
                     _Output, _parts_dir, _probe_writer, _remove_strays)
from .options import Detection, Encoding, RunOptions
from .targets import RetimeTarget

PathLike = Union[str, os.PathLike]

# ---------------------------------------------------------------- progress / result


@dataclass(frozen=True)
class RetimeProgress:
    """Reported after every written output frame.

    Attributes:
        frames_done (int): output frames written, the resumed ones included.
        frames_total (int): output frames in all (an estimate until the input is fully read).
        source_frames_read (int): source frames decoded so far.
        resumed_from (int): the output frame this run started at (0 for a fresh run).
    """

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


def retime_video(input: PathLike, output: PathLike, target: RetimeTarget, *, model=None, settings=None,
                 method: str = "hifi", interpolator: Optional[FrameInterpolator] = None,
                 detection: Detection = Detection(), encoding: Encoding = Encoding(),
                 run: RunOptions = RunOptions(),
                 progress: Optional[Callable[[RetimeProgress], None]] = None,
                 model_progress: Optional[Callable] = None,
                 cancel: Optional[CancelCheck] = None) -> RetimeResult:
    """Retime a video file into another, streaming (see the package docstring).

    Args:
        input: the source video.
        output: the output file (its extension picks the container), or a directory for
            `codec="png"`. Overwritten if it exists.
        target (RetimeTarget): a multiplier, a target fps or slow motion.
        model, settings: a `HiFIModel` and `CascadeSettings` for `method="hifi"`.
        method (str, default "hifi"): "hifi", "blend" (cross-fade stand-in) or "dis"
            (optical-flow baseline).
        interpolator: a custom `(frame0 [1,3,H,W], frame2, taus) -> [T,3,H,W]` callable
            (overrides `method`); a `hifi_core.Interpolator` is also told each pair's index.
        detection (Detection): scene cuts and duplicates.
        encoding (Encoding): codec, quality, pixel format, preset, slow-motion audio, tags.
        run (RunOptions): resume, tau batch, segment length, a preview's frame limit.
        progress: called with a `RetimeProgress` after every output frame.
        model_progress: passed to `interpolate` (patch-level `ProgressEvent`s, method "hifi").
        cancel: polled between frames and inside the model; True (or raising) stops.

    Returns:
        A `RetimeResult`.

    Raises:
        HiFIInputError: bad input file, output path, codec or settings (before any work).
        Cancelled / KeyboardInterrupt: after writing the partial output (see above).
    """
    info, fmt, out_path = check_retime_io(input, output, codec=encoding.codec, crf=encoding.crf,
                                          pix_fmt=encoding.pix_fmt, bit_depth=encoding.bit_depth)
    in_path = Path(info.path)
    ratio, out_fps = target.resolve(info.fps)
    method_key = method if interpolator is None else "custom"
    if interpolator is None:
        interpolator = make_interpolator(method, model, settings, progress=model_progress, cancel=cancel)
    audio_mode, audio_tempo = _audio_plan(target, info, encoding.slowmo_audio)
    writer_kwargs = _writer_kwargs(info, fmt, out_fps, encoding.preset)
    # fail now, not after an hour of work, if the encoder refuses the size/format
    _probe_writer(out_path, fmt, writer_kwargs)
    settings_key = _settings_key(ratio, out_fps, fmt, detection, method_key, settings, run, encoding, model)
    out = _open_output(out_path, fmt, in_path, settings_key, run.resume, writer_kwargs,
                       max(1, round(run.segment_seconds * float(out_fps))), encoding.metadata)
    source_frames = info.frame_count if run.max_frames is None else min(info.frame_count, run.max_frames)
    stats = DetectionStats()
    report = _reporter(progress, stats, source_frames, total_output_frames(source_frames, ratio),
                       out.frames_done)
    pairs = _PairWriter(out, interpolator, run.tau_batch, cancel, report)
    try:
        _walk_keyframes(in_path, ratio, detection, stats, run.max_frames, pairs.emit)
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
    _join(out, in_path, out_fps, audio_mode, audio_tempo, trim_audio=run.max_frames is not None)
    return RetimeResult(out_path, out.frames_done, stats.source_frames, out_fps, ratio,
                        list(stats.cuts), stats.duplicates, out.resumed_from, audio_mode)


def _reporter(progress: Optional[Callable[[RetimeProgress], None]], stats: DetectionStats,
              source_frames: int, estimate: int, resumed_from: int) -> Callable[[int], None]:
    """The per-frame progress call: the total is an estimate until the input is fully read."""
    def report(done: int) -> None:
        if progress is not None:
            total = estimate if stats.source_frames < source_frames else max(estimate, done)
            progress(RetimeProgress(done, max(total, done), stats.source_frames, resumed_from))
    return report


def _join(out: _Output, in_path: Path, out_fps: Fraction, audio_mode: str, audio_tempo: float,
          trim_audio: bool) -> None:
    """Join the finished segments with the audio; a full disk keeps the segments for --resume."""
    try:
        _finish(out, in_path, out_fps, audio_mode, audio_tempo, trim_audio)
    except OSError as error:
        if error.errno not in WRITE_ERRNOS:
            raise
        raise HiFIInputError(
            f"joining the finished segments into {str(out.output)!r} failed: {error.strerror or error} "
            f"(errno {errno.errorcode.get(error.errno, error.errno)}); no partial file was left. All "
            f"{out.frames_done} frames are kept in {str(out.parts)!r}: free space (or raise the "
            "file-size limit) and run the same command with --resume") from None


def _writer_kwargs(info: VideoInfo, fmt: OutputFormat, out_fps: Fraction, preset: Optional[str]) -> dict:
    """`VideoWriter` arguments for every segment of the output."""
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

    def __init__(self, out: _Output, interpolator: FrameInterpolator, tau_batch: int,
                 cancel: Optional[CancelCheck], report: Callable[[int], None]):
        self.out, self.interpolator, self.tau_batch = out, interpolator, tau_batch
        self.cancel, self.report = cancel, report

    def _interpolate(self, a: Keyframe, b: Keyframe, taus: List[float]) -> torch.Tensor:
        if isinstance(self.interpolator, Interpolator):
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


def _walk_keyframes(in_path: Path, ratio: Fraction, detection: Detection, stats: DetectionStats,
                    max_frames: Optional[int],
                    emit: Callable[[List[ScheduledFrame], Keyframe, Optional[Keyframe]], None]) -> None:
    """Decode, find keyframes and hand every interval's schedule to `emit`, in order."""
    prev = lookahead = None
    # with max_frames one more frame is read: the partner of the last interval (a preview's
    # tail moves toward the next real frame instead of holding the last one); not output
    frames = itertools.islice(iter_frames(in_path), None if max_frames is None else max_frames + 1)
    for key in keyframes(frames, scene=detection.scene_settings(), dedup=detection.duplicate_settings(),
                         stats=stats):
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

    Args:
        input, output: the source video and the output file (or folder for "png").
        codec, crf, pix_fmt, bit_depth: as `Encoding`'s.

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


def _settings_key(ratio: Fraction, out_fps: Fraction, fmt: OutputFormat, detection: Detection, method: str,
                  settings, run: RunOptions, encoding: Encoding, model) -> dict:
    """Everything that shapes the output frames: a resume must find the same key."""
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
    scene, dups = detection.scene_settings(), detection.duplicate_settings()
    return {"ratio": str(ratio), "fps": str(out_fps), "codec": fmt.codec, "pix_fmt": fmt.pix_fmt,
            "quality": fmt.quality, "scene": asdict(scene) if scene else None,
            "dedup": asdict(dups) if dups else None, "method": method, "cascade": cascade,
            "model": model_id, "tau_batch": run.tau_batch, "segment_seconds": run.segment_seconds,
            "slowmo_audio": encoding.slowmo_audio, "preset": encoding.preset, "max_frames": run.max_frames}


def _forget_lookahead(stats: DetectionStats, max_frames: int, lookahead: Optional[Keyframe]) -> None:
    """Count only the first `max_frames` source frames: the extra frame read as the tail's
    partner is neither a source frame of the output, nor its cut nor its duplicate."""
    if stats.source_frames > max_frames:
        if lookahead is None:  # read, and dropped as a duplicate
            stats.duplicates -= 1
        stats.cuts = [c for c in stats.cuts if c < max_frames]
        stats.source_frames = max_frames


# the output side failed: disk full, file-size limit, quota, read-only or failing disk
