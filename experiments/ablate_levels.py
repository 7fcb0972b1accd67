"""Which cascade level helps: PSNR with the network silenced at one kind of level.

A silenced level returns its residual base (v = 0 is "no correction"): the base level then
gives the flow average, an upsampling level the upsampled coarser correction on its own flow
average. Comparing the three rows with the DIS line says whether the base-level network, the
upsampling-level network, or both improve on optical flow. Same triplets and settings as the
config's in-training validation; `--split train` picks the same kind of triplets from the
clips' *training* frames instead (does a change that hurts validation help where it was
trained? if not, it is not overfitting).

A second table scores only the flow-failure region: pixels where the two frames warped to
tau by the flow base disagree by more than `--region-threshold` (mean absolute RGB
difference). The mask is computed without the truth, so no method is favoured by how it is
picked; it is where a correction to the flow average is needed, so a network that has
learned something shows it there first. Its last row, "oracle warped-frame pick", takes at
each pixel whichever of the two warped frames is closer to the truth: an upper bound for
what occlusion reasoning alone (choosing the visible frame) could gain over the average.

    .venv/bin/python -m experiments.ablate_levels --config configs/train/small-own.json \
        --checkpoint checkpoints/hifi-small.safetensors --threads 2
"""

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from hifi_core import load_model
from hifi_core.baselines import blend_interpolate, dis_flow_interpolate
from hifi_core.flow_base import estimate_flows, warp_frames
from hifi_core.interpolate import CascadeSettings, interpolate
from hifi_core.training.config import load_config
from hifi_core.triplet import Triplet, to_tensor
from hifi_core.training.real import split_ranges, windows_in
from hifi_core.training.validation import (ValTriplet, baseline_scores, hifi_scores, real_clips, summarise,
                                           validation_set)


def silence(model, which: str) -> None:
    """Make the network predict v = 0 at the base level ("base") or the upsampling levels."""
    predict_v = model.predict_v

    def silenced(z, logsnr, frame0, frame2, cond, cond_mask, tau):
        v = predict_v(z, logsnr, frame0, frame2, cond, cond_mask, tau)
        upsampling = torch.as_tensor(cond_mask, device=v.device).reshape(-1).expand(v.shape[0])
        quiet = upsampling if which == "upsampler" else ~upsampling
        return torch.where(quiet.view(-1, 1, 1, 1), torch.zeros_like(v), v)

    model.predict_v = silenced


def training_frame_triplets(real, config) -> list:
    """Midpoint triplets picked like `validation_set`, but from each clip's training frames."""
    v = config.validation
    out = []
    for clip in range(len(real.paths)):
        train, _ = split_ranges(len(real.frames[(clip, 1)]), real.split)
        for gap in v.gaps:
            windows = [w for w in windows_in(train, [2 * gap], real.cuts[clip], clip, v.scale)
                       if w.target - w.first == gap]
            for pick in np.linspace(0, len(windows) - 1, min(v.per_clip, len(windows))) if windows else []:
                w = windows[int(round(pick))]
                f0, ft, f2 = real.window_frames(w)
                out.append(ValTriplet(real.name(clip), gap, Triplet(to_tensor(f0), to_tensor(ft), to_tensor(f2),
                                                                    w.tau, f"{real.name(clip)}:{w.first}-{w.last}")))
    return out


def flow_failure_mask(triplet: Triplet, threshold: float) -> torch.Tensor:
    """[h, w] bool: where the frames warped to tau by the flow base disagree."""
    f0, f2 = triplet.frame0[None], triplet.frame2[None]
    return disagreement_mask(*warp_frames(f0, f2, estimate_flows(f0, f2, triplet.tau)), threshold)


def disagreement_mask(warped0: torch.Tensor, warped2: torch.Tensor, threshold: float) -> torch.Tensor:
    """[h, w] bool from [1, 3, h, w] warped frames: mean absolute RGB difference > threshold."""
    return (warped0 - warped2).abs().mean(dim=1)[0] > threshold


