"""The retime pipeline: decoding and encoding in threads beside the network, the same frames."""

from __future__ import annotations

import errno
import json
import threading
import time

import numpy as np
import pytest

from hifi_core import retime
from hifi_core.errors import Cancelled, HiFIInputError
from hifi_core.retime import Detection, Encoding, RetimeTarget, RunOptions, retime_video
from hifi_core.retime import engine
from hifi_core.retime.pipeline import EncodeThread, ReadAhead, queue_depth
from hifi_core.video_io import VideoWriter
from media import decode_all, write_clip
from test_retime import CancelAfter

LOSSLESS = Encoding(codec="ffv1", pix_fmt="bgr0")  # decoded output == the frames written
PIPELINED, SEQUENTIAL = RunOptions(segment_seconds=0.2, pipeline=True), RunOptions(segment_seconds=0.2, pipeline=False)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """20 frames at 24 fps, a hard cut before frame 12, a 440 Hz tone."""
    return write_clip(tmp_path_factory.mktemp("src") / "cut.mkv", num_frames=20, cut_at=12, audio=True)


@pytest.fixture(autouse=True)
def no_thread_outlives_a_test():
    """After every test here: no thread the test started is still running (but tqdm's own
    monitor, which the CLI's progress bar starts once per process)."""
    before = set(threading.enumerate())
    yield
    left = [t.name for t in set(threading.enumerate()) - before if t.is_alive() and t.name != "tqdm_monitor"]
    assert not left, f"threads left running: {left}"


def frames_of(path):
    return decode_all(path)[0]


def png_frames(folder):
    import cv2

    return np.stack([cv2.imread(str(p)) for p in sorted(folder.glob("frame_*.png"))])


# ---------------------------------------------------------------- the same frames


@pytest.mark.parametrize("target, detection", [
    (RetimeTarget(multiplier=2), Detection()),
    (RetimeTarget(fps=60), Detection()),
    (RetimeTarget(slowmo=5), Detection(scene_cuts=False)),
])
def test_pipelined_retime_equals_sequential_frame_for_frame(tmp_path, clip, target, detection):
    runs = {}
    for name, run in (("pipelined", PIPELINED), ("sequential", SEQUENTIAL)):
        out = tmp_path / f"{name}.mkv"
        result = retime_video(clip, out, target, method="blend", detection=detection, encoding=LOSSLESS, run=run)
        runs[name] = (result, frames_of(out))
    (piped, piped_frames), (plain, plain_frames) = runs["pipelined"], runs["sequential"]
    assert np.array_equal(piped_frames, plain_frames)
    assert (piped.frames_written, piped.cuts, piped.audio) == (plain.frames_written, plain.cuts, plain.audio)


def test_pipelined_equals_sequential_with_the_model_dedup_and_a_png_sequence(tmp_path):
    from hifi_core import CascadeSettings, build_model

    twos = write_clip(tmp_path / "twos.mkv", num_frames=12, hold=2)
    model = build_model("tiny")
    settings = CascadeSettings(levels=1, patch_size=(32, 32), overlap=8, steps=1, seed=7)
    kwargs = dict(model=model, settings=settings, detection=Detection(dedup=True), encoding=Encoding(codec="png"))
    piped = retime_video(twos, tmp_path / "piped", RetimeTarget(multiplier=3), run=PIPELINED, **kwargs)
    plain = retime_video(twos, tmp_path / "plain", RetimeTarget(multiplier=3), run=SEQUENTIAL, **kwargs)
    assert piped.frames_written == plain.frames_written == 36 and piped.duplicates_dropped == 6
    assert np.array_equal(png_frames(tmp_path / "piped"), png_frames(tmp_path / "plain"))


def test_max_frames_preview_is_the_same_pipelined(tmp_path, clip):
    piped = retime_video(clip, tmp_path / "p.mkv", RetimeTarget(multiplier=2), method="blend",
                         encoding=LOSSLESS, run=RunOptions(max_frames=8))
    plain = retime_video(clip, tmp_path / "s.mkv", RetimeTarget(multiplier=2), method="blend",
                         encoding=LOSSLESS, run=RunOptions(max_frames=8, pipeline=False))
    assert piped.source_frames == plain.source_frames == 8
    assert np.array_equal(frames_of(tmp_path / "p.mkv"), frames_of(tmp_path / "s.mkv"))


