"""`retime_video`: decode -> keyframes -> interpolate -> encode, streaming and resumable."""

from __future__ import annotations

import errno
import hashlib
import os
import time
import warnings
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator, List, Optional, Union

import torch


from ..distributed import Dist
from ..errors import HiFIInputError
from ..progress import CancelCheck, check_cancel
from ..timeline import ScheduledFrame, first_output_at, interval_schedule, total_output_frames
from ..validation import check_not_an_input
from ..video_io import (OutputFormat, VideoInfo, check_output_path, iter_frames,
                        probe_video, resolve_output_format)
from ..interpolate import Interpolator
from .interpolators import FrameInterpolator, for_decoded_frames, make_interpolator
from .distributed import Share, Terminate, agreed, either, gather, plan_share
from .keyframes import DetectionStats, Keyframe, keyframes
from .output import (WRITE_ERRNOS, _abandon_open_segment, _clear_output, _finish, _finish_partial,
                     _load_or_new_state, _Output, _parts_dir, _probe_writer, _remove_strays, _state_path)
from .options import Detection, Encoding, RunOptions
from .pipeline import EncodeThread, ReadAhead, queue_depths
from .targets import RetimeTarget

PathLike = Union[str, os.PathLike]

# ---------------------------------------------------------------- progress / result


@dataclass(frozen=True)
class RetimeProgress:
    """Reported in the caller's thread as output frames are written.

    Without the pipeline: one event per frame written. With it (`RunOptions.pipeline`, the
    default) the encoder writes in its own thread: an event comes when a frame is handed to
    it and the written count has moved (it may jump by several frames), and once more when
    the encoder stops, so the last event counts exactly the frames written (also after a
    cancel or an error).

    Attributes:
        frames_done (int): output frames written (encoded, not merely queued), the resumed
            ones included.
        frames_total (int): output frames in all (an estimate until the input is fully read).
        source_frames_read (int): source frames decoded so far.
        resumed_from (int): the output frame this run started at (0 for a fresh run).

    One of several processes (`distributed`) counts its own share: frames_done, frames_total
    and resumed_from are relative to the share's first output frame.
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
    seconds: float = 0.0  # this call's wall time
    interpolation_seconds: float = 0.0  # of which inside the interpolator (this process)


# ---------------------------------------------------------------- engine


def retime_video(input: PathLike, output: PathLike, target: RetimeTarget, *, model=None, settings=None,
                 method: str = "hifi", interpolator: Optional[FrameInterpolator] = None,
                 detection: Detection = Detection(), encoding: Encoding = Encoding(),
                 run: RunOptions = RunOptions(),
                 progress: Optional[Callable[[RetimeProgress], None]] = None,
                 model_progress: Optional[Callable] = None, cancel: Optional[CancelCheck] = None,
                 distributed: Optional[Dist] = None) -> RetimeResult:
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
            (overrides `method`), given float32 frames; a `hifi_core.Interpolator` is also told
            each pair's index, and is given the frames as decoded: half precision from sources
            of up to 10 bits (`video_io.decode_dtype`; not an 8-bit source written deeper),
            float32 from deeper ones.
            With `RunOptions.pipeline` it must return a new tensor on every call.
        detection (Detection): scene cuts and duplicates.
        encoding (Encoding): codec, quality, pixel format, preset, slow-motion audio, tags.
        run (RunOptions): resume, tau batch, segment length, a preview's frame limit, the
            pipeline (decoding and encoding in threads; none outlives this call).
        progress: called (in the caller's thread) with a `RetimeProgress` as frames are written.
        model_progress: passed to `interpolate` (patch-level `ProgressEvent`s, method "hifi").
        cancel: polled between frames and inside the model; True (or raising) stops.
        distributed (Dist or None): this call is one rank of a torchrun group
            (`hifi_core.retime.torchrun_group()`): every rank makes the same call (only the
            model's device may differ), renders its contiguous share of the output into the
            shared parts folder, and rank 0 joins all shares with the audio (see
            `hifi_core.retime.distributed`). The output must be on storage every rank sees.
            None (or a world of one): a single process.

    Returns:
        A `RetimeResult` (the whole file's, on every rank; `resumed_from` counts the frames
        that were already done, summed over the ranks).

    Raises:
        HiFIInputError: bad input file, output path, codec or settings (before any work).
        Cancelled / KeyboardInterrupt: after writing the partial output (see above; one of
            several processes only closes and keeps its finished segments).
    """
    started = time.monotonic()
    info, fmt, out_path = check_retime_io(input, output, codec=encoding.codec, crf=encoding.crf,
                                          pix_fmt=encoding.pix_fmt, bit_depth=encoding.bit_depth)
    in_path = Path(info.path)
    ratio, out_fps = target.resolve(info.fps)
    source_frames = info.frame_count if run.max_frames is None else min(info.frame_count, run.max_frames)
    segment_frames = max(1, round(run.segment_seconds * float(out_fps)))
    estimate = total_output_frames(source_frames, ratio)
    share = plan_share(distributed, estimate, segment_frames, ratio, detection)
    terminate = Terminate()  # (several processes) torchrun's SIGTERM stops a rank cleanly
    cancel_any = either(cancel, terminate if share.distributed else None)
    method_key = method if interpolator is None else "custom"
    if interpolator is None:
        interpolator = make_interpolator(method, model, settings, progress=model_progress, cancel=cancel_any)
    interpolator, frame_dtype = for_decoded_frames(interpolator, info.bit_depth, fmt.bit_depth)
    audio_mode, audio_tempo = _audio_plan(target, info, encoding.slowmo_audio)
    writer_kwargs = _writer_kwargs(info, fmt, out_fps, encoding.preset)
    settings_key = {**_settings_key(ratio, out_fps, fmt, detection, method_key, settings, run, encoding,
                                    model), **share.key()}
    out = _open_output(out_path, fmt, in_path, settings_key, run.resume, writer_kwargs, segment_frames,
                       encoding.metadata, share)
    stats = DetectionStats(count_from=share.own_from, count_to=share.own_to)
    report = _reporter(progress, stats, source_frames, estimate, out.frames_done, share)
    pipelined = run.pipeline if run.pipeline is not None else not _network_on_cpu(method_key, model)
    read_ahead, encode_behind = queue_depths(info.height, info.width, frame_dtype) if pipelined else (0, 0)
    pairs = _PairWriter(out, interpolator, run.tau_batch, cancel_any, report, share.end, encode_behind)

    def walk() -> None:
        if not share.empty:
            with pairs.running():
                _walk_keyframes(in_path, ratio, detection, stats, run.max_frames, pairs.emit,
                                start=share.decode_from, until=share.end, read_ahead=read_ahead,
                                dtype=frame_dtype)
    _render(walk, out, share, terminate, in_path, audio_mode, audio_tempo)
    whole = _gather_shares(share, out, stats)
    agreed(share, lambda: _join_shares(share, whole, out, in_path, out_fps, audio_mode, audio_tempo,
                                       run.max_frames is not None))
    return RetimeResult(out_path, whole.frames, whole.stats.source_frames, out_fps, ratio,
                        list(whole.stats.cuts), whole.stats.duplicates, whole.resumed, audio_mode,
                        time.monotonic() - started, pairs.interpolation_seconds)


