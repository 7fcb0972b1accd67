"""Does classical occlusion reasoning improve the flow average? (a negative result, kept)

The oracle row of experiments/ablate_levels.py shows that picking, per pixel, the warped frame
that is really visible would gain ~3 dB in the flow-failure region. This script tries the
classical way to know which one is visible without the truth: a forward-backward
consistency check of the two DIS flows (Sundaram et al. 2010: |f02 + f20(x + f02)|^2 >
alpha (|f02|^2 + |f20(x + f02)|^2) + beta marks a frame-0 pixel that frame 2 does not
show), carried to tau along the tau-flows; a frame's weight in the average drops where the
*other* frame's sample is occluded. Scored next to DIS (hifi_core.baselines) on the
config's in-training validation triplets, whole frame and flow-failure region.

A second cue (session 7): forward-splat each frame's pixels to tau along its DIS flow and
count how many land at each pixel (the splat density). Where frame 0's density is near zero,
no frame-0 pixel moves there: it is disoccluded, seen only in frame 2. Each frame's weight
is cut by (density / k)^2 clipped to 1.

    .venv/bin/python -m experiments.occlusion_blend --config configs/train/small-own.json
    .venv/bin/python -m experiments.occlusion_blend --config configs/train/small-own.json --scale 1  # full size
"""


import numpy as np
import torch

from .ablate_levels import flow_failure_mask, region_psnr
from .validation_options import load_validation_config, validation_arguments
from hifi_core.baselines import dis_flow_interpolate
from hifi_core.dis_flow import dis_both_ways, linear_tau_flows
from hifi_core.metrics import psnr
from hifi_core.training.validation import real_clips, validation_set


def remap(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """out(x) = image(x + flow(x)), bilinear, edges replicated."""
    import cv2

    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(image, gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


def occluded(forward: np.ndarray, backward: np.ndarray, alpha: float, beta: float, soft: bool) -> np.ndarray:
    """[h, w] in [0, 1]: pixels of the first frame the second does not show."""
    back = remap(backward, forward)
    mismatch = ((forward + back) ** 2).sum(-1)
    allowed = alpha * ((forward ** 2).sum(-1) + (back ** 2).sum(-1)) + beta
    return np.clip(mismatch / allowed - 1, 0, 1) if soft else (mismatch > allowed).astype(np.float32)


def occlusion_weighted_average(frame0: np.ndarray, frame2: np.ndarray, tau: float, alpha: float = 0.01,
                               beta: float = 0.5, soft: bool = True) -> np.ndarray:
    """DIS average at tau with each frame's weight cut where the other frame's sample is occluded."""
    f02, f20 = dis_both_ways(frame0, frame2)
    t = tau
    ft0, ft2 = linear_tau_flows(f02, f20, t)
    hidden0 = remap(occluded(f02, f20, alpha, beta, soft), ft0)  # frame 0's sample not in frame 2
    hidden2 = remap(occluded(f20, f02, alpha, beta, soft), ft2)
    w0, w2 = (1 - t) * (1 - hidden2), t * (1 - hidden0)
    total = w0 + w2
    w0 = np.where(total > 1e-3, w0 / np.maximum(total, 1e-3), 1 - t)
    w2 = np.where(total > 1e-3, w2 / np.maximum(total, 1e-3), t)
    return w0[..., None] * remap(frame0, ft0) + w2[..., None] * remap(frame2, ft2)


def splat_density(flow: np.ndarray) -> np.ndarray:
    """[h, w]: how many pixels land at each pixel when every pixel x moves to x + flow(x)
    (bilinear forward splat of ones; 1 where motion is rigid, ~0 where nothing arrives)."""
    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    x, y = gx + flow[..., 0], gy + flow[..., 1]
    x0, y0 = np.floor(x), np.floor(y)
    density = np.zeros(h * w, np.float64)
    for cx in (x0, x0 + 1):
        for cy in (y0, y0 + 1):
            weight = (1 - np.abs(x - cx)) * (1 - np.abs(y - cy))
            inside = (cx >= 0) & (cx < w) & (cy >= 0) & (cy < h)
            np.add.at(density, (cy[inside] * w + cx[inside]).astype(np.int64), weight[inside])
    return density.reshape(h, w).astype(np.float32)


def density_weighted_average(frame0: np.ndarray, frame2: np.ndarray, tau: float, k: float) -> np.ndarray:
    """DIS average at tau with each frame's weight cut where its splat density at tau is
    below k (nothing of that frame arrives there)."""
    f02, f20 = dis_both_ways(frame0, frame2)
    t = tau
    ft0, ft2 = linear_tau_flows(f02, f20, t)
    seen0 = np.clip(splat_density(t * f02) / k, 0, 1) ** 2 + 1e-3
    seen2 = np.clip(splat_density((1 - t) * f20) / k, 0, 1) ** 2 + 1e-3
    w0, w2 = (1 - t) * seen0, t * seen2
    return (w0[..., None] * remap(frame0, ft0) + w2[..., None] * remap(frame2, ft2)) / (w0 + w2)[..., None]


def main() -> None:
    parser = validation_arguments(__doc__.split("\n")[0])
    parser.add_argument("--region-threshold", type=float, default=0.05)
    parser.add_argument("--per-triplet", action="store_true", help="also print each triplet's scores")
    args = parser.parse_args()
    config = load_validation_config(args)
    val = validation_set(real_clips(config), config)
    variants = {f"{'soft' if soft else 'hard'} consistency mask, beta {beta}":
                (lambda a, b, tau, beta=beta, soft=soft: occlusion_weighted_average(a, b, tau, beta=beta, soft=soft))
                for soft in (False, True) for beta in (0.5, 2.0)}
    variants.update({f"splat density, k {k}": (lambda a, b, tau, k=k: density_weighted_average(a, b, tau, k))
                     for k in (0.1, 0.25, 0.5)})
    print("| variant | whole frame (DIS) | flow-failure region (DIS) |")
    print("|---|---|---|")
    for name, blend in variants.items():
        whole, region, whole_dis, region_dis = [], [], [], []
        for item in val:
            t = item.triplet
            a, b = (f.permute(1, 2, 0).numpy() for f in (t.frame0, t.frame2))
            out = torch.from_numpy(blend(a, b, t.tau)).permute(2, 0, 1)
            dis = dis_flow_interpolate(t.frame0, t.frame2, t.tau)
            mask = flow_failure_mask(t, args.region_threshold)
            whole += [float(psnr(out, t.target))]
            whole_dis += [float(psnr(dis, t.target))]
            region += [region_psnr(out, t.target, mask)]
            region_dis += [region_psnr(dis, t.target, mask)]
        print(f"| {name} | {np.mean(whole):.3f} ({np.mean(whole_dis):.3f}) "
              f"| {np.mean(region):.2f} ({np.mean(region_dis):.2f}) |")
        if args.per_triplet:
            print("|  per triplet, whole - DIS |", " ".join(f"{a - b:+.2f}" for a, b in zip(whole, whole_dis)),
                  "| region - DIS |", " ".join(f"{a - b:+.2f}" for a, b in zip(region, region_dis)), "|")


if __name__ == "__main__":
    main()
