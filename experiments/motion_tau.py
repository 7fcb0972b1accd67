"""What RIFE's midpoint-only weights cost at other times: flow averages at tau = 1/4, 1/3, 1/2,
2/3, 3/4 with DIS flows and with RIFE's flows under the linear-motion assumption
(`hifi_core.motion_base`), on real held-out frames of every training clip.

For a span s (frames i and i + s) the targets are i + k, tau = k / s. Frames come from the last
20 % of each clip (the validation range), repeated frames dropped, every `--stride` frames.

    .venv/bin/python -m experiments.motion_tau [--data ../shared/data] [--stride 12] [--threads 2]
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from hifi_core.flow_base import mix_bases, tau_flows, warp_average
from hifi_core.metrics import psnr
from hifi_core.motion_base import ifnet_tau_flows, motion_net
from hifi_core.training.real import load_clip_frames
from hifi_core.video_io import VIDEO_EXTENSIONS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--stride", type=int, default=12)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    scores = defaultdict(list)
    net = motion_net()
    clips = sorted(p for p in (args.data / "clips").iterdir() if p.suffix.lower() in VIDEO_EXTENSIONS)
    for clip in clips:
        frames = load_clip_frames(clip)
        first = int(len(frames) * 0.8)
        for start in range(first, len(frames) - 4, args.stride):
            for span in (2, 3, 4):
                f0, f2 = (torch.from_numpy(np.array(frames[i])).permute(2, 0, 1)[None].float() / 255
                          for i in (start, start + span))
                for k in range(1, span):
                    tau = Fraction(k, span)
                    truth = torch.from_numpy(np.array(frames[start + k])).permute(2, 0, 1)[None].float() / 255
                    # each base on its own, and their mixture (the product's "rife" base)
                    flows = {"flow": tau_flows(f0, f2, float(tau)),
                             "rife": ifnet_tau_flows(f0, f2, torch.tensor([float(tau)]), net)}
                    flows["mixture"] = mix_bases(f0, f2, flows["rife"], flows["flow"], torch.tensor([float(tau)]))
                    for base, base_flows in flows.items():
                        out = warp_average(f0, f2, base_flows, float(tau)).clamp(0, 1)
                        scores[(tau, base)].append(float(psnr(out, truth)))
        print(f"{clip.name}: done", flush=True)
    print("\n| tau | triplets | DIS flow average | RIFE flows, linear motion | RIFE - DIS | mixture - DIS |"
          "\n|---|---|---|---|---|---|")
    for tau in sorted({t for t, _ in scores}):
        dis, rife, mixture = (np.mean(scores[(tau, base)]) for base in ("flow", "rife", "mixture"))
        print(f"| {tau} | {len(scores[(tau, 'flow')])} | {dis:.2f} | {rife:.2f} | {rife - dis:+.2f} "
              f"| {mixture - dis:+.2f} |")


if __name__ == "__main__":
    main()