def _network_on_cpu(method_key: str, model) -> bool:
    """Whether a HiFI network on the CPU does the work: the pipeline's threads would only take
    its cores (`RunOptions.pipeline`)."""
    return method_key == "hifi" and model is not None and next(model.parameters()).device.type == "cpu"


def _render(walk: Callable[[], None], out: _Output, share: Share, terminate: Terminate, in_path: Path,
            audio_mode: str, audio_tempo: float) -> None:
    """Run `walk` (decode, interpolate, write) and close the last segment. Any failure keeps
    what is finished for --resume (and a playable partial output, for one process); a full
    disk removes the unfinished segment. One of several processes stops cleanly on SIGTERM."""
    try:
        with terminate.armed() if share.distributed else nullcontext():
            walk()
            out.close_segment()
    except OSError as error:
        if error.errno not in WRITE_ERRNOS:
            _finish_partial(out, in_path, audio_mode, audio_tempo, join=not share.distributed)
            raise
        raise _write_failure(error, out.output, out) from None
    except BaseException:
        _finish_partial(out, in_path, audio_mode, audio_tempo, join=not share.distributed)
        raise


@dataclass
class _Whole:
    """Every share's outcome put together (one share for one process)."""

    frames: int
    resumed: int
    stats: DetectionStats
    segments: List[dict]
    reports: List[dict]


