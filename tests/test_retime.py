"""hifi_core.retime: schedule arithmetic and the streaming engine on generated clips."""

from __future__ import annotations

import json
import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from hifi_core import retime
from hifi_core.errors import Cancelled, HiFIInputError
from hifi_core.retime import Detection, Encoding, RetimeTarget, RunOptions, retime_video
from hifi_core.timeline import interval_schedule, output_schedule
from media import audio_duration, clip_frame, decode_all, write_clip

LOSSLESS = Encoding(codec="ffv1", pix_fmt="bgr0")  # decoded output == the frames written


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """20 frames at 24 fps, a hard cut before frame 12, a 440 Hz tone."""
    return write_clip(tmp_path_factory.mktemp("src") / "cut.mkv", num_frames=20, cut_at=12, audio=True)


def source(i: int, cut_at=12, **kw) -> np.ndarray:
    return clip_frame(i, cut_at=cut_at, **kw)


def blend(a: np.ndarray, b: np.ndarray, tau: float) -> np.ndarray:
    """What the writer stores for blend_interpolator (float blend, then rounded to 8 bit)."""
    return np.floor((1 - tau) * (a / 255.0) * 255 + tau * (b / 255.0) * 255 + 0.5).astype(np.uint8)


# ---------------------------------------------------------------- schedule


def test_multiplier_schedule_keeps_originals_and_duration():
    sched = output_schedule(5, Fraction(2))
    assert len(sched) == 10
    assert [(s.source, s.tau, s.mode) for s in sched[:3]] == [
        (0, 0.0, "original"), (0, 0.5, "interpolate"), (1, 0.0, "original")]
    assert [s.mode for s in sched[-2:]] == ["original", "hold"]  # the last frame is held


def test_fps_schedule_is_exact_for_ntsc_to_60():
    src, dst, n = Fraction(24000, 1001), Fraction(60), 1202
    ratio = dst / src
    sched = output_schedule(n, ratio)
    assert len(sched) == math.ceil(n * ratio)
    for s in sched:
        position = Fraction(s.index) / ratio  # output time k/60 in source frames
        if s.mode == "interpolate":
            assert s.source == math.floor(position) and s.target == s.source + 1
            assert s.tau == pytest.approx(float(position - s.source), abs=1e-12)
            assert 0 < s.tau < 1
        elif s.mode == "original":
            assert position == s.source
    # the grids meet every 1001 output frames (16.68 s): k = 0, 1001, 2002, 3003
    assert [s.index for s in sched if s.mode == "original"] == [0, 1001, 2002, 3003]


def test_cut_interval_repeats_the_nearer_frame():
    sched = interval_schedule(3, 4, Fraction(4), cut=True)
    assert [(s.source, s.mode) for s in sched] == [(3, "original"), (3, "cut"), (4, "cut"), (4, "cut")]


def test_dedup_keyframes_retime_motion_across_the_gap():
    sched = output_schedule(6, Fraction(1), keyframes=[0, 2, 4])
    assert [(s.source, s.target, s.tau) for s in sched] == [
        (0, 0, 0.0), (0, 2, 0.5), (2, 2, 0.0), (2, 4, 0.5), (4, 4, 0.0), (4, 4, 0.0)]


def test_target_validation():
    with pytest.raises(HiFIInputError, match="exactly one"):
        RetimeTarget(multiplier=2, fps=60)
    with pytest.raises(HiFIInputError, match="whole number"):
        RetimeTarget(multiplier=2.5)
    assert RetimeTarget(fps="59.94").fps == Fraction(60000, 1001)
    assert RetimeTarget(fps=23.976).fps == Fraction(24000, 1001)
    with pytest.raises(HiFIInputError, match="frame rate"):
        RetimeTarget(fps="fast")


# ---------------------------------------------------------------- engine