# ---------------------------------------------------------------- progress


def test_progress_counts_frames_written_and_ends_at_the_total(tmp_path, clip, monkeypatch):
    written = []
    original = VideoWriter.write

    def counting(self, frame):
        original(self, frame)
        written.append(1)

    monkeypatch.setattr(VideoWriter, "write", counting)
    events = []

    def progress(event):
        assert event.frames_done <= len(written)  # written, not merely queued
        assert threading.current_thread() is threading.main_thread()
        events.append(event.frames_done)

    result = retime_video(clip, tmp_path / "o.mkv", RetimeTarget(multiplier=3), method="blend",
                          encoding=LOSSLESS, run=PIPELINED, progress=progress)
    assert events == sorted(set(events)) and events[-1] == result.frames_written == 60


# ---------------------------------------------------------------- errors


def failing_decoder(after: int, error: BaseException):
    """`iter_frames` that yields `after` frames, then raises `error` (a file damaged there)."""
    real = engine.iter_frames

    def frames(path, **kwargs):
        for n, frame in enumerate(real(path, **kwargs)):
            if n == after:
                raise error
            yield frame
    return frames


@pytest.mark.parametrize("pipeline", [True, False])
def test_a_decode_error_surfaces_unchanged_and_keeps_the_finished_frames(tmp_path, clip, monkeypatch, pipeline):
    damaged = HiFIInputError("decoding 'cut.mkv' failed after frame 13 (Invalid data); the file may be truncated")
    monkeypatch.setattr(engine, "iter_frames", failing_decoder(14, damaged))
    events = []
    out = tmp_path / "o.mkv"
    with pytest.raises(HiFIInputError) as caught:
        retime_video(clip, out, RetimeTarget(multiplier=2), method="blend", encoding=LOSSLESS,
                     run=RunOptions(segment_seconds=0.1, pipeline=pipeline),
                     progress=lambda e: events.append(e.frames_done))
    assert caught.value is damaged  # the worker's own exception, message and all
    state = json.loads((tmp_path / ".o.mkv.hifi-parts" / "progress.json").read_text())
    assert state["frames_done"] == events[-1] == len(frames_of(out)) > 0  # the partial output


@pytest.mark.parametrize("pipeline", [True, False])
def test_a_full_disk_in_the_encoder_is_the_same_clean_error(tmp_path, clip, monkeypatch, pipeline):
    original, calls = VideoWriter.write, []

    def fills_the_disk(self, frame):
        calls.append(1)
        if len(calls) == 17:
            raise OSError(errno.ENOSPC, "No space left on device")
        original(self, frame)

    monkeypatch.setattr(VideoWriter, "write", fills_the_disk)
    out = tmp_path / "o.mkv"
    with pytest.raises(HiFIInputError, match="ENOSPC") as caught:
        retime_video(clip, out, RetimeTarget(multiplier=2), method="blend", encoding=LOSSLESS,
                     run=RunOptions(segment_seconds=0.25, pipeline=pipeline))  # segments of 12 frames
    assert "12 finished frames are kept" in str(caught.value) and "--resume" in str(caught.value)
    parts = tmp_path / ".o.mkv.hifi-parts"
    state = json.loads((parts / "progress.json").read_text())
    assert state["frames_done"] == 12 and [p.name for p in parts.glob("part_*")] == ["part_000000000.mkv"]


def test_any_encoder_error_surfaces_as_itself(tmp_path, clip, monkeypatch):
    broken = RuntimeError("the encoder fell over at frame 5")

    def write(self, frame):
        if self.frames_written == 5:
            raise broken
        original(self, frame)

    original = VideoWriter.write
    monkeypatch.setattr(VideoWriter, "write", write)
    with pytest.raises(RuntimeError) as caught:
        retime_video(clip, tmp_path / "o.mkv", RetimeTarget(multiplier=2), method="blend",
                     encoding=LOSSLESS, run=PIPELINED)
    assert caught.value is broken


# ---------------------------------------------------------------- cancel and resume


