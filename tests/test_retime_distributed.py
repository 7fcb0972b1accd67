"""`python -m hifi_core retime` under torchrun: two CPU processes share one file.

The joined output must equal a single-process run of the same command frame for frame, and
a rank killed mid-way must resume its own share. The clip (40 frames at 24 fps, a cut before
frame 23, a tone) is retimed to 60 fps in 9-frame segments: 12 segments, so process 0
renders output frames [0, 54) and process 1 [54, 100). Output 54 is the second in-between of
the pair 21 -> 22, so the shares split a pair, and process 1 starts 2 frames before the cut,
which it must find (or not) exactly as the whole run does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from hifi_core.timeline import output_schedule
from media import audio_duration, decode_all, write_clip

ROOT = Path(__file__).resolve().parent.parent
SHARED = ["--fps", "60", "--codec", "ffv1", "--segment-seconds", "0.15"]
HIFI = ["--method", "hifi", "--preset", "tiny", "--steps", "1", "--levels", "1", "--patch", "64x64",
        "--overlap", "16", "--seed", "7", "--device", "cpu"]
BLEND = ["--method", "blend"]

# Rank 1 SIGKILLs itself on its KILL_RANK1_AT-th interpolator call (a hard kill: nothing is
# cleaned up); every rank that finishes writes how many in-betweens calls it made.
RANK_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from hifi_core.cli import main
    from hifi_core.retime import interpolators

    rank = int(os.environ["RANK"])
    kill_at = int(os.environ.get("KILL_RANK1_AT", "0")) if rank == 1 else 0
    calls = 0
    blend = interpolators.blend_interpolator

    def counted(frame0, frame2, taus):
        global calls
        calls += 1
        if calls == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return blend(frame0, frame2, taus)

    interpolators.blend_interpolator = counted
    rc = main(sys.argv[1:])
    Path(os.environ["CALLS_DIR"], f"rank{rank}.calls").write_text(str(calls))
    sys.exit(rc)
""")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_clip(tmp_path_factory.mktemp("src") / "cut.mkv", num_frames=40, cut_at=23, audio=True)


def _env(**extra) -> dict:
    return dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", **extra)


def torchrun(*args, **env) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    return subprocess.run([*command, *map(str, args)], cwd=ROOT, env=_env(**env), capture_output=True,
                          text=True, timeout=180)


def single(*args) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "hifi_core", "retime", *map(str, args)], cwd=ROOT,
                            env=_env(), capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def assert_same_video(got: Path, want: Path) -> None:
    frames, times, rate = decode_all(got)
    ref, ref_times, ref_rate = decode_all(want)
    assert len(frames) == len(ref) == 100 and rate == ref_rate == 60
    assert times == ref_times
    for k in range(len(ref)):
        assert np.array_equal(frames[k], ref[k]), f"output frame {k} differs"
    assert audio_duration(got) == pytest.approx(audio_duration(want), abs=1e-6)


def test_two_processes_make_the_single_run_frame_for_frame(tmp_path, clip):
    # the model (tiny preset, seeded): each pair's noise comes from its own index
    whole = tmp_path / "whole.mkv"
    report = single(clip, whole, *SHARED, *HIFI).stdout
    out = tmp_path / "shared.mkv"
    result = torchrun("-m", "hifi_core", "retime", clip, out, *SHARED, *HIFI)
    assert result.returncode == 0, result.stderr[-3000:]
    assert_same_video(out, whole)
    # rank 0 reports the whole file: the cut found by process 1, all 100 frames
    line = [t.split(": ", 1)[1] for t in result.stdout.splitlines() if t.startswith("wrote")]
    assert line == [t.split(": ", 1)[1] for t in report.splitlines() if t.startswith("wrote")]
    assert "100 frames at 60.000 fps from 40 source frames; scene cuts before source frames: 23;" in line[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shared.mkv", "whole.mkv"]  # parts, probes gone


def _pairs_to_make(start: int, end: int) -> int:
    """Interpolator calls (one per pair: at most 3 in-betweens, 4 per call) for output frames
    [start, end) of this clip, from the timeline every path uses."""
    schedule = output_schedule(40, Fraction(60, 24), cuts=[23])
    return len({s.source for s in schedule if s.mode == "interpolate" and start <= s.index < end})


def test_a_killed_rank_resumes_its_own_share(tmp_path, clip):
    whole = tmp_path / "whole.mkv"
    single(clip, whole, *SHARED, *BLEND)
    (tmp_path / "rank.py").write_text(RANK_SCRIPT)
    out = tmp_path / "shared.mkv"
    command = [tmp_path / "rank.py", "retime", clip, out, *SHARED, *BLEND]
    killed = torchrun(*command, KILL_RANK1_AT="10", CALLS_DIR=str(tmp_path))
    assert killed.returncode != 0 and not out.exists()
    parts = tmp_path / ".shared.mkv.hifi-parts"
    states = [json.loads((parts / f"progress.rank{r}.json").read_text()) for r in (0, 1)]
    assert [s["settings"]["share"] for s in states] == [[0, 54], [54, None]]
    done = [s["frames_done"] for s in states]
    # the kill came on rank 1's 10th of 17 pairs: its first finished segments are kept
    assert _pairs_to_make(54, 100) == 17
    assert 54 < done[1] < 100 and done[1] % 9 == 0
    assert done[1] == 54 + sum(seg["frames"] for seg in states[1]["segments"])
    recorded = {seg["file"] for s in states for seg in s["segments"]}
    files = {p.name for p in parts.glob("part_*")}
    # beside them, at most the segment rank 1 was writing (unrecorded: the resume removes it)
    assert recorded <= files and files - recorded <= {f"part_{done[1]:09d}.mkv"}

    resumed = torchrun(*command, "--resume", CALLS_DIR=str(tmp_path))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_same_video(out, whole)
    assert not parts.exists()
    # each rank made only what its own share still lacked (rank 0 was stopped by torchrun
    # when rank 1 died, or had finished)
    calls = [int((tmp_path / f"rank{r}.calls").read_text()) for r in (0, 1)]
    assert calls == [_pairs_to_make(done[0], 54), _pairs_to_make(done[1], 100)]
    assert calls[1] < _pairs_to_make(54, 100)