def test_multiplier_two_frames_times_audio_and_cut(tmp_path, clip):
    out = tmp_path / "x2.mkv"
    result = retime_video(clip, out, RetimeTarget(multiplier=2), method="blend", encoding=LOSSLESS)
    assert result.cuts == [12] and result.frames_written == 40 and result.audio == "copied"
    assert result.seconds >= result.interpolation_seconds > 0  # what the summary compares
    frames, times, rate = decode_all(out)
    assert rate == 48 and len(frames) == 40
    assert times == pytest.approx([k / 48 for k in range(40)], abs=1e-3)
    for i in range(20):
        assert np.array_equal(frames[2 * i], source(i))  # originals untouched
    assert np.abs(frames[3].astype(int) - blend(source(1), source(2), 0.5)).max() <= 1
    # across the cut (source 11 -> 12) nothing is blended: output 23 repeats a real frame
    assert np.array_equal(frames[23], source(12))
    assert audio_duration(out) == pytest.approx(audio_duration(clip), abs=0.03)


def test_fps_target_timestamps_and_cut_copies(tmp_path, clip):
    out = tmp_path / "60.mkv"
    result = retime_video(clip, out, RetimeTarget(fps=60), method="blend", encoding=LOSSLESS)
    frames, times, rate = decode_all(out)
    assert rate == 60 and len(frames) == result.frames_written == math.ceil(20 * 60 / 24)
    assert times == pytest.approx([k / 60 for k in range(len(frames))], abs=1e-3)
    ratio = Fraction(60, 24)
    for k in range(len(frames)):
        p = Fraction(k) / ratio
        if 11 < p < 12:  # the cut interval: exact copies of the nearer frame
            assert np.array_equal(frames[k], source(11 if p < Fraction(23, 2) else 12))
    assert audio_duration(out) == pytest.approx(audio_duration(clip), abs=0.03)


def test_slowmo_drops_or_stretches_audio(tmp_path, clip):
    out = tmp_path / "slow.mkv"
    r = retime_video(clip, out, RetimeTarget(slowmo=3), method="blend", encoding=LOSSLESS)
    frames, times, rate = decode_all(out)
    assert rate == 24 and len(frames) == 60 and r.audio == "dropped"
    assert audio_duration(out) == 0.0
    assert np.array_equal(frames[3], source(1))
    stretched = tmp_path / "stretch.mp4"
    r = retime_video(clip, stretched, RetimeTarget(slowmo=3), method="blend",
                     encoding=Encoding(slowmo_audio="stretch"))
    assert r.audio == "stretched"
    assert audio_duration(stretched) == pytest.approx(3 * 20 / 24, abs=0.06)


def test_no_scene_detect_blends_across_the_cut(tmp_path, clip):
    out = tmp_path / "nocut.mkv"
    r = retime_video(clip, out, RetimeTarget(multiplier=2), method="blend",
                     detection=Detection(scene_cuts=False), encoding=LOSSLESS)
    frames, _, _ = decode_all(out)
    assert r.cuts == []
    assert np.abs(frames[23].astype(int) - blend(source(11), source(12), 0.5)).max() <= 1


def test_dedup_retimes_motion_across_duplicates(tmp_path):
    twos = write_clip(tmp_path / "twos.mkv", num_frames=12, hold=2)
    out = tmp_path / "dedup.mkv"
    r = retime_video(twos, out, RetimeTarget(multiplier=1), method="blend",
                     detection=Detection(dedup=True), encoding=LOSSLESS)
    frames, _, _ = decode_all(out)
    assert r.duplicates_dropped == 6 and len(frames) == 12
    pic = [clip_frame(2 * j, hold=2) for j in range(6)]
    assert np.array_equal(frames[2], pic[1])
    # source frame 1 duplicated 0; now it is the half-way point of the real motion 0 -> 2
    assert np.abs(frames[1].astype(int) - blend(pic[0], pic[1], 0.5)).max() <= 1
    assert not np.array_equal(frames[1], pic[0])


def test_png_sequence_output(tmp_path, clip):
    out = tmp_path / "seq"
    r = retime_video(clip, out, RetimeTarget(multiplier=2), method="blend", encoding=Encoding(codec="png"))
    names = sorted(p.name for p in out.iterdir())
    assert names[:2] == ["audio.mka", "frame_000000.png"] and len(names) == 41
    assert r.frames_written == 40