@pytest.mark.parametrize("codec", ["ffv1", "png"])
def test_cancel_with_a_slow_encoder_then_resume_equals_an_uninterrupted_run(tmp_path, clip, monkeypatch, codec):
    encoding = LOSSLESS if codec == "ffv1" else Encoding(codec="png")
    name = "out.mkv" if codec == "ffv1" else "seq"
    whole = tmp_path / f"whole_{name}"
    retime_video(clip, whole, RetimeTarget(fps=60), method="blend", encoding=encoding, run=SEQUENTIAL)
    original = VideoWriter.write

    def slow(self, frame):  # the encoder lags, so frames are still queued when the cancel comes
        time.sleep(0.01)
        original(self, frame)

    monkeypatch.setattr(VideoWriter, "write", slow)
    out, stop = tmp_path / name, CancelAfter(21)
    with pytest.raises(Cancelled):
        retime_video(clip, out, RetimeTarget(fps=60), method="blend", cancel=stop, progress=stop.progress,
                     encoding=encoding, run=PIPELINED)
    if codec == "ffv1":
        assert len(frames_of(out)) == stop.done >= 21  # the last event counts what was kept
        state = json.loads((tmp_path / f".{name}.hifi-parts" / "progress.json").read_text())
    else:
        state = json.loads((out / ".hifi-retime.json").read_text())
        assert len(list(out.glob("frame_*.png"))) == stop.done
    assert state["frames_done"] == stop.done < 50
    r = retime_video(clip, out, RetimeTarget(fps=60), method="blend", encoding=encoding,
                     run=RunOptions(segment_seconds=0.2, resume=True))
    assert r.resumed_from == stop.done and r.frames_written == 50
    if codec == "ffv1":
        assert np.array_equal(frames_of(out), frames_of(whole))
    else:
        assert np.array_equal(png_frames(out), png_frames(whole))


def test_ctrl_c_in_the_interpolator_stops_both_threads_and_resumes(tmp_path, clip):
    calls = []

    def interrupted(frame0, frame2, taus):
        calls.append(1)
        if len(calls) == 7:
            raise KeyboardInterrupt
        return retime.blend_interpolator(frame0, frame2, taus)

    out = tmp_path / "o.mkv"
    with pytest.raises(KeyboardInterrupt):
        retime_video(clip, out, RetimeTarget(multiplier=2), interpolator=interrupted, encoding=LOSSLESS,
                     run=PIPELINED)
    r = retime_video(clip, out, RetimeTarget(multiplier=2), interpolator=retime.blend_interpolator,
                     encoding=LOSSLESS, run=RunOptions(segment_seconds=0.2, resume=True, pipeline=False))
    assert 0 < r.resumed_from < 40
    plain = retime_video(clip, tmp_path / "s.mkv", RetimeTarget(multiplier=2), method="blend",
                         encoding=LOSSLESS, run=SEQUENTIAL)
    assert plain.frames_written == r.frames_written
    assert np.array_equal(frames_of(out), frames_of(tmp_path / "s.mkv"))


# ---------------------------------------------------------------- overlap, and turning it off


def test_decoding_and_encoding_overlap_the_interpolator(tmp_path, clip, monkeypatch):
    # sleeps, not work: the overlap shows even on a busy machine
    original = VideoWriter.write

    def slow_write(self, frame):
        time.sleep(0.03)
        original(self, frame)

    def slow_blend(frame0, frame2, taus):
        time.sleep(0.06)
        return retime.blend_interpolator(frame0, frame2, taus)

    monkeypatch.setattr(VideoWriter, "write", slow_write)
    seconds = {}
    for name, run in (("pipelined", PIPELINED), ("sequential", SEQUENTIAL)):
        r = retime_video(clip, tmp_path / f"{name}.mkv", RetimeTarget(multiplier=2), interpolator=slow_blend,
                         detection=Detection(scene_cuts=False), encoding=LOSSLESS, run=run)
        seconds[name] = r.seconds
    # sequential: 19 calls x 60 ms + 40 frames x 30 ms = 2.3 s of sleeping; pipelined: ~1.2 s
    assert seconds["pipelined"] < 0.8 * seconds["sequential"], seconds


def test_no_pipeline_starts_no_thread(tmp_path, clip, monkeypatch):
    from hifi_core.cli import main

    def refuse(*args, **kwargs):
        raise AssertionError("--no-pipeline must not start a worker thread")

    monkeypatch.setattr(engine, "ReadAhead", refuse)
    monkeypatch.setattr(engine, "EncodeThread", refuse)
    out = tmp_path / "cli.mkv"
    assert main(["retime", str(clip), str(out), "--multiplier", "2", "--method", "blend", "--codec", "ffv1",
                 "--no-pipeline"]) == 0
    assert len(frames_of(out)) == 40


