"""Bounded memory: retiming a 10x longer clip must not need more RAM (peak RSS of a subprocess).

Each retime runs in a fresh Python process (so the peaks are not mixed up) that reports its
own peak RSS. The frames are 320x240 so that holding the clip would show: the long run
writes 480 output frames, 110 MB as float32, against a peak of a few hundred MB.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from media import write_clip

ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import resource, sys, torch
torch.set_num_threads(1)
from hifi_core.retime import RetimeTarget, RunOptions, retime_video
r = retime_video(sys.argv[1], sys.argv[2], RetimeTarget(multiplier=2), method="blend",
                 run=RunOptions(segment_seconds=2.0))
print(r.frames_written, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def peak_rss_kb(src: Path, dst: Path) -> tuple[int, int]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", CHILD, str(src), str(dst)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    frames, rss = done.stdout.split()[-2:]
    return int(frames), int(rss)


def test_peak_rss_does_not_grow_with_clip_length(tmp_path):
    opts = dict(width=320, height=240, audio=True, speed=5, cut_at=None)
    short = write_clip(tmp_path / "short.mkv", num_frames=24, **opts)
    long = write_clip(tmp_path / "long.mkv", num_frames=240, **opts)
    frames_short, rss_short = peak_rss_kb(short, tmp_path / "short.mp4")
    frames_long, rss_long = peak_rss_kb(long, tmp_path / "long.mp4")
    assert (frames_short, frames_long) == (48, 480)
    held = 480 * 3 * 240 * 320 * 4 / 1024  # KB the long output would take if it were held
    assert rss_long < 1.10 * rss_short, (rss_short, rss_long)
    assert rss_long - rss_short < 0.25 * held
