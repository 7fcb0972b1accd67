"""The output side of a retime: segments, the resume state, finishing and abandoning a run."""

from __future__ import annotations

import errno
import json
import os
import time
import warnings
from fractions import Fraction
from pathlib import Path
from typing import List, Optional

import torch

from ..errors import HiFIInputError
from ..video_io import OutputFormat, VideoWriter, join_segments, remove_tree, write_audio_file
from .targets import STATE_VERSION


# ---------------------------------------------------------------- state and segments


def _parts_dir(output: Path, fmt: OutputFormat) -> Path:
    return output if fmt.is_sequence else output.with_name(f".{output.name}.hifi-parts")


def _state_path(output: Path, fmt: OutputFormat, rank: Optional[int] = None) -> Path:
    """The resume state: one file, or one per rank when several processes share the output."""
    tag = "" if rank is None else f".rank{rank}"
    if fmt.is_sequence:
        return output / f".hifi-retime{tag}.json"
    return _parts_dir(output, fmt) / f"progress{tag}.json"


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
                 segment_frames: int, metadata: Optional[dict] = None, *,
                 state_path: Optional[Path] = None, first: int = 0):
        self.output, self.fmt, self.kwargs, self.state = output, fmt, writer_kwargs, state
        self.metadata = metadata  # container tags, written when the segments are joined
        self.segment_frames = segment_frames
        self.parts = _parts_dir(output, fmt)
        self.state_path = state_path or _state_path(output, fmt)
        self.first = first  # the first output frame of this process's share (0 for one process)
        self.frames_done = int(state["frames_done"])
        self.resumed_from = self.frames_done
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


def _probe_writer(out_path: Path, fmt: OutputFormat, kwargs: dict, tag: str = "") -> None:
    """A test encode of an empty file (`tag` keeps several processes' probes apart)."""
    if fmt.is_sequence:
        return
    probe = out_path.with_name(f".{out_path.name}.hifi-check{tag}{out_path.suffix}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            VideoWriter(probe, **kwargs).close()
    finally:
        probe.unlink(missing_ok=True)


def _load_or_new_state(out_path: Path, fmt: OutputFormat, in_path: Path, key: dict, resume: bool, *,
                       state_path: Optional[Path] = None, clean: bool = True, first: int = 0) -> dict:
    """The interrupted run's state (`resume`, checked against `key`), or a fresh one starting at
    output frame `first`; a fresh one clears the older run's files unless `clean` is False
    (several processes: rank 0 clears them once, before any rank starts)."""
    state_path = state_path or _state_path(out_path, fmt)
    fresh = {"version": STATE_VERSION, "input": _input_fingerprint(in_path), "settings": key,
             "segments": [], "frames_done": first}
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
    if resume:
        _refuse_other_kind_of_run(out_path, fmt, state_path)
    if clean:
        _clear_output(out_path, fmt)
    return fresh


def _refuse_other_kind_of_run(out_path: Path, fmt: OutputFormat, state_path: Path) -> None:
    """--resume finds no state of its own but one of a run split another way (one process
    against several): refuse rather than silently start over."""
    single = _state_path(out_path, fmt)
    folder = single.parent
    if state_path == single:
        other = sorted(folder.glob(".hifi-retime.rank*.json" if fmt.is_sequence else "progress.rank*.json"))
        by = "several processes (torchrun)"
    else:
        other = [single] if single.is_file() else []
        by = "a single process"
    if other:
        raise HiFIInputError(f"cannot resume into {str(out_path)!r}: the interrupted run was made by {by} "
                             f"({str(other[0])!r}); resume it the way it was started, or run without "
                             "--resume to start over")


def _clear_output(out_path: Path, fmt: OutputFormat) -> None:
    """Before a fresh run: remove an older run's segments, or its frames (ours only)."""
    if not fmt.is_sequence:
        remove_tree(_parts_dir(out_path, fmt))
    elif out_path.is_dir():
        for old in [*out_path.glob("frame_[0-9]*.png"), out_path / "audio.mka",
                    *out_path.glob(".hifi-retime*.json")]:
            old.unlink(missing_ok=True)


def _remove_strays(out: _Output, end: Optional[int] = None) -> None:
    """Delete segment files a hard kill left unrecorded (their frames are redone): those of
    this process's share [out.first, end) only, the other processes' being theirs."""
    if out.fmt.is_sequence:
        return
    known = {s["file"] for s in out.state["segments"]}
    for p in out.parts.glob("part_*"):
        start = p.stem[len("part_"):]
        mine = not start.isdigit() or (out.first <= int(start) and (end is None or int(start) < end))
        if p.name not in known and mine:
            p.unlink()


def _finish(out: _Output, in_path: Path, fps: Fraction, audio_mode: str, tempo: float,
            trim_audio: bool = False, segments: Optional[List[Path]] = None) -> None:
    """Join the segments (`segments`: every process's, in order; default this run's) with the
    audio into the output and remove the parts folder; a sequence gets its audio sidecar."""
    audio_from = in_path if audio_mode in ("copied", "stretched") else None
    if out.fmt.is_sequence:
        sidecar = out.output / "audio.mka"
        sidecar.unlink(missing_ok=True)
        if audio_from is not None:
            write_audio_file(sidecar, audio_from=audio_from, tempo=tempo)
        for state in out.output.glob(".hifi-retime*.json"):  # one per process
            state.unlink(missing_ok=True)
        return
    join_segments(out.segment_paths() if segments is None else segments, out.output, fps,
                  audio_from=audio_from, audio_tempo=tempo,
                  trim_audio=trim_audio or tempo != 1.0, metadata=out.metadata)
    remove_tree(out.parts)


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
        out.frames_done = out.first + sum(int(s["frames"]) for s in out.state["segments"])
    out.state["frames_done"] = out.frames_done
    try:
        out.save()
    except OSError:
        pass  # the state file is small, but on a full disk even that may fail; --resume redoes more
    return out.frames_done


def _finish_partial(out: _Output, in_path: Path, audio_mode: str, tempo: float, join: bool = True) -> None:
    """After an interruption: save what is finished and leave a playable partial output (not
    when `join` is False: one of several processes, whose share alone is no output)."""
    try:
        out.close_segment()
    except Exception:  # the encoder itself may be what failed; the recorded segments stay valid
        pass
    if out.fmt.is_sequence or not out.state["segments"] or not join:
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
