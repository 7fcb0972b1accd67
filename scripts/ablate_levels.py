"""Which cascade level helps: PSNR with the network silenced at one kind of level.

A silenced level returns its residual base (v = 0 is "no correction"): the base level then
gives the flow average, an upsampling level the upsampled coarser correction on its own flow
average. Comparing the three rows with the DIS line says whether the base-level network, the
upsampling-level network, or both improve on optical flow. Same triplets and settings as the
config's in-training validation; `--split train` picks the same kind of triplets from the
clips' *training* frames instead (does a change that hurts validation help where it was
trained? if not, it is not overfitting).

    .venv/bin/python scripts/ablate_levels.py --config configs/train/small-own.json \
        --checkpoint checkpoints/hifi-small.safetensors --threads 2
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hifi_core import load_model  # noqa: E402
from hifi_core.training.config import load_config  # noqa: E402
from hifi_core.training.data import Triplet, to_tensor  # noqa: E402
from hifi_core.training.real import split_ranges, windows_in  # noqa: E402
from hifi_core.training.trainer import (ValTriplet, baseline_scores, hifi_scores, real_clips,  # noqa: E402
                                        summarise, validation_set)


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--split", choices=("validation", "train"), default="validation")
    parser.add_argument("--variants", default="full,base,upsampler",
                        help="comma list of: full, base (base level silenced), upsampler")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = load_config(args.config)
    real = real_clips(config)
    val = validation_set(real, config) if args.split == "validation" else training_frame_triplets(real, config)
    with tempfile.TemporaryDirectory() as tmp:
        rows = summarise(baseline_scores(val, Path(tmp) / "baselines.json"))
    for which in args.variants.split(","):
        model = load_model(args.checkpoint).eval()
        if which != "full":
            silence(model, which)
        label = {"full": "hifi", "base": "hifi, base level silenced", "upsampler": "hifi, upsampling silenced"}
        rows[label[which]] = next(iter(summarise(hifi_scores(model, val, config)).values()))
    groups = [k for k in rows["dis"] if not k.endswith(":ssim")]
    print("| method | " + " | ".join(groups) + " |")
    print("|---|" + "---|" * len(groups))
    for method, values in rows.items():
        print(f"| {method} | " + " | ".join(f"{values[g]:.2f}" for g in groups) + " |")
    print(json.dumps({m: v.get("all") for m, v in rows.items()}))


if __name__ == "__main__":
    main()