class CancelAfter:
    def __init__(self, frames: int):
        self.frames, self.done = frames, 0

    def progress(self, event):
        self.done = event.frames_done

    def __call__(self):
        return self.done >= self.frames


@pytest.mark.parametrize("codec", ["ffv1", "png"])
def test_cancel_leaves_partial_output_and_resume_equals_uninterrupted(tmp_path, clip, codec):
    opts = LOSSLESS if codec == "ffv1" else Encoding(codec="png")
    name = "out.mkv" if codec == "ffv1" else "seq"
    whole = tmp_path / f"whole_{name}"
    retime_video(clip, whole, RetimeTarget(fps=60), method="blend", encoding=opts,
                 run=RunOptions(segment_seconds=0.2))
    out = tmp_path / name
    calls = []

    def spy(frame0, frame2, taus):
        calls.append(len(taus))
        return retime.blend_interpolator(frame0, frame2, taus)

    stop = CancelAfter(21)
    with pytest.raises(Cancelled):
        retime_video(clip, out, RetimeTarget(fps=60), interpolator=spy, cancel=stop,
                     progress=stop.progress, encoding=opts, run=RunOptions(segment_seconds=0.2))
    if codec == "ffv1":
        partial, times, _ = decode_all(out)  # playable, holds the frames finished so far
        assert len(partial) == stop.done and times[-1] == pytest.approx((stop.done - 1) / 60, abs=1e-3)
        state = json.loads((tmp_path / f".{name}.hifi-parts" / "progress.json").read_text())
        assert state["frames_done"] == stop.done
    first = sum(calls)
    r = retime_video(clip, out, RetimeTarget(fps=60), interpolator=spy, encoding=opts,
                     run=RunOptions(segment_seconds=0.2, resume=True))
    assert r.resumed_from == stop.done and r.frames_written == 50
    assert sum(calls) - first < 36 - 10  # 36 in-betweens in all; the finished ones not redone
    if codec == "ffv1":
        assert np.array_equal(decode_all(out)[0], decode_all(whole)[0])
        assert not (tmp_path / f".{name}.hifi-parts").exists()
    else:
        import cv2

        files = sorted(p.name for p in out.glob("frame_*.png"))
        assert files == sorted(p.name for p in whole.glob("frame_*.png"))
        for f in files:
            assert np.array_equal(cv2.imread(str(out / f)), cv2.imread(str(whole / f)))


def test_ctrl_c_inside_interpolation_then_resume_h264(tmp_path, clip):
    whole = tmp_path / "whole.mp4"
    retime_video(clip, whole, RetimeTarget(multiplier=3), method="blend",
                 run=RunOptions(segment_seconds=0.25))
    state = {"calls": 0}

    def interrupted(frame0, frame2, taus):
        state["calls"] += 1
        if state["calls"] == 9:
            raise KeyboardInterrupt
        return retime.blend_interpolator(frame0, frame2, taus)

    out = tmp_path / "out.mp4"
    with pytest.raises(KeyboardInterrupt):
        retime_video(clip, out, RetimeTarget(multiplier=3), interpolator=interrupted,
                     run=RunOptions(segment_seconds=0.25))
    partial = decode_all(out)[0]
    assert 0 < len(partial) < 60
    r = retime_video(clip, out, RetimeTarget(multiplier=3), interpolator=interrupted,
                     run=RunOptions(segment_seconds=0.25, resume=True))
    assert r.resumed_from == len(partial)
    got, times, _ = decode_all(out)
    ref = decode_all(whole)[0]
    assert len(got) == 60 and times == pytest.approx([k / 72 for k in range(60)], abs=1e-3)
    # lossy: equal up to re-encoding noise where the encoder restarted
    assert np.abs(got.astype(int) - ref.astype(int)).mean() < 2.0
    assert audio_duration(out) == pytest.approx(audio_duration(clip), abs=0.03)


