"""Streaming retime engine: decode -> (duplicates, scene cuts) -> interpolate -> encode.

Used by `python -m hifi_core retime` and the ComfyUI "HiFI Retime Video" node. Frames are
float32 `[3, H, W]` RGB in `[0, 1]` (`[1, 3, H, W]` when handed to an interpolator).

Timing (exact rational arithmetic, no drift):
    Source frame i is at position i (time i / fps_in; a variable-frame-rate input is treated
    as constant at its average rate). The generation ratio r is `multiplier`, or
    `fps / fps_in`, or `slowmo`. Output frame k sits at source position p_k = k / r and the
    output has K = ceil(N * r) frames, so it lasts as long as the source (a multiplier gives
    exactly N * M frames; the last source frame is held to the end). `--slowmo S` makes the
    same N * S frames as `--multiplier S` but plays them at fps_in, i.e. S times slower.
    Keyframes are the source frames kept (all of them, or the non-duplicates with `dedup`),
    at positions s_0 = 0 < s_1 < ... For p in [s_j, s_j+1): p == s_j is the original frame
    (tau = 0), else the in-between of that pair at tau = (p - s_j) / (s_j+1 - s_j), unless a
    scene cut lies between them: then the nearer frame is repeated (tau < 0.5 -> s_j). After
    the last keyframe the last frame is held (the schedule is `hifi_core.timeline`'s, the one
    every path uses; this engine keeps the duration so the audio stays in sync).

Memory (bounded, independent of the clip length): the two keyframes of the current pair,
their thumbnails, the in-betweens of at most `tau_batch` times, the encoder's look-ahead and
the audio interleaving queue. Nothing is accumulated per frame.

Output, interruption and resume:
    Video is encoded into segments of `segment_seconds` of output (`.NAME.hifi-parts/`, next
    to the output, with `progress.json`), then joined without re-encoding into the output,
    with the input's audio interleaved (untouched; slow-motion drops it by default, or
    time-stretches it with `slowmo_audio="stretch"`). Cancellation (the `cancel` check,
    Ctrl-C, or any error) closes the open segment cleanly, writes a playable partial output
    of every frame finished so far, keeps the parts folder and re-raises. `resume=True`
    continues from the last finished frame: the decoder and the cut/duplicate detectors
    re-run over the skipped part (cheap, and it makes their decisions identical), the
    interrupted pair is recomputed whole (same seed, same tau batches), so the joined result
    equals an uninterrupted run (bit-exact decoded frames for lossless codecs; for lossy
    ones the frames differ only by re-encoding noise at the resume point). PNG sequences are
    written frame by frame (`frame_000000.png`, atomically) with `.hifi-retime.json` in the
    folder. The parts folder is deleted after a successful run. Disk: segments plus the
    joined output need about twice the output size until the end.
"""

from __future__ import annotations

import errno
import hashlib
import itertools
import json
import os
import time
import warnings
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator, List, NamedTuple, Optional, Sequence, Union

import torch

from .errors import HiFIInputError
from .progress import CancelCheck, check_cancel
from .timeline import ScheduledFrame, interval_schedule, total_output_frames
from .scenes import (DEFAULT_SCENE_THRESHOLD, DuplicateDetector, DuplicateSettings,
                     SceneCutDetector, SceneSettings, thumbnail)
from .validation import check_not_an_input
from .video_io import (OutputFormat, VideoInfo, VideoWriter, check_output_path,
                       iter_frames, join_segments, probe_video, remove_tree,
                       resolve_output_format, write_audio_file)

PathLike = Union[str, os.PathLike]
Interpolator = Callable[[torch.Tensor, torch.Tensor, Sequence[float]], torch.Tensor]
STATE_VERSION = 1
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower",
                "veryslow")
_NTSC = {23.976: Fraction(24000, 1001), 29.97: Fraction(30000, 1001), 47.952: Fraction(48000, 1001),
         59.94: Fraction(60000, 1001), 119.88: Fraction(120000, 1001), 239.76: Fraction(240000, 1001)}


def parse_fps(value: Union[str, float, int, Fraction]) -> Fraction:
    """A frame rate as an exact Fraction: '60', 59.94 (-> 60000/1001), '24000/1001'."""
    try:
        if isinstance(value, str) and "/" in value:
            fps = Fraction(value)
        else:
            number = float(value)
            fps = next((f for k, f in _NTSC.items() if abs(number - k) < 0.0015),
                       Fraction(str(number)).limit_denominator(1001)
                       if not isinstance(value, Fraction) else value)
    except (ValueError, ZeroDivisionError):
        raise HiFIInputError(f"frame rate {value!r} is not a number like 60, 59.94 or 24000/1001") from None
    if fps <= 0 or fps > 10000:
        raise HiFIInputError(f"frame rate {value!r} must be between 0 and 10000")
    return fps