def _gather_shares(share: Share, out: _Output, stats: DetectionStats) -> _Whole:
    """The segment lists and detection counts of every rank (its own for one process); each
    rank reports the cuts and duplicates of its own source range, so these are the file's."""
    mine = {"first": out.first, "done": out.frames_done, "resumed": out.resumed_from - out.first,
            "segments": list(out.state["segments"]), "source_frames": stats.source_frames,
            "cuts": list(stats.cuts), "duplicates": stats.duplicates}
    reports = gather(share, mine)
    whole = DetectionStats(max(r["source_frames"] for r in reports), sum(r["duplicates"] for r in reports),
                           sorted(c for r in reports for c in r["cuts"]))
    return _Whole(sum(r["done"] - r["first"] for r in reports), sum(r["resumed"] for r in reports), whole,
                  [s for r in reports for s in r["segments"]], reports)


def _join_shares(share: Share, whole: _Whole, out: _Output, in_path: Path, out_fps: Fraction,
                 audio_mode: str, audio_tempo: float, trim_audio: bool) -> None:
    """(rank 0, or the one process) join every share's segments with the audio into the output."""
    if share.rank != 0:
        return
    if whole.frames == 0:
        raise HiFIInputError(f"{str(in_path)!r} produced no frames")
    expected = 0  # the shares that made frames follow each other from frame 0, without a gap
    for r in whole.reports:
        if r["done"] > r["first"]:
            if r["first"] != expected:
                raise RuntimeError(f"the processes' shares leave output frames {expected}..{r['first'] - 1} "
                                   "unmade")
            expected = r["done"]
    segments = [out.parts / s["file"] for s in whole.segments]
    _join(out, in_path, out_fps, audio_mode, audio_tempo, trim_audio, segments, whole.frames)


def _reporter(progress: Optional[Callable[[RetimeProgress], None]], stats: DetectionStats,
              source_frames: int, estimate: int, resumed_from: int, share: Share) -> Callable[[int], None]:
    """The progress call, given the frames written so far: it reports when the count has moved
    (the pipeline asks more often than frames are written). The total is an estimate until
    the input is fully read. One of several processes counts its share (from its first frame,
    to its end)."""
    if share.end is not None:
        estimate = min(estimate, share.end)
    last = resumed_from

    def report(done: int) -> None:
        nonlocal last
        if progress is not None and done != last:
            last = done
            total = estimate if stats.source_frames < source_frames else max(estimate, done)
            progress(RetimeProgress(done - share.first, max(total, done) - share.first,
                                    stats.source_frames, resumed_from - share.first))
    return report


def _join(out: _Output, in_path: Path, out_fps: Fraction, audio_mode: str, audio_tempo: float,
          trim_audio: bool, segments: List[Path], frames: int) -> None:
    """Join the finished segments with the audio; a full disk keeps the segments for --resume."""
    try:
        _finish(out, in_path, out_fps, audio_mode, audio_tempo, trim_audio, segments)
    except OSError as error:
        if error.errno not in WRITE_ERRNOS:
            raise
        raise HiFIInputError(
            f"joining the finished segments into {str(out.output)!r} failed: {error.strerror or error} "
            f"(errno {errno.errorcode.get(error.errno, error.errno)}); no partial file was left. All "
            f"{frames} frames are kept in {str(out.parts)!r}: free space (or raise the "
            "file-size limit) and run the same command with --resume") from None


def _writer_kwargs(info: VideoInfo, fmt: OutputFormat, out_fps: Fraction, preset: Optional[str]) -> dict:
    """`VideoWriter` arguments for every segment of the output."""
    return dict(fps=out_fps, width=info.width, height=info.height, codec=fmt.codec, crf=fmt.quality,
                pix_fmt=fmt.pix_fmt, color=info.color, options={"preset": preset} if preset else None)