def test_segmented_h264_keeps_its_frame_rate_when_the_last_segment_is_short(tmp_path):
    # 60 NTSC frames to 50 fps = 126 frames in segments of 25: the last holds one frame and,
    # with no B-frames to reorder, its decode times lag less than the others'
    import av

    clip = write_clip(tmp_path / "ntsc.mp4", num_frames=60, codec="libx264", pix_fmt="yuv420p",
                      fps=Fraction(24000, 1001))
    out = tmp_path / "out.mp4"
    r = retime_video(clip, out, RetimeTarget(fps=50), method="blend", run=RunOptions(segment_seconds=0.5))
    assert r.frames_written == 126
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        durations = {p.duration for p in container.demux(stream) if p.size}
        assert Fraction(stream.average_rate) == 50
    assert len(durations) == 1
    _, times, _ = decode_all(out)
    assert times == pytest.approx([k / 50 for k in range(126)], abs=1e-3)


def test_resume_refuses_other_settings_and_restarts_without_resume(tmp_path, clip):
    out = tmp_path / "o.mkv"
    stop = CancelAfter(5)
    with pytest.raises(Cancelled):
        retime_video(clip, out, RetimeTarget(multiplier=2), method="blend", cancel=stop,
                     progress=stop.progress, encoding=LOSSLESS, run=RunOptions(segment_seconds=0.1))
    with pytest.raises(HiFIInputError, match="ratio"):
        retime_video(clip, out, RetimeTarget(multiplier=3), method="blend", encoding=LOSSLESS,
                     run=RunOptions(resume=True))
    parts = tmp_path / ".o.mkv.hifi-parts"
    (parts / "part_000009999.mkv").write_bytes(b"left by a hard kill")
    r = retime_video(clip, out, RetimeTarget(multiplier=2), method="blend", encoding=LOSSLESS,
                     run=RunOptions(resume=True, segment_seconds=0.1))
    assert r.resumed_from > 0 and len(decode_all(out)[0]) == 40
    r = retime_video(clip, out, RetimeTarget(multiplier=2), method="blend", encoding=LOSSLESS,
                     run=RunOptions(resume=True))
    assert r.resumed_from == 0  # nothing to resume: a normal run


def test_bad_paths_fail_before_any_work(tmp_path, clip):
    def never(*a):
        raise AssertionError("interpolation must not start")

    cases = [
        (tmp_path / "missing.mp4", tmp_path / "o.mp4", {}, "not found"),
        (clip, tmp_path / "nodir" / "o.mp4", {}, "does not exist"),
        (clip, tmp_path / "o.mp4", {"codec": "theora"}, "available"),
        (clip, clip, {"codec": "ffv1"}, "is the input"),
        (clip, tmp_path / "o.mp4", {"codec": "prores"}, r"\.mov"),
    ]
    for src, dst, kw, match in cases:
        with pytest.raises(HiFIInputError, match=match):
            retime_video(src, dst, RetimeTarget(multiplier=2), interpolator=never, encoding=Encoding(**kw))
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 100)
    with pytest.raises(HiFIInputError, match="could not read"):
        retime_video(bad, tmp_path / "o.mp4", RetimeTarget(multiplier=2), interpolator=never)


def test_ten_bit_source_stays_ten_bit(tmp_path):
    from hifi_core.video_io import probe_video

    ten = write_clip(tmp_path / "ten.mkv", num_frames=4, bits=10)
    out = tmp_path / "ten_out.mp4"
    retime_video(ten, out, RetimeTarget(multiplier=2), method="blend", encoding=Encoding(codec="h265"))
    info = probe_video(out)
    assert info.bit_depth == 10 and info.pix_fmt == "yuv420p10le"
    with pytest.warns(UserWarning, match="8-bit output from 10-bit"):
        retime_video(ten, tmp_path / "eight.mp4", RetimeTarget(multiplier=2), method="blend")  # h264 default


def test_hifi_model_path_with_tiny_preset(tmp_path, clip):
    from hifi_core import CascadeSettings, build_model

    model = build_model("tiny")
    settings = CascadeSettings(levels=1, patch_size=(64, 64), overlap=16, steps=1)
    out = tmp_path / "hifi.mkv"
    r = retime_video(clip, out, RetimeTarget(multiplier=2), model=model, settings=settings, encoding=LOSSLESS)
    frames, _, _ = decode_all(out)
    assert len(frames) == r.frames_written == 40
    assert np.array_equal(frames[4], source(2))
    assert np.array_equal(frames[23], source(12))  # still no interpolation across the cut