@dataclass(frozen=True)
class RetimeTarget:
    """Exactly one of: `multiplier` (N x frames), `fps` (any target rate), `slowmo` (N x slower)."""

    multiplier: Optional[int] = None
    fps: Optional[Fraction] = None
    slowmo: Optional[int] = None

    def __post_init__(self):
        given = [n for n in ("multiplier", "fps", "slowmo") if getattr(self, n) is not None]
        if len(given) != 1:
            raise HiFIInputError("give exactly one of multiplier, fps or slowmo "
                                 f"(got {', '.join(given) or 'none'})")
        for name in ("multiplier", "slowmo"):
            value = getattr(self, name)
            if value is not None and (int(value) != value or not 1 <= value <= 64):
                raise HiFIInputError(f"{name}={value} must be a whole number from 1 to 64")
        if self.fps is not None:
            object.__setattr__(self, "fps", parse_fps(self.fps))

    def resolve(self, source_fps: Fraction) -> tuple[Fraction, Fraction]:
        """(generation ratio r = output frames per source frame, playback fps of the output)."""
        if self.multiplier is not None:
            return Fraction(int(self.multiplier)), source_fps * int(self.multiplier)
        if self.slowmo is not None:
            return Fraction(int(self.slowmo)), source_fps
        return self.fps / source_fps, self.fps

    @property
    def keeps_duration(self) -> bool:
        return self.slowmo is None or self.slowmo == 1


# ---------------------------------------------------------------- interpolators


def blend_interpolator(frame0: torch.Tensor, frame2: torch.Tensor, taus: Sequence[float]) -> torch.Tensor:
    """Cheap stand-in: linear cross-fade, `[T, 3, H, W]` (for tests and memory proofs)."""
    t = torch.tensor([float(x) for x in taus], dtype=frame0.dtype).view(-1, 1, 1, 1)
    return (1 - t) * frame0[0] + t * frame2[0]


class ModelInterpolator:
    """A `HiFIModel` and `CascadeSettings` as an interpolator (one pair, several taus) that
    also takes the pair's index in the clip, so its noise is the pair's own (`retime_video`
    passes it; the IMAGE path and a resumed file then give the same frames)."""

    def __init__(self, model, settings=None, *, progress=None, cancel: Optional[CancelCheck] = None):
        self.model, self.settings, self.progress, self.cancel = model, settings, progress, cancel

    def __call__(self, frame0: torch.Tensor, frame2: torch.Tensor, taus: Sequence[float],
                 pair: int = 0) -> torch.Tensor:
        from .interpolate import interpolate

        out = interpolate(self.model, frame0, frame2, tau=[float(t) for t in taus], settings=self.settings,
                          progress=self.progress, cancel=self.cancel, pair_index=pair)
        return out[0]


def model_interpolator(model, settings=None, *, progress=None, cancel: Optional[CancelCheck] = None
                       ) -> ModelInterpolator:
    """Wrap a `HiFIModel` and `CascadeSettings` as an interpolator (one pair, several taus)."""
    return ModelInterpolator(model, settings, progress=progress, cancel=cancel)


def make_interpolator(method: str, model=None, settings=None, *, progress=None,
                      cancel: Optional[CancelCheck] = None) -> Interpolator:
    """'hifi' (needs `model`), 'blend', or 'dis' (OpenCV DIS optical flow, if available)."""
    if method == "hifi":
        if model is None:
            raise HiFIInputError("method 'hifi' needs a model (load one with hifi_core.load_model)")
        return model_interpolator(model, settings, progress=progress, cancel=cancel)
    if method == "blend":
        return blend_interpolator
    if method == "dis":
        try:
            from .baselines import dis_flow_interpolate
        except ImportError:
            raise HiFIInputError("method 'dis' needs hifi_core.baselines, which this build lacks") from None

        def run(frame0, frame2, taus):
            return torch.stack([dis_flow_interpolate(frame0, frame2, float(t)).reshape(frame0.shape)[0]
                                for t in taus])
        return run
    raise HiFIInputError(f"unknown interpolation method {method!r}; use hifi, blend or dis")


# ---------------------------------------------------------------- keyframes


class Keyframe(NamedTuple):
    position: int
    image: torch.Tensor  # [3, H, W]
    cut_before: bool


