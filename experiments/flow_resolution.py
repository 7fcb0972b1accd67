"""How much the flow base loses when DIS sees smaller frames: PSNR of the warped average on
the config's held-out validation triplets with flows estimated at 1/1, 1/2 and 1/4 size
(the motion fade on), next to OpenCV DIS at full size (no fade). This is the measurement
behind `hifi_core.flow_base.FLOW_MAX_PIXELS`.

    .venv/bin/python -m experiments.flow_resolution --config experiments/configs/small-warped.json
"""

import argparse

import numpy as np
import torch

from hifi_core.baselines import dis_flow_interpolate
from hifi_core.flow_base import flow_average
from hifi_core.metrics import psnr
from hifi_core.training.config import load_config
from hifi_core.training.validation import real_clips, validation_set


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = load_config(args.config)
    scores, sizes = {}, set()
    for item in validation_set(real_clips(config), config):
        t = item.triplet
        f0, f2 = t.frame0[None], t.frame2[None]
        methods = {"DIS (full size)": dis_flow_interpolate(t.frame0, t.frame2, t.tau)}
        for factor in (1, 2, 4):
            methods[f"flow average, flows at 1/{factor}"] = flow_average(f0, f2, t.tau, factor)[0]
        for name, out in methods.items():
            for key in (f"{item.clip}/gap{item.gap}", "all"):
                scores.setdefault(name, {}).setdefault(key, []).append(float(psnr(out, t.target)))
        sizes.add(tuple(t.frame0.shape[-2:]))
    keys = list(next(iter(scores.values())))
    print(f"PSNR dB, {len(scores['DIS (full size)']['all'])} triplets, sizes {sorted(sizes)}")
    print("| method | " + " | ".join(keys) + " |\n|---|" + "---|" * len(keys))
    for name, row in scores.items():
        print(f"| {name} | " + " | ".join(f"{np.mean(row[k]):.2f}" for k in keys) + " |")


if __name__ == "__main__":
    main()
