"""The memory readout tells the truth: the peak the planner promises (what the ComfyUI readout
shows) is within 30 % of what a real job adds to a fresh process's peak RSS."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHECKPOINT = ROOT / "checkpoints" / "hifi-lean.safetensors"
MOTION_WEIGHTS = ROOT / "checkpoints" / "motion" / "rife-hdv3-ifnet.safetensors"

JOB = textwrap.dedent("""
    import ctypes, json, resource, sys
    # pin every page the job touches: this machine's proactive reclaim (DAMON) otherwise pages
    # out freed-but-kept allocator memory while the job runs, so the measured peak would
    # depend on how long the job took (260 vs 470 MB at 540p in one day's runs)
    locked = ctypes.CDLL(None, use_errno=True).mlockall(3) == 0  # MCL_CURRENT | MCL_FUTURE
    import torch
    from hifi_core import CascadeSettings, interpolate, load_model
    torch.set_num_threads(2)
    height, width = int(sys.argv[2]), int(sys.argv[3])
    model = load_model(sys.argv[1])
    settings = CascadeSettings(levels="auto", patch_size=(256, 256), overlap=32, steps=1)
    g = torch.Generator().manual_seed(0)
    frame0, frame2 = torch.rand(1, 3, height, width, generator=g), torch.rand(1, 3, height, width, generator=g)
    # what is loaded before the job (the models, the motion weights, the kernels) is baseline
    interpolate(model, frame0[..., :64, :64].contiguous(), frame2[..., :64, :64].contiguous(), settings=settings)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    interpolate(model, frame0, frame2, settings=settings)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    from hifi_core.motion_base import find_rife_weights
    print(json.dumps({"growth": after - before, "baseline": before, "locked": locked, "motion_base": model.motion_base,
                      "rife_weights": str(find_rife_weights())}))
""")


@pytest.mark.skipif(not MOTION_WEIGHTS.is_file(), reason="RIFE weights not set up (python -m hifi_core setup-motion)")
@pytest.mark.parametrize("height, width", [(540, 960), (720, 1280)])
def test_the_readout_peak_is_within_30_percent_of_the_measured_job(pack, comfy, height, width):
    import importlib

    shown = importlib.import_module(f"{pack.__name__}.nodes.readout").cascade_readout(
        checkpoint=CHECKPOINT.name, width=width, height=height, levels=0, patch_width=256, patch_height=256,
        overlap=32, samples=1)
    out = subprocess.run([sys.executable, "-c", JOB, str(CHECKPOINT), str(height), str(width)], cwd=ROOT,
                         check=True, capture_output=True, text=True, timeout=600)
    job = json.loads(out.stdout.strip().splitlines()[-1])
    assert job["motion_base"] == "rife", job  # the bundled model's base, as the readout assumes
    print(f"{height}x{width}: measured {job['growth'] / 2**20:.0f} MiB, readout {shown['peak_bytes'] / 2**20:.0f} MiB")
    assert 0.7 * shown["peak_bytes"] <= job["growth"] <= 1.3 * shown["peak_bytes"], (job, shown)
