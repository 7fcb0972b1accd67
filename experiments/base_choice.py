"""Research: mixing the two motion bases (DIS and RIFE) per region by how well each base's two
warped frames agree there (`flow_base.mix_bases`), on real held-out frames of every training
clip (tau = 1/2, last 20 % of each clip, every `--stride` frames, spans 2 and 4) and on the
synthetic stress set of `bench quality` (540p). Prints mean PSNR of DIS, RIFE, the mixture and
the per-pair oracle (the better of the two bases per pair).

    .venv/bin/python -m experiments.base_choice [--stride 16] [--threads 2]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from hifi_core.bench.data import find_photos, stress_triplets
from hifi_core.flow_base import mix_bases, tau_flows, warp_average
from hifi_core.metrics import psnr
from hifi_core.motion_base import ifnet_tau_flows, motion_net
from hifi_core.training.real import load_clip_frames
from hifi_core.triplet import to_tensor
from hifi_core.video_io import VIDEO_EXTENSIONS


def score(f0, f2, truth) -> dict:
    # each base on its own (estimate_flows(base="rife") is already the mixture)
    taus = torch.tensor([0.5])
    flows = {"dis": tau_flows(f0, f2, 0.5), "rife": ifnet_tau_flows(f0, f2, taus, motion_net())}
    flows["mixture"] = mix_bases(f0, f2, flows["rife"], flows["dis"], taus)
    out = {name: float(psnr(warp_average(f0, f2, f, 0.5).clamp(0, 1), truth)) for name, f in flows.items()}
    return dict(out, oracle=max(out["dis"], out["rife"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--stride", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    groups = {"real": [], "synthetic": []}
    for clip in sorted(p for p in (args.data / "clips").iterdir() if p.suffix.lower() in VIDEO_EXTENSIONS):
        frames = load_clip_frames(clip)
        for start in range(int(len(frames) * 0.8), len(frames) - 4, args.stride):
            for span in (2, 4):
                f0, truth, f2 = (to_tensor(frames[start + k])[None] for k in (0, span // 2, span))
                groups["real"].append(score(f0, f2, truth))
    for t in stress_triplets(find_photos(args.data / "photos"), 540, 960):
        groups["synthetic"].append(score(t.frame0[None], t.frame2[None], t.target[None]))
    for name, rows in groups.items():
        means = {k: np.mean([r[k] for r in rows]) for k in rows[0]}
        print(f"{name} ({len(rows)} triplets): " + ", ".join(f"{k} {v:.2f}" for k, v in means.items()))


if __name__ == "__main__":
    main()
