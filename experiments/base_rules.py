"""Is there a simple global rule the network could learn on top of the flow average? (a check)

If the flow base had a systematic fault everywhere, such as resampling blur from bilinear
warping, a fixed rule would fix it on every triplet and the network would have an easy
correction to learn. This scores two such rules on the config's held-out validation triplets
(whole frames, next to the plain flow average): bicubic instead of bilinear warping, an
unsharp mask of the average (amount a, Gaussian sigma s), and other thresholds for the
still-motion fade (flow_base.STILL_MOTION_PX; "no fade" is the DIS baseline's warp).

    .venv/bin/python -m experiments.base_rules --config configs/train/small-own.json
    .venv/bin/python -m experiments.base_rules --config configs/train/small-own.json --scale 1  # full size
"""

from functools import partial
from unittest import mock

import cv2
import numpy as np
import torch

import hifi_core.flow_base as flow_base
from hifi_core.metrics import psnr
from hifi_core.training.validation import real_clips, validation_set

from .validation_options import load_validation_config, validation_arguments


def gaussian_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """[1, 3, H, W] blurred with a 7x7 Gaussian (radius 3 px), edges replicated."""
    planes = image[0].permute(1, 2, 0).numpy()
    blurred = cv2.GaussianBlur(planes, (7, 7), sigma, borderType=cv2.BORDER_REPLICATE)
    return torch.from_numpy(blurred).permute(2, 0, 1)[None]


def main() -> None:
    config = load_validation_config(validation_arguments(__doc__.split("\n")[0], threads=2).parse_args())
    rows = {}
    for item in validation_set(real_clips(config), config):
        t = item.triplet
        f0, f2 = t.frame0[None], t.frame2[None]
        flows = flow_base.estimate_flows(f0, f2, t.tau)
        average = flow_base.warp_average(f0, f2, flows, t.tau)
        with mock.patch.object(flow_base, "warp_rows", partial(flow_base.warp_rows, mode="bicubic")):
            bicubic = flow_base.warp_average(f0, f2, flows, t.tau)
        outputs = {"flow average (bilinear warps, fade 1-2 px, shipped)": average, "bicubic warps": bicubic}
        for still_px in ((0.5, 1.0), (0.5, 1.5), None):
            name = f"fade {still_px[0]}-{still_px[1]} px" if still_px else "no still-motion fade"
            outputs[name] = flow_base.warp_average(f0, f2, flows, t.tau, still_px=still_px)
        for sigma in (0.7, 1.0):
            for amount in (0.1, 0.2):
                detail = average - gaussian_blur(average, sigma)
                outputs[f"unsharp mask a {amount}, s {sigma}"] = average + amount * detail
        for name, out in outputs.items():
            rows.setdefault(name, []).append(float(psnr(out.clamp(0, 1)[0], t.target)))
    print("| rule | whole frames dB | per triplet |")
    print("|---|---|---|")
    for name, scores in rows.items():
        print(f"| {name} | {np.mean(scores):.3f} | {' '.join(f'{s:.2f}' for s in scores)} |")


if __name__ == "__main__":
    main()