@dataclass
class DetectionStats:
    """Counters filled while decoding (no per-frame lists)."""

    source_frames: int = 0
    duplicates: int = 0
    cuts: List[int] = field(default_factory=list)


def keyframes(frames: Iterator, *, scene: Optional[SceneSettings], dedup: Optional[DuplicateSettings],
              stats: DetectionStats) -> Iterator[Keyframe]:
    """Kept source frames with their cut flags, from a stream of `DecodedFrame`s."""
    cut_detector = SceneCutDetector(scene) if scene is not None else None
    dup_detector = DuplicateDetector(dedup) if dedup is not None else None
    for frame in frames:
        stats.source_frames = frame.index + 1
        thumb = thumbnail(frame.image) if (cut_detector or dup_detector) else None
        if dup_detector is not None and dup_detector.update(frame.image, thumb):
            stats.duplicates += 1
            continue
        cut = cut_detector.update(frame.image, thumb) if cut_detector is not None else False
        if cut:
            stats.cuts.append(frame.index)
        yield Keyframe(frame.index, frame.image, cut)


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


# ---------------------------------------------------------------- state and segments


def _parts_dir(output: Path, fmt: OutputFormat) -> Path:
    return output if fmt.is_sequence else output.with_name(f".{output.name}.hifi-parts")


def _state_path(output: Path, fmt: OutputFormat) -> Path:
    return (output / ".hifi-retime.json") if fmt.is_sequence else _parts_dir(output, fmt) / "progress.json"


