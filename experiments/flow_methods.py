"""Would another classical optical flow make a better base than OpenCV DIS? PSNR of the warped
average (motion fade on, as the flow base) with flows from each OpenCV dense method, on the
config's held-out validation triplets: whole frames, the flow-failure region of the shipped
DIS flows (so every row is scored on the same pixels), and the flow time per triplet (both
directions, this machine).

OpenCV's contrib methods (TV-L1, DeepFlow, PCAFlow, RLOF, SparseToDense) are not in our
dependencies (`opencv-python-headless`); install `opencv-contrib-python-headless` of the same
version into a separate venv to score them, e.g.

    python -m venv /tmp/cvx && /tmp/cvx/bin/pip install torch==2.13.0 numpy safetensors tqdm av \\
        opencv-contrib-python-headless==5.0.0.93
    /tmp/cvx/bin/python -m experiments.flow_methods --config configs/train/small-own.json --scale 1

Without contrib only DIS and Farneback are scored.
"""

import sys
import time

import numpy as np
import torch

from hifi_core.dis_flow import dis_both_ways, linear_tau_flows
from hifi_core.flow_base import warp_average
from hifi_core.metrics import psnr
from hifi_core.training.validation import real_clips, validation_set

from .ablate_levels import flow_failure_mask, region_psnr
from .validation_options import load_validation_config, validation_arguments


def grey_method(factory):
    """A method on 8-bit grey frames: factory() -> an object with OpenCV's calc(I0, I1, flow)."""
    def both_ways(frame0, frame2):
        return dis_both_ways(frame0, frame2, factory())
    return both_ways


def _rlof_both_ways(frame0, frame2):
    """Dense RLOF wants 8-bit colour frames."""
    import cv2

    bgr = [cv2.cvtColor((f * 255.0).round().clip(0, 255).astype(np.uint8), cv2.COLOR_RGB2BGR)
           for f in (frame0, frame2)]
    rlof = cv2.optflow.DenseRLOFOpticalFlow_create()
    return rlof.calc(bgr[0], bgr[1], None), rlof.calc(bgr[1], bgr[0], None)


def methods() -> dict:
    """name -> (frame0, frame2) -> (flow 0->2, flow 2->0), float32 [H, W, 2] pixels."""
    import cv2

    found = {
        "DIS MEDIUM (shipped)": grey_method(lambda: cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)),
        "Farneback": grey_method(lambda: cv2.FarnebackOpticalFlow_create(numLevels=6, pyrScale=0.5,
                                                                          winSize=15, numIters=5)),
    }
    if hasattr(cv2, "optflow"):
        found.update({
            "TV-L1": grey_method(cv2.optflow.DualTVL1OpticalFlow_create),
            "DeepFlow": grey_method(cv2.optflow.createOptFlow_DeepFlow),
            "PCAFlow": grey_method(cv2.optflow.createOptFlow_PCAFlow),
            "SparseToDense": grey_method(cv2.optflow.createOptFlow_SparseToDense),
            "Dense RLOF": _rlof_both_ways,
        })
    return found


def score_flows(config, chosen: dict) -> dict:
    """name -> {"whole", "region", "seconds"} lists over the config's validation triplets, for
    each method of `chosen` (name -> both-ways flow function, as `methods()`)."""
    rows = {name: {"whole": [], "region": [], "seconds": []} for name in chosen}
    for item in validation_set(real_clips(config), config):
        t = item.triplet
        mask = flow_failure_mask(t, 0.05)
        a, b = (f.permute(1, 2, 0).numpy() for f in (t.frame0, t.frame2))
        for name, both_ways in chosen.items():
            start = time.perf_counter()
            ft0, ft2 = linear_tau_flows(*both_ways(a, b), t.tau)
            rows[name]["seconds"].append(time.perf_counter() - start)
            flows = torch.from_numpy(np.concatenate([ft0, ft2], axis=2)).permute(2, 0, 1)[None]
            out = warp_average(t.frame0[None], t.frame2[None], flows, t.tau)[0]
            rows[name]["whole"].append(float(psnr(out, t.target)))
            rows[name]["region"].append(region_psnr(out, t.target, mask))
            print(f"{item.clip} gap {item.gap} {name}: {rows[name]['whole'][-1]:.3f}", file=sys.stderr)
    return rows


def set_opencv_threads(threads: int) -> None:
    """OpenCV's own threads as torch's, so the flow times compare like for like."""
    import cv2

    cv2.setNumThreads(threads)


def print_table(rows: dict, what: str) -> None:
    print(f"| {what} ({len(next(iter(rows.values()))['whole'])} triplets) | whole frames dB "
          "| flow-failure region dB | flow ms per triplet |")
    print("|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {np.mean(r['whole']):.3f} | {np.mean(r['region']):.3f} | "
              f"{1000 * np.mean(r['seconds']):.0f} |")


def main() -> None:
    parser = validation_arguments(__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="*", help="score only these methods (names as printed)")
    args = parser.parse_args()
    config = load_validation_config(args)
    set_opencv_threads(args.threads)
    chosen = {n: m for n, m in methods().items() if not args.only or n in args.only}
    print_table(score_flows(config, chosen), "flow")


if __name__ == "__main__":
    main()