def test_cli_retime(tmp_path, clip, capsys):
    from hifi_core.cli import main

    out = tmp_path / "cli.mkv"
    rc = main(["retime", str(clip), str(out), "--fps", "30", "--method", "blend", "--codec", "ffv1"])
    assert rc == 0 and len(decode_all(out)[0]) == 25
    assert "scene cuts before source frames: 12" in capsys.readouterr().out
    rc = main(["retime", str(tmp_path / "nope.mp4"), str(out), "--fps", "30", "--method", "blend"])
    assert rc == 2 and "not found" in capsys.readouterr().err


def test_max_frames_previews_the_start_with_matching_audio(tmp_path, clip):
    out = tmp_path / "head.mkv"
    result = retime_video(clip, out, RetimeTarget(multiplier=2), method="blend", encoding=LOSSLESS,
                          run=RunOptions(max_frames=8))
    assert result.source_frames == 8 and result.frames_written == 16
    frames, times, rate = decode_all(out)
    assert len(frames) == 16 and np.array_equal(frames[14], source(7))
    # the tail moves toward source frame 8, which exists, instead of holding frame 7
    assert np.array_equal(frames[15], blend(source(7), source(8), 0.5))
    assert audio_duration(out) == pytest.approx(8 / 24, abs=0.03)  # cut to the video, not 20/24
    # stopping just before the cut (frame 12 starts a new shot): the tail holds, no cut counted
    before_cut = retime_video(clip, tmp_path / "cut.mkv", RetimeTarget(multiplier=2), method="blend",
                              encoding=LOSSLESS, run=RunOptions(max_frames=12))
    frames, _, _ = decode_all(tmp_path / "cut.mkv")
    assert before_cut.cuts == [] and before_cut.source_frames == 12
    assert np.array_equal(frames[23], source(11))
    with pytest.raises(HiFIInputError, match="max_frames"):
        retime_video(clip, tmp_path / "one.mkv", RetimeTarget(multiplier=2), method="blend",
                     encoding=LOSSLESS, run=RunOptions(max_frames=1))


@pytest.mark.parametrize("limit, failing", [(150_000, "writing"), (400_000, "joining")])
def test_a_file_size_limit_mid_retime_is_one_clean_error_and_keeps_only_finished_segments(tmp_path, limit, failing):
    # RLIMIT_FSIZE makes the encoder's write fail with EFBIG, as a full disk fails with ENOSPC
    import resource
    import subprocess
    import sys

    src = write_clip(tmp_path / "in.mkv", num_frames=60, width=160, height=96)
    out = tmp_path / "out.mkv"
    # a segment of this lossless clip is about 173 kB: at 150 kB the first segment fails while
    # it is written; at 400 kB every segment fits and the joined file does not

    def limit_file_size():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    result = subprocess.run(
        [sys.executable, "-m", "hifi_core", "retime", str(src), str(out), "--multiplier", "2",
         "--method", "blend", "--codec", "ffv1", "--segment-seconds", "0.5"],
        cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True, timeout=120,
        preexec_fn=limit_file_size)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "EFBIG" in result.stderr and "--resume" in result.stderr
    assert f"error: {failing}" in result.stderr, result.stderr
    parts = tmp_path / ".out.mkv.hifi-parts"
    state = json.loads((parts / "progress.json").read_text())
    recorded = {s["file"] for s in state["segments"]}
    assert {p.name for p in parts.glob("part_*")} == recorded  # no unfinished segment
    assert bool(recorded) == (failing == "joining")
    assert state["frames_done"] == sum(s["frames"] for s in state["segments"])
    # with the limit gone, --resume finishes the job
    done = subprocess.run(
        [sys.executable, "-m", "hifi_core", "retime", str(src), str(out), "--multiplier", "2",
         "--method", "blend", "--codec", "ffv1", "--segment-seconds", "0.5", "--resume"],
        cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert decode_all(out)[0].shape[0] == 120 and not parts.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mkv", "out.mkv"]