def region_psnr(output: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> float:
    """PSNR (peak 255, 8-bit rounded as metrics.psnr) over the masked pixels."""
    out8, tgt8 = ((x.clamp(0, 1) * 255).round() for x in (output, target))
    mse = (out8 - tgt8).pow(2).mean(dim=0)[mask].mean()
    return float(10 * torch.log10(255.0 ** 2 / mse))


def oracle_pick(triplet: Triplet) -> torch.Tensor:
    """Per pixel, the warped frame closer to the truth (uses the truth: a bound, not a method)."""
    f0, f2 = triplet.frame0[None], triplet.frame2[None]
    warped0, warped2 = warp_frames(f0, f2, estimate_flows(f0, f2, triplet.tau))
    target = triplet.target[None]
    closer0 = (warped0 - target).abs().mean(1, keepdim=True) <= (warped2 - target).abs().mean(1, keepdim=True)
    return torch.where(closer0, warped0, warped2)[0]


def region_scores(methods: dict, val: list, config, threshold: float) -> dict:
    """{method: {"clip/gapN" | "all": mean region PSNR}} and the masked pixel share."""
    v = config.validation
    settings = CascadeSettings(levels=v.levels, patch_size=v.patch, overlap=v.overlap, steps=v.steps[0],
                               samples=1, seed=0)
    rows, shares = {}, []
    for item in val:
        t = item.triplet
        mask = flow_failure_mask(t, threshold)
        shares.append(float(mask.float().mean()))
        if not mask.any():
            continue
        for name, method in methods.items():
            with torch.no_grad():
                out = method(t, settings)
            for key in (f"{item.clip}/gap{item.gap}", "all"):
                rows.setdefault(name, {}).setdefault(key, []).append(region_psnr(out, t.target, mask))
    return {m: {k: float(np.mean(x)) for k, x in r.items()} for m, r in rows.items()}, float(np.mean(shares))


def print_table(rows: dict) -> None:
    groups = sorted((k for k in next(iter(rows.values())) if not k.endswith(":ssim")),
                    key=lambda k: (not k.startswith("all"), k))
    print("| method | " + " | ".join(groups) + " |")
    print("|---|" + "---|" * len(groups))
    for method, values in rows.items():
        print(f"| {method} | " + " | ".join(f"{values[g]:.2f}" for g in groups) + " |")


LABELS = {"full": "hifi", "base": "hifi, base level silenced", "upsampler": "hifi, upsampling silenced"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--split", choices=("validation", "train"), default="validation")
    parser.add_argument("--variants", default="full,base,upsampler",
                        help="comma list of: full, base (base level silenced), upsampler")
    parser.add_argument("--region-threshold", type=float, default=0.05,
                        help="warped-frame disagreement (0..1) that marks a flow-failure pixel")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = load_config(args.config)
    real = real_clips(config)
    val = validation_set(real, config) if args.split == "validation" else training_frame_triplets(real, config)
    with tempfile.TemporaryDirectory() as tmp:
        rows = summarise(baseline_scores(val, Path(tmp) / "baselines.json"))
    models = {}
    for which in args.variants.split(","):
        model = load_model(args.checkpoint).eval()
        if which != "full":
            silence(model, which)
        models[LABELS[which]] = model
        rows[LABELS[which]] = next(iter(summarise(hifi_scores(model, val, config)).values()))
    print_table(rows)
    methods = {"blend": lambda t, s: blend_interpolate(t.frame0, t.frame2, t.tau),
               "dis": lambda t, s: dis_flow_interpolate(t.frame0, t.frame2, t.tau)}
    for label, model in models.items():
        methods[label] = (lambda m: lambda t, s: interpolate(m, t.frame0, t.frame2, tau=t.tau, settings=s))(model)
    methods["oracle warped-frame pick"] = lambda t, s: oracle_pick(t)
    region, share = region_scores(methods, val, config, args.region_threshold)
    print(f"\nflow-failure region (warped frames differ by > {args.region_threshold}; "
          f"{100 * share:.1f} % of the pixels):")
    print_table(region)
    print(json.dumps({"all": {m: v.get("all") for m, v in rows.items()},
                      "region": {m: v.get("all") for m, v in region.items()}, "region_share": share}))


if __name__ == "__main__":
    main()
