"""Does what a checkpoint learned on training crops carry over to whole frames?

Scores checkpoints, one cascade level and one step, next to their flow-average base on
(a) unseen crops drawn exactly like the config's training batches (steps far past any run),
each crop interpolated as a small frame of its own, and (b) the config's whole-frame
validation triplets. A checkpoint that gains on (a) and loses on (b) learned corrections that
are right on crops and wrong on frames (docs/training/README.md, session 6).

    .venv/bin/python -m experiments.crop_vs_frame --config experiments/configs/small-real-l2.json \
        runs/small-real-l2/stage3.safetensors runs/small-real-l2/ema-550.safetensors
"""

import argparse
import math
import tempfile
from pathlib import Path

import torch

from hifi_core import load_model
from hifi_core.flow_base import flow_average
from hifi_core.interpolate import CascadeSettings, interpolate
from hifi_core.metrics import psnr
from hifi_core.training.config import load_config
from hifi_core.training.trainer import Trainer
from hifi_core.training.validation import validation_set

UNSEEN_FROM_STEP = 20_000  # past every run's last step: crops no run trained on


def pooled_psnr(squared_errors: list) -> float:
    """PSNR of the mean squared error over all samples (weighted toward the hardest crops)."""
    return 10 * math.log10(1.0 / (sum(squared_errors) / len(squared_errors)))


def mean_psnr(squared_errors: list) -> float:
    """Mean of the samples' own PSNRs (every crop counts alike, as frames do in a mean PSNR)."""
    return sum(10 * math.log10(1.0 / max(e, 1e-10)) for e in squared_errors) / len(squared_errors)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--batches", type=int, default=15, help="unseen training batches to score")
    parser.add_argument("--frame-scale", type=int, default=None,
                        help="clip downscale of the validation frames (default: the config's; "
                             "1 = full size, as the README's evaluation)")
    parser.add_argument("--per-clip", type=int, default=None, help="validation triplets per clip and gap")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = load_config(args.config)
    config.validation.scale = args.frame_scale or config.validation.scale
    config.validation.per_clip = args.per_clip or config.validation.per_clip
    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(config, Path(out), validate=False)
    models = {Path(p).name: load_model(p).eval() for p in args.checkpoints}

    def one_level(model, frame0, frame2, tau):
        # a crop is one patch; frames get the README evaluation's 256-px patches
        patch = tuple(min(256, -(-s // model.alignment) * model.alignment) for s in frame0.shape[-2:])
        settings = CascadeSettings(levels=1, patch_size=patch, overlap=32 if max(frame0.shape[-2:]) > 256 else 0,
                                   steps=1, samples=1, seed=0)
        with torch.no_grad():
            return interpolate(model, frame0, frame2, tau=tau, settings=settings)

    crops = {name: [] for name in ["flow average", *models]}
    for step in range(UNSEEN_FROM_STEP, UNSEEN_FROM_STEP + args.batches):
        f0, ft, f2, tau, *_ = trainer.batches[step]
        for i in range(f0.shape[0]):
            t = float(tau[i])
            crops["flow average"].append(float((flow_average(f0[i:i + 1], f2[i:i + 1], t)[0] - ft[i]).pow(2).mean()))
            for name, model in models.items():
                crops[name].append(float((one_level(model, f0[i], f2[i], t) - ft[i]).pow(2).mean()))
    frames = {name: [] for name in crops}
    for item in validation_set(trainer.real, config):
        t = item.triplet
        frames["flow average"].append(float(psnr(flow_average(t.frame0[None], t.frame2[None], t.tau)[0], t.target)))
        for name, model in models.items():
            frames[name].append(float(psnr(one_level(model, t.frame0, t.frame2, t.tau), t.target)))
    count = len(crops["flow average"])
    print(f"| one level, one step | {count} unseen training crops: pooled PSNR dB | their mean PSNR dB | "
          f"{len(frames['flow average'])} validation frames: mean PSNR dB |")
    print("|---|---|---|---|")
    for name in crops:
        print(f"| {name} | {pooled_psnr(crops[name]):.3f} | {mean_psnr(crops[name]):.3f} | "
              f"{sum(frames[name]) / len(frames[name]):.3f} |")


if __name__ == "__main__":
    main()
