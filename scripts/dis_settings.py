"""How much better would the flow base be with other OpenCV DIS settings? PSNR of the warped
average (motion fade on, flows at the frames' own size) on the config's held-out validation
triplets, whole frames and the flow-failure region (the region of the default flows, so every
row is scored on the same pixels), and the DIS time per triplet (both directions).

    .venv/bin/python scripts/dis_settings.py --config configs/train/small-own.json
    .venv/bin/python scripts/dis_settings.py --config configs/train/small-own.json --scale 1  # full size
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hifi_core.baselines import dis_tau_flows  # noqa: E402
from hifi_core.flow_base import warp_average  # noqa: E402
from hifi_core.metrics import psnr  # noqa: E402
from hifi_core.training.config import load_config  # noqa: E402
from hifi_core.training.trainer import real_clips, validation_set  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ablate_levels import flow_failure_mask, region_psnr  # noqa: E402

# name -> setters applied to OpenCV's MEDIUM preset (finest scale 1, patch 8, stride 3,
# 25 gradient-descent iterations, 5 variational iterations, alpha 20, delta 5, gamma 10)
SETTINGS = {
    "MEDIUM (shipped)": {},
    "finest scale 0": {"FinestScale": 0},
    "finest scale 0, alpha 10": {"FinestScale": 0, "VariationalRefinementAlpha": 10.0},
    "finest scale 0, 10 variational iterations": {"FinestScale": 0, "VariationalRefinementIterations": 10},
    "finest scale 0, alpha 40": {"FinestScale": 0, "VariationalRefinementAlpha": 40.0},
    "alpha 10, 10 variational iterations": {"VariationalRefinementAlpha": 10.0,
                                            "VariationalRefinementIterations": 10},
}


def configured_dis(setters: dict):
    import cv2

    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    for name, value in setters.items():
        getattr(dis, "set" + name)(value)
    return dis


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--scale", type=int, default=None,
                        help="clip downscale of the triplets (default: the config's validation scale; "
                             "1 = full size, as the README's evaluation)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = load_config(args.config)
    if args.scale is not None:
        config.validation.scale = args.scale
    rows = {name: {"whole": [], "region": [], "seconds": []} for name in SETTINGS}
    for item in validation_set(real_clips(config), config):
        t = item.triplet
        mask = flow_failure_mask(t, 0.05)
        a, b = (f.permute(1, 2, 0).numpy() for f in (t.frame0, t.frame2))
        for name, setters in SETTINGS.items():
            start = time.perf_counter()
            ft0, ft2 = dis_tau_flows(a, b, t.tau, configured_dis(setters))
            rows[name]["seconds"].append(time.perf_counter() - start)
            flows = torch.from_numpy(np.concatenate([ft0, ft2], axis=2)).permute(2, 0, 1)[None]
            out = warp_average(t.frame0[None], t.frame2[None], flows, t.tau)[0]
            rows[name]["whole"].append(float(psnr(out, t.target)))
            rows[name]["region"].append(region_psnr(out, t.target, mask))
    print("| DIS settings | whole frames dB | flow-failure region dB | DIS ms per triplet |")
    print("|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {np.mean(r['whole']):.3f} | {np.mean(r['region']):.3f} | "
              f"{1000 * np.mean(r['seconds']):.0f} |")


if __name__ == "__main__":
    main()