def _open_output(out_path: Path, fmt: OutputFormat, in_path: Path, settings_key: dict, resume: bool,
                 writer_kwargs: dict, segment_frames: int, metadata: Optional[dict], share: Share) -> _Output:
    """The output with its resume state (new, or the interrupted run's), strays removed, after
    a test encode (fail now, not after an hour of work, if the encoder refuses the size or
    format). Several processes: each checks its encoder and opens its own state; rank 0
    clears an older run first; a failure on any rank stops them all."""
    rank = share.rank if share.distributed else None
    agreed(share, lambda: _probe_writer(out_path, fmt, writer_kwargs, "" if rank is None else f".rank{rank}"))
    if share.distributed:  # (one process: _load_or_new_state clears)
        agreed(share, lambda: None if resume or share.rank != 0 else _clear_output(out_path, fmt))

    def open_state() -> _Output:
        state_path = _state_path(out_path, fmt, rank)
        state = _load_or_new_state(out_path, fmt, in_path, settings_key, resume, state_path=state_path,
                                   clean=not share.distributed, first=share.first)
        _parts_dir(out_path, fmt).mkdir(parents=True, exist_ok=True)
        out = _Output(out_path, fmt, writer_kwargs, state, segment_frames, metadata,
                      state_path=state_path, first=share.first)
        _remove_strays(out, share.end)
        return out
    return agreed(share, open_state)


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
    chunk is held (plus, with the pipeline, the few frames queued for the encoder). A model
    interpolator is told the pair's index (its noise is the pair's).

    `encode_behind` > 0: frames are handed to an encoder thread with a queue of that many
    (`running()` starts and stops it); 0: `out.write` writes them here. `next_index` is the
    next frame to hand over, `out.frames_done` the frames written.
    """

    def __init__(self, out: _Output, interpolator: FrameInterpolator, tau_batch: int,
                 cancel: Optional[CancelCheck], report: Callable[[int], None], end: Optional[int] = None,
                 encode_behind: int = 0):
        self.out, self.interpolator, self.tau_batch = out, interpolator, tau_batch
        self.cancel, self.report = cancel, report
        self.end = end  # output frames from `end` on are another process's
        self.encoder = EncodeThread(out.write, encode_behind) if encode_behind else None
        self.write = self.encoder.write if self.encoder else out.write
        self.next_index = out.frames_done
        self.interpolation_seconds = 0.0  # what the rest (decode, detect, encode) is measured against

    @contextmanager
    def running(self) -> Iterator[None]:
        """The encoder thread (if any) for the block; then a last report of the frames written."""
        try:
            with self.encoder or nullcontext():
                yield
        except BaseException:
            with suppress(Exception):  # the error (or cancel) goes on; this event is a courtesy
                self.report(self.out.frames_done)
            raise
        self.report(self.out.frames_done)

    def _interpolate(self, a: Keyframe, b: Keyframe, taus: List[float]) -> torch.Tensor:
        started = time.monotonic()
        try:
            if isinstance(self.interpolator, Interpolator):
                return self.interpolator(a.image[None], b.image[None], taus, pair=a.position)
            return self.interpolator(a.image[None], b.image[None], taus)
        finally:
            self.interpolation_seconds += time.monotonic() - started

    def emit(self, schedule: List[ScheduledFrame], a: Keyframe, b: Optional[Keyframe]) -> None:
        todo = [s for s in schedule
                if s.index >= self.next_index and (self.end is None or s.index < self.end)]
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
            self.write(s.index, img)
            self.next_index = s.index + 1
            self.report(self.out.frames_done)
        check_cancel(self.cancel)


def _walk_keyframes(in_path: Path, ratio: Fraction, detection: Detection, stats: DetectionStats,
                    max_frames: Optional[int],
                    emit: Callable[[List[ScheduledFrame], Keyframe, Optional[Keyframe]], None], *,
                    start: int = 0, until: Optional[int] = None, read_ahead: int = 0,
                    dtype: torch.dtype = torch.float32) -> None:
    """Decode, find keyframes and hand every interval's schedule to `emit`, in order.

    `start`: the first source frame decoded into a picture (the earlier ones are decoded and
    dropped; the intervals before the share are emitted all the same, for nothing to write).
    `until`: stop at the first interval whose output starts there (another process's).
    `read_ahead`: decode in a thread, up to this many frames ahead (0: in this thread); the
    detectors run here, so `stats` counts only what the walk has used. `dtype`: the frames'
    (`iter_frames`)."""
    prev = lookahead = None
    # with max_frames one more frame is read: the partner of the last interval (a preview's
    # tail moves toward the next real frame instead of holding the last one); not output
    decoded = iter_frames(in_path, start=start, dtype=dtype,
                          max_frames=None if max_frames is None else max(0, max_frames + 1 - start))
    with ReadAhead(decoded, read_ahead) if read_ahead else nullcontext(decoded) as frames:
        for key in keyframes(frames, scene=detection.scene_settings(), dedup=detection.duplicate_settings(),
                             stats=stats):
            if max_frames is not None and key.position >= max_frames:
                lookahead = key
                break
            if prev is not None:
                if until is not None and first_output_at(prev.position, ratio) >= until:
                    return
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
        if lookahead is None and stats.counts(max_frames):  # read, and dropped as a duplicate
            stats.duplicates -= 1
        stats.cuts = [c for c in stats.cuts if c < max_frames]
        stats.source_frames = max_frames


# the output side failed: disk full, file-size limit, quota, read-only or failing disk