def _input_fingerprint(path: Path) -> dict:
    st = path.stat()
    return {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _save_state(path: Path, state: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(state, indent=1, sort_keys=True))
    os.replace(tmp, path)  # atomic, so a kill never leaves half a progress file


class _Output:
    """Writes output frames in order: segment files (video) or PNG files, plus the state."""

    def __init__(self, output: Path, fmt: OutputFormat, writer_kwargs: dict, state: dict,
                 segment_frames: int, metadata: Optional[dict] = None):
        self.output, self.fmt, self.kwargs, self.state = output, fmt, writer_kwargs, state
        self.metadata = metadata  # container tags, written when the segments are joined
        self.segment_frames = segment_frames
        self.parts = _parts_dir(output, fmt)
        self.state_path = _state_path(output, fmt)
        self.frames_done = int(state["frames_done"])
        self._writer: Optional[VideoWriter] = None
        self._segment_start = 0
        self._last_save = 0.0

    def write(self, index: int, frame: torch.Tensor) -> None:
        if index != self.frames_done:
            raise RuntimeError(f"output frame {index} written out of order (expected {self.frames_done})")
        if self.fmt.is_sequence:
            if self._writer is None:
                self._writer = VideoWriter(self.output, start_number=index, **self.kwargs)
            self._writer.write(frame)
            self.frames_done += 1
            self.state["frames_done"] = self.frames_done
            if time.monotonic() - self._last_save > 1.0:
                self.save()
            return
        if self._writer is not None and index % self.segment_frames == 0:
            self.close_segment()
        if self._writer is None:
            self._segment_start = index
            name = f"part_{index:09d}{self.output.suffix}"
            self._writer = VideoWriter(self.parts / name, **self.kwargs)
        self._writer.write(frame)
        self.frames_done += 1

    def close_segment(self) -> None:
        """Flush and close the open segment and record it (frames in it are then safe)."""
        writer = self._writer
        if writer is None:
            return
        writer.close()  # may fail (disk full): the writer stays open so its file can be removed
        self._writer = None
        if not self.fmt.is_sequence and writer.frames_written:
            self.state["segments"].append({"file": writer.path.name, "start": self._segment_start,
                                           "frames": writer.frames_written})
        self.state["frames_done"] = self.frames_done
        self.save()

    def save(self) -> None:
        self._last_save = time.monotonic()
        _save_state(self.state_path, self.state)

    def segment_paths(self) -> List[Path]:
        return [self.parts / s["file"] for s in self.state["segments"]]


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
    if slowmo_audio not in ("drop", "stretch"):
        raise HiFIInputError(f"slowmo_audio={slowmo_audio!r} must be 'drop' or 'stretch'")
    if tau_batch < 1 or segment_seconds <= 0:
        raise HiFIInputError("tau_batch must be >= 1 and segment_seconds > 0")
    if max_frames is not None and max_frames < 2:
        raise HiFIInputError(f"max_frames={max_frames}: interpolation needs at least 2 source frames")
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
    if target.keeps_duration:
        audio_mode = "copied" if info.has_audio else "none"
    else:
        audio_mode = ("stretched" if slowmo_audio == "stretch" else "dropped") if info.has_audio else "none"
    audio_tempo = 1.0 / float(target.slowmo) if audio_mode == "stretched" else 1.0
    if preset is not None and (fmt.codec not in ("h264", "h265") or preset not in X264_PRESETS):
        raise HiFIInputError(f"preset {preset!r} needs --codec h264 or h265 and one of "
                             f"{', '.join(X264_PRESETS)}")
    writer_kwargs = dict(fps=out_fps, width=info.width, height=info.height, codec=fmt.codec,
                         crf=fmt.quality, pix_fmt=fmt.pix_fmt, color=info.color,
                         options={"preset": preset} if preset else None)
    # fail now, not after an hour of work, if the encoder refuses the size/format
    _probe_writer(out_path, fmt, writer_kwargs)

    settings_key = _settings_key(ratio, out_fps, fmt, scene, dups, method_key, settings,
                                 tau_batch, segment_seconds, slowmo_audio, model)
    settings_key["preset"] = preset
    settings_key["max_frames"] = max_frames
    source_frames = info.frame_count if max_frames is None else min(info.frame_count, max_frames)
    state = _load_or_new_state(out_path, fmt, in_path, settings_key, resume)
    parts = _parts_dir(out_path, fmt)
    parts.mkdir(parents=True, exist_ok=True)
    segment_frames = max(1, round(segment_seconds * float(out_fps)))
    out = _Output(out_path, fmt, writer_kwargs, state, segment_frames, metadata)
    _remove_strays(out)
    resumed_from = out.frames_done
    stats = DetectionStats()
    estimate = total_output_frames(source_frames, ratio)
    trim_audio = max_frames is not None

    def report(done: int) -> None:
        if progress is not None:
            total = estimate if stats.source_frames < source_frames else max(estimate, done)
            progress(RetimeProgress(done, max(total, done), stats.source_frames, resumed_from))

    def emit(schedule: List[ScheduledFrame], a: Keyframe, b: Optional[Keyframe]) -> None:
        todo = [s for s in schedule if s.index >= out.frames_done]
        if not todo:
            return
        # in-betweens are computed in fixed chunks of the pair's full tau list (so a resumed
        # run computes exactly the same calls) and written as soon as their chunk is ready,
        # so at most one chunk is held
        between = [s for s in schedule if s.mode == "interpolate"]
        chunk_of = {s.index: n // tau_batch for n, s in enumerate(between)}
        made = {}
        for s in todo:
            if s.mode == "interpolate":
                if s.index not in made:
                    c = chunk_of[s.index]
                    chunk = between[c * tau_batch:(c + 1) * tau_batch]
                    check_cancel(cancel)
                    taus = [f.tau for f in chunk]
                    result = (interpolator(a.image[None], b.image[None], taus, pair=a.position)
                              if isinstance(interpolator, ModelInterpolator)
                              else interpolator(a.image[None], b.image[None], taus))
                    made = {f.index: img for f, img in zip(chunk, result)}
                img = made.pop(s.index)
            else:
                img = a.image if s.source == a.position else b.image
            out.write(s.index, img)
            report(out.frames_done)
        check_cancel(cancel)

    try:
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
        out.close_segment()
    except OSError as error:
        if error.errno not in WRITE_ERRNOS:
            _finish_partial(out, in_path, audio_mode, audio_tempo)
            raise
        kept = _abandon_open_segment(out)
        raise HiFIInputError(
            f"writing {str(out_path)!r} failed: {error.strerror or error} (errno {errno.errorcode.get(error.errno, error.errno)}). "
            f"The unfinished segment was removed; {kept} finished frames are kept in {str(out.parts)!r}: "
            "free space (or raise the file-size limit) and run the same command with --resume, "
            "or delete that folder") from None
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


def _probe_writer(out_path: Path, fmt: OutputFormat, kwargs: dict) -> None:
    if fmt.is_sequence:
        return
    probe = out_path.with_name(f".{out_path.name}.hifi-check{out_path.suffix}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            VideoWriter(probe, **kwargs).close()
    finally:
        probe.unlink(missing_ok=True)


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


def _load_or_new_state(out_path: Path, fmt: OutputFormat, in_path: Path, key: dict, resume: bool) -> dict:
    state_path = _state_path(out_path, fmt)
    fresh = {"version": STATE_VERSION, "input": _input_fingerprint(in_path), "settings": key,
             "segments": [], "frames_done": 0}
    if resume and state_path.is_file():
        try:
            state = json.loads(state_path.read_text())
        except (OSError, ValueError) as exc:
            raise HiFIInputError(f"cannot resume: {str(state_path)!r} is unreadable ({exc}); run "
                                 f"again without --resume to start over") from exc
        if state.get("version") != STATE_VERSION or state.get("input") != fresh["input"]:
            raise HiFIInputError(f"cannot resume into {str(out_path)!r}: the interrupted run used "
                                 f"another input file (or it changed); run without --resume")
        diff = [k for k in key if state.get("settings", {}).get(k) != key[k]]
        if diff:
            raise HiFIInputError(f"cannot resume into {str(out_path)!r}: these settings differ from "
                                 f"the interrupted run: {', '.join(diff)}; use the same settings, "
                                 f"or run without --resume to start over")
        for seg in state["segments"]:
            if not (_parts_dir(out_path, fmt) / seg["file"]).is_file():
                raise HiFIInputError(f"cannot resume: segment {seg['file']} is missing from "
                                     f"{str(_parts_dir(out_path, fmt))!r}; run without --resume")
        return state
    if not fmt.is_sequence:
        remove_tree(_parts_dir(out_path, fmt))
    elif out_path.is_dir():  # a fresh sequence: drop an older run's frames (ours only)
        for old in [*out_path.glob("frame_[0-9]*.png"), out_path / "audio.mka", state_path]:
            old.unlink(missing_ok=True)
    return fresh


def _remove_strays(out: _Output) -> None:
    """Delete segment files a hard kill left unrecorded (their frames are redone)."""
    if out.fmt.is_sequence:
        return
    known = {s["file"] for s in out.state["segments"]}
    for p in out.parts.glob("part_*"):
        if p.name not in known:
            p.unlink()


def _finish(out: _Output, in_path: Path, fps: Fraction, audio_mode: str, tempo: float,
            trim_audio: bool = False) -> None:
    audio_from = in_path if audio_mode in ("copied", "stretched") else None
    if out.fmt.is_sequence:
        sidecar = out.output / "audio.mka"
        sidecar.unlink(missing_ok=True)
        if audio_from is not None:
            write_audio_file(sidecar, audio_from=audio_from, tempo=tempo)
        _state_path(out.output, out.fmt).unlink(missing_ok=True)
        return
    join_segments(out.segment_paths(), out.output, fps, audio_from=audio_from, audio_tempo=tempo,
                  trim_audio=trim_audio or tempo != 1.0, metadata=out.metadata)
    remove_tree(out.parts)


def _forget_lookahead(stats: DetectionStats, max_frames: int, lookahead: Optional[Keyframe]) -> None:
    """Count only the first `max_frames` source frames: the extra frame read as the tail's
    partner is neither a source frame of the output, nor its cut nor its duplicate."""
    if stats.source_frames > max_frames:
        if lookahead is None:  # read, and dropped as a duplicate
            stats.duplicates -= 1
        stats.cuts = [c for c in stats.cuts if c < max_frames]
        stats.source_frames = max_frames


# the output side failed: disk full, file-size limit, quota, read-only or failing disk
WRITE_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS, errno.EIO}


def _abandon_open_segment(out: _Output) -> int:
    """After a write error: delete the segment being written (it is incomplete) and record
    only the finished ones, without writing anything large (the disk may be full). Returns
    the number of finished frames kept for --resume."""
    writer, out._writer = out._writer, None
    if writer is not None:
        try:
            writer.close()
        except Exception:  # noqa: BLE001 - the encoder is what failed; its file goes anyway
            pass
        if not out.fmt.is_sequence:
            Path(writer.path).unlink(missing_ok=True)
    if not out.fmt.is_sequence:
        out.frames_done = sum(int(s["frames"]) for s in out.state["segments"])
    out.state["frames_done"] = out.frames_done
    try:
        out.save()
    except OSError:
        pass  # the state file is small, but on a full disk even that may fail; --resume redoes more
    return out.frames_done


def _finish_partial(out: _Output, in_path: Path, audio_mode: str, tempo: float) -> None:
    """After an interruption: save what is finished and leave a playable partial output."""
    try:
        out.close_segment()
    except Exception:  # the encoder itself may be what failed; the recorded segments stay valid
        pass
    if out.fmt.is_sequence or not out.state["segments"]:
        if out.fmt.is_sequence:
            out.save()
        return
    audio_from = in_path if audio_mode in ("copied", "stretched") else None
    try:
        fps = Fraction(out.kwargs["fps"])
        join_segments(out.segment_paths(), out.output, fps, audio_from=audio_from,
                      audio_tempo=tempo, trim_audio=True, metadata=out.metadata)
    except Exception:
        pass  # a partial file is a courtesy; the parts folder still allows --resume
