"""`python -m hifi_core bench`: the --quick run end to end, and the pieces it is built from.

The quick run (tiny untrained preset, generated clips, two tiny sizes) is run once for the
module through the real CLI; its outputs are checked for existence and for sane figures
(blend is exact on a static clip, the cascade's memory ratio is finite, RIFE and DIS beat
blending on a pan, ...). The unit tests check what the figures rest on: exact synthetic
ground truth, FLOP counting, triplet sampling, OOM recording.
"""

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hifi_core.bench import data, flops, peers
from hifi_core.bench.memory import run_child
from hifi_core.triplet import to_tensor, to_uint8
from hifi_core.bench.probe import ProbeSpec
from hifi_core.errors import HiFIInputError

ROOT = Path(__file__).resolve().parent.parent


def _num(value):
    return math.inf if value == "inf" else value


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    done = subprocess.run([sys.executable, "-m", "hifi_core", "bench", "all", "--quick", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return out


def test_quick_writes_every_report(quick):
    for name in ("benchmarks.md", "benchmarks.json", "quality.md", "quality.json", "memory.md",
                 "memory.json", "speed.md", "speed.json"):
        assert (quick / name).stat().st_size > 100, name
    import cv2
    for name in ("speed_memory.png", "quality_worst_quick.png", "quality_worst_synthetic.png"):
        image = cv2.imread(str(quick / name))
        assert image is not None and image.shape[0] > 50 and image.shape[1] > 200, name
    summary = (quick / "benchmarks.md").read_text()
    for text in ("date:", "machine:", "command: `python -m hifi_core bench all --quick", "duration:",
                 "## Quality", "## Memory", "## Speed", "| blend |", "GFLOP/s"):
        assert text in summary, text
    everything = json.loads((quick / "benchmarks.json").read_text())
    assert set(everything) >= {"machine", "command", "quality", "memory", "speed", "seconds"}


def test_quick_quality_figures_are_sane(quick):
    result = json.loads((quick / "quality.json").read_text())
    assert {"methods", "records", "summary", "metrics", "contact_sheets"} <= set(result)
    names = [m["name"] for m in result["methods"]]
    assert names[0].startswith("hifi[tiny-untrained") and "blend" in names
    records = result["records"]
    static_blend = [_num(r["psnr"]) for r in records
                    if r["source"] == "static_frames" and r["method"] == "blend"]
    assert static_blend and all(p == math.inf for p in static_blend)
    by = {}
    for r in records:
        if r["group"] == "quick" and r["source"] == "pan.mkv" and r["error"] is None:
            by.setdefault(r["method"], []).append(_num(r["psnr"]))
    for method in ("dis", "rife"):
        if method in by:  # flow methods must beat blending on a clean 2 px/frame pan
            assert np.mean(by[method]) > np.mean(by["blend"]) + 3, (method, by)
    synthetic = [r for r in records if r["group"] == "synthetic"]
    assert {r["source"] for r in synthetic} == set(data.STRESS_SCENES)
    assert all(r["error"] is None and 5 < _num(r["psnr"]) for r in synthetic if r["method"] != "minterpolate")
    assert all(-1 <= r["ssim"] <= 1 for r in records if r["ssim"] is not None)


def test_quick_memory_and_speed_figures_are_sane(quick):
    memory = json.loads((quick / "memory.json").read_text())
    cascade = [r for r in memory["rows"] if r["method"] == "hifi-cascade"]
    assert len(cascade) == 2 and all(r["status"] == "ok" for r in cascade)
    for r in cascade:
        assert r["peak"] > r["setup"] > 50 * 2 ** 20  # torch alone is far above 50 MiB
        assert r["estimate"]["cascade_buffers"] > 0
    ratio = memory["ratios"]["hifi-cascade"]["peak_ratio"]
    assert math.isfinite(ratio) and 0.5 < ratio < 10
    assert any(r["method"] == "hifi-full" for r in memory["rows"])
    speed = json.loads((quick / "speed.json").read_text())
    assert speed["reference"]["gflops"] > 0
    patch = speed["unet_patch"]
    assert patch["flops"] > 0 and 0 < patch["percent_of_reference"] < 10000
    hifi = [r for r in speed["rows"] if r["method"].startswith("hifi-")]
    assert {r["method"] for r in hifi} == {"hifi-default", "hifi-fast"}
    fast = [r for r in hifi if r["method"] == "hifi-fast"]
    if speed["settings"]["fast"] == speed["settings"]["default"]:  # timed once, reported twice
        assert all(r.get("note") == "same settings as default" for r in fast)
    for r in hifi:
        assert r["status"] == "ok" and r["seconds"] > 0
        assert r["overlap_fraction_finest"] >= 0 and r["overlap_fraction_all_levels"] >= 0
    assert {r["method"] for r in speed["rows"]} >= {"blend", "dis"}
    # the retime against its interpolator's own time, with and without the pipeline
    retimes = speed["retime"]
    assert [r["pipeline"] for r in retimes] == [True, False] and all(r["frames"] == 3 for r in retimes)
    for r in retimes:
        assert 0 < r["interpolation_seconds"] <= r["seconds"]
        assert r["ratio"] == pytest.approx(r["seconds"] / r["interpolation_seconds"])
    assert "wall / interpolator" in (quick / "speed.md").read_text()


def test_the_benchmark_clip_pans_one_picture(tmp_path):
    from hifi_core.bench.retime_speed import panning_frames
    from hifi_core.bench.sizes import Resolution

    frames = panning_frames(Resolution("t", 40, 100), 3)
    assert len(frames) == 3 and frames[0].shape == (40, 100, 3) and frames[0].dtype == np.uint8
    step = 100 // 50
    assert np.array_equal(frames[1][:, :-step], frames[0][:, step:])  # 2 % of the width a frame
    assert np.array_equal(frames[2][:, :-step], frames[1][:, step:])
    assert not np.array_equal(frames[0], frames[1])


def test_stress_truth_is_the_half_way_rendering():
    height, width, d = 64, 96, 96.0  # 96 px at 1080p -> 5.69 px here
    for triplet in data.stress_triplets([], height, width, displacements=[d, 2 * 1080 * 8 / height]):
        assert triplet.frame0.shape == (3, height, width) and triplet.frame0.dtype == torch.float32
        frame0, truth, frame2 = (to_uint8(f) for f in (triplet.frame0, triplet.target, triplet.frame2))
        assert np.array_equal(to_tensor(frame0), triplet.frame0)  # made from 8-bit frames, exactly
        assert not np.array_equal(frame0, frame2)
        if triplet.source == "pan" and triplet.meta["displacement_px"] == 16.0:
            # A 16 px pan: the truth is frame0 moved by exactly 8 px, frame2 by 16.
            assert np.array_equal(truth[:, :-8], frame0[:, 8:])
            assert np.array_equal(frame2[:, :-16], frame0[:, 16:])


def test_triplet_sampling_and_clip_reading(tmp_path):
    assert data.triplet_starts(10, 2, 3) == [0, 2, 5]  # linspace(0, 5, 3), rounded half to even
    assert data.triplet_starts(4, 2, 3) == []
    static_dir, video = data.write_quick_clips(tmp_path, [])
    assert data.count_frames(video) == 7 and data.count_frames(static_dir) == 5
    triplets = data.clip_triplets(video, group="t", gaps=[1, 3], per_clip=2)
    assert [t.case for t in triplets] == ["gap1@0", "gap1@4", "gap3@0"]
    frames = data.read_frames(video, [0, 1, 2])
    assert np.array_equal(to_uint8(triplets[0].target), frames[1])  # ffv1 bgr0 round-trips exactly
    with pytest.raises(HiFIInputError, match="does not exist"):
        data.find_clips([tmp_path / "missing"])


def test_hifi_spec_parsing():
    spec = peers.HiFISpec.parse("small,steps=1,samples=4,levels=auto,patch=128x192", overlap=16)
    assert (spec.model, spec.steps, spec.samples, spec.levels, spec.patch, spec.overlap) == \
        ("small", 1, 4, "auto", (128, 192), 16)
    assert spec.label("small-untrained") == "hifi[small-untrained,s1,n4,Lauto]"
    with pytest.raises(HiFIInputError, match="not key=value"):
        peers.HiFISpec.parse("tiny,speed=3")
    with pytest.raises(HiFIInputError, match="steps"):
        peers.HiFISpec.parse("tiny,steps=0")


def test_flop_count_includes_attention_and_matches_meta():
    from hifi_core.model import build_model

    model = build_model("tiny").eval()
    total, by_op = flops.unet_flops(model, 2, 32, 48)
    assert total == flops.count_on_meta(model.config, 2, 32, 48)
    attention = sum(v for k, v in by_op.items() if "attention" in k)
    assert attention > 0 and by_op["aten.convolution"] < total
    # Attention is quadratic in tokens: doubling both sides multiplies its FLOPs by 16.
    _, bigger = flops.unet_flops(model, 2, 64, 96)
    assert sum(v for k, v in bigger.items() if "attention" in k) == 16 * attention


def test_memory_child_over_the_cap_is_recorded_as_oom():
    # A child starts at ~0.2 GiB (torch); full-frame denoising of 1024x1024 needs ~1 GiB more.
    spec = ProbeSpec(method="hifi", mode="full", height=1024, width=1024, model="tiny", levels=1,
                     patch=(64, 64), overlap=8, cap_bytes=400 * 2 ** 20)
    result = run_child(spec, timeout_s=120)
    assert result["ok"] is False and result["oom"] is True, result
    assert result["peak_rss"] > 0


def test_minterpolate_and_rife_interpolate_a_pan():
    methods, skipped = peers.build_peers(["minterpolate", "rife", "blend"])
    if len(methods) < 3:
        pytest.skip(f"peers not installed: {skipped}")
    rng = np.random.default_rng(0)
    import cv2
    base = cv2.resize(rng.random((12, 20, 3)).astype(np.float32), (104, 64), interpolation=cv2.INTER_CUBIC)
    f0, truth, f2 = (peers.from_uint8_hwc(data._to_uint8(base[:, s:s + 96])) for s in (0, 4, 8))
    scores = {}
    for method in methods:
        out = method(f0, f2, 0.5)
        assert out.shape == f0.shape and 0 <= out.min() and out.max() <= 1
        scores[method.name] = float(((out - truth) ** 2).mean())
        assert not torch.equal(out, f0) and not torch.equal(out, f2)
    assert scores["rife"] < scores["blend"] and scores["minterpolate"] < scores["blend"]
    with pytest.raises(HiFIInputError, match="midpoint"):
        methods[0](f0, f2, 0.25)


def test_the_base_method_is_hifi_with_its_network_silenced(monkeypatch):
    """`--methods base` scores the bundled checkpoint's motion base: the cascade's output when
    the network predicts exactly its base (x-prediction of zero correction)."""
    from hifi_core import default_checkpoint_path, interpolate, load_model

    if default_checkpoint_path() is None:
        pytest.skip("no bundled checkpoint")
    (method,), skipped = peers.build_peers(["base"])
    assert not skipped and "network silenced" in method.detail
    model = load_model(default_checkpoint_path())
    monkeypatch.setattr(model, "network_output", lambda *args, **kwargs: torch.zeros(args[0].shape))
    rng = np.random.default_rng(1)
    import cv2
    texture = cv2.resize(rng.random((12, 20, 3)).astype(np.float32), (112, 64), interpolation=cv2.INTER_CUBIC)
    f0, truth, f2 = (peers.from_uint8_hwc(data._to_uint8(texture[:, s:s + 96])) for s in (0, 5, 10))
    silenced = interpolate(model, f0, f2, 0.5)
    assert torch.allclose(method(f0, f2, 0.5), silenced, atol=2e-3)
    assert float(((method(f0, f2, 0.5) - truth) ** 2).mean()) < float(((0.5 * (f0 + f2) - truth) ** 2).mean())


def test_each_clip_group_keeps_its_own_name_when_consumed_later(tmp_path):
    # Regression: the groups' lazy sources once shared the loop variable, so the tuning clips
    # were reported under the last group's name ("evaluation").
    import argparse

    from hifi_core.commands.bench import _clip_source

    static_dir, video = data.write_quick_clips(tmp_path, [])
    args = argparse.Namespace(gaps=[1], triplets_per_clip=1)
    sources = {group: _clip_source(data, [clip], group, args, [])
               for group, clip in (("tuning", video), ("evaluation", static_dir))}
    assert {group: {t.group for t in source} for group, source in sources.items()} == \
        {"tuning": {"tuning"}, "evaluation": {"evaluation"}}


def test_speed_ratio_to_rife_is_hifis_time_over_rifes_at_the_same_size():
    from hifi_core.bench.speed import ratio_to_rife

    rows = [{"resolution": "720p", "method": "hifi-default", "status": "ok", "seconds": 6.0},
            {"resolution": "720p", "method": "rife", "status": "ok", "seconds": 4.0},
            {"resolution": "1080p", "method": "hifi-default", "status": "ok", "seconds": 9.0},
            {"resolution": "1080p", "method": "rife", "status": "error"}]
    assert ratio_to_rife(rows, "720p") == pytest.approx(1.5)
    assert rows[0]["ratio_to_rife"] == pytest.approx(1.5)
    assert ratio_to_rife(rows, "1080p") is None and "ratio_to_rife" not in rows[2]