def test_by_default_the_model_on_the_cpu_runs_without_the_pipeline(tmp_path, clip, monkeypatch):
    # on a CPU the network takes every core: the workers only slowed it (3-29 % on 2 cores)
    import torch

    from hifi_core import CascadeSettings, build_model

    started, real = [], engine.ReadAhead
    monkeypatch.setattr(engine, "ReadAhead", lambda *args: (started.append(args[1]), real(*args))[1])
    retime_video(clip, tmp_path / "blend.mkv", RetimeTarget(multiplier=2), method="blend", encoding=LOSSLESS)
    assert len(started) == 1  # a cheap interpolator keeps the pipeline
    model = build_model("tiny")
    retime_video(clip, tmp_path / "model.mkv", RetimeTarget(multiplier=2), model=model,
                 settings=CascadeSettings(patch_size=(32, 32), overlap=8), encoding=LOSSLESS,
                 run=RunOptions(max_frames=3))
    assert len(started) == 1  # no worker for the model on the CPU
    retime_video(clip, tmp_path / "forced.mkv", RetimeTarget(multiplier=2), model=model,
                 settings=CascadeSettings(patch_size=(32, 32), overlap=8), encoding=LOSSLESS,
                 run=RunOptions(max_frames=3, pipeline=True))
    assert len(started) == 2
    assert np.array_equal(frames_of(tmp_path / "forced.mkv"), frames_of(tmp_path / "model.mkv"))
    on_a_gpu = torch.nn.Linear(1, 1, device="meta")  # a stand-in: its parameters are not on the CPU
    assert engine._network_on_cpu("hifi", model) and not engine._network_on_cpu("hifi", on_a_gpu)


# ---------------------------------------------------------------- the two workers on their own


def test_read_ahead_yields_in_order_then_raises_the_same_error():
    broken = ValueError("frame 3 is damaged")

    def items():
        yield from range(3)
        raise broken

    got = []
    with ReadAhead(items(), 2) as ahead:
        with pytest.raises(ValueError) as caught:
            for x in ahead:
                got.append(x)
    assert got == [0, 1, 2] and caught.value is broken


def test_read_ahead_left_early_closes_its_source_and_stays_bounded():
    made, closed = [], threading.Event()

    def endless():
        try:
            while True:
                made.append(len(made))
                yield made[-1]
        finally:
            closed.set()

    with ReadAhead(endless(), 2) as ahead:
        assert next(iter(ahead)) == 0
        time.sleep(0.05)
        assert len(made) <= 1 + 2 + 1  # taken, queued, and one waiting to be queued
    assert closed.is_set()


def test_encode_thread_error_wins_over_a_later_error_but_not_over_ctrl_c():
    def write(index, frame):
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        with EncodeThread(write, 2) as encoder:
            encoder.write(0, None)
            time.sleep(0.05)
            raise Cancelled("stop")  # came after the failed write: the write's error wins
    with pytest.raises(KeyboardInterrupt):
        with EncodeThread(write, 2) as encoder:
            encoder.write(0, None)
            time.sleep(0.05)
            raise KeyboardInterrupt


def test_encode_thread_writes_everything_on_success_and_drops_the_queue_on_an_error():
    written, gate = [], threading.Event()

    def write(index, frame):
        gate.wait()
        written.append(index)

    with EncodeThread(write, 3) as encoder:
        for i in range(3):
            encoder.write(i, None)
        gate.set()
    assert written == [0, 1, 2]
    written.clear()
    gate.clear()
    with pytest.raises(Cancelled):
        with EncodeThread(write, 3) as encoder:
            for i in range(3):
                encoder.write(i, None)
            opener = threading.Timer(0.05, gate.set)
            opener.start()
            raise Cancelled("stop")
    opener.join()
    assert written in ([], [0])  # at most the frame it had started


def test_queue_depth_shrinks_for_large_frames():
    assert queue_depth(4, 1920 * 1080 * 3 * 4) == 4
    assert queue_depth(4, 3840 * 2160 * 3 * 4) == 2
    assert queue_depth(4, 7680 * 4320 * 3 * 4) == 1
