"""Does a checkpoint gain or lose with more sampling steps, or with averaged samples? PSNR of
the 2-level cascade on the config's in-training validation triplets (½ size, 128-px patches)
for several (steps, samples) settings.

    .venv/bin/python -m experiments.sampling_steps --config configs/train/small-own.json \\
        --checkpoint checkpoints/hifi-small.safetensors
"""

import argparse

import numpy as np
import torch

from hifi_core.checkpoint import load_checkpoint
from hifi_core.interpolate import CascadeSettings, interpolate
from hifi_core.metrics import psnr
from hifi_core.training.config import load_config
from hifi_core.training.validation import real_clips, validation_set


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--settings", default="1x1,2x1,2x4,3x1", help="STEPSxSAMPLES pairs")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = load_config(args.config)
    model = load_checkpoint(args.checkpoint)
    settings = [tuple(int(n) for n in item.split("x")) for item in args.settings.split(",")]
    scores = {s: [] for s in settings}
    for item in validation_set(real_clips(config), config):
        t = item.triplet
        for steps, samples in settings:
            cascade = CascadeSettings(levels=2, patch_size=(128, 128), overlap=16, steps=steps,
                                      samples=samples, seed=0)
            with torch.no_grad():
                out = interpolate(model, t.frame0, t.frame2, tau=t.tau, settings=cascade)
            scores[steps, samples].append(float(psnr(out, t.target)))
    print(f"| steps x samples | PSNR dB ({len(scores[settings[0]])} triplets) |\n|---|---|")
    for (steps, samples), values in scores.items():
        print(f"| {steps} x {samples} | {np.mean(values):.3f} |")


if __name__ == "__main__":
    main()
