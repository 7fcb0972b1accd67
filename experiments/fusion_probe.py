"""Can a small network learn *which* warped frame to trust? (a probe, not the shipped model)

The flow average's error sits in the flow-failure region, where the truth is often one of the
two frames warped to tau (docs/training/README.md: oracle pick +3 dB there), yet the
diffusion network, which must synthesise the correction r = x - average pixel by pixel,
learns nothing there. This probe gives a plain regression network the structure that
occlusion reasoning needs (as RIFE's fusion mask does): it predicts a per-pixel weight m and
a small residual, output = m * warped0 + (1 - m) * warped2 + residual, starting exactly at
the flow average (m = 1 - tau, residual 0). Inputs: both warped frames, their difference,
the two DIS tau-flows and tau. Trained with L1 on the config's batches (hard examples
included); scored on the config's validation triplets, whole frames and the flow-failure
region, next to the flow average.

`--occlusion-cues` adds two inputs a convolution cannot compute from the flows: each frame's
splat density at tau (experiments/occlusion_blend.py: how many of its pixels land at each pixel
when moved along DIS's frame-to-frame flow; ~0 where that frame's content is disoccluded).
As a hand rule it gains in some flow-failure regions and loses in others (session 7); can a
network learn when to trust it?

    .venv/bin/python -m experiments.fusion_probe --config experiments/configs/small-hard.json --minutes 30
    .venv/bin/python -m experiments.fusion_probe --config experiments/configs/small-hard.json --minutes 20 --occlusion-cues

`--synthetic-val N` also scores N batches of held-out synthetic crops (another seed; mean
per-sample PSNR), plain and picked like the training's hard examples: does what the probe
learns hold on unseen synthetic motion even where it fails on the real validation frames?
(`--real-fraction 0` trains on synthetic crops only.) `--loss log_l2` trains on the log of
each sample's mean squared error (the diffusion model's `log_l2`: a mean PSNR, no trade of
easy crops for hard ones) instead of L1.
"""

import argparse
import copy
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hifi_core.dis_flow import dis_both_ways
from hifi_core.flow_base import estimate_flows, warp_frames
from hifi_core.model import LOG_L2_FLOOR
from hifi_core.metrics import psnr
from hifi_core.training.config import load_config
from hifi_core.training.steps import prefetched_batches
from hifi_core.training.trainer import Trainer
from hifi_core.training.validation import real_clips, validation_set

from .ablate_levels import disagreement_mask, region_psnr
from .occlusion_blend import splat_density

FLOW_SCALE = 1.0 / 16.0  # flows in pixels -> about unit range for typical motions


def conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.SiLU())


class FusionNet(nn.Module):
    """A 3-scale U-Net from (warped0, warped2, warped0 - warped2, flows, tau[, cues]) to
    (mask, residual)."""

    def __init__(self, width: int = 32, cue_channels: int = 0):
        super().__init__()
        w = width
        self.enc1 = nn.Sequential(conv(14 + cue_channels, w), conv(w, w))
        self.enc2 = nn.Sequential(conv(w, 2 * w, 2), conv(2 * w, 2 * w))
        self.enc3 = nn.Sequential(conv(2 * w, 3 * w, 2), conv(3 * w, 3 * w), conv(3 * w, 3 * w))
        self.dec2 = nn.Sequential(conv(3 * w + 2 * w, 2 * w), conv(2 * w, 2 * w))
        self.dec1 = nn.Sequential(conv(2 * w + w, w), conv(w, w))
        self.head = nn.Conv2d(w, 4, 3, 1, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, warped0, warped2, flows, tau, cues=None):
        t = tau.view(-1, 1, 1, 1).to(warped0.dtype)
        x = torch.cat([warped0, warped2, warped0 - warped2, flows * FLOW_SCALE,
                       t.expand(-1, 1, *warped0.shape[-2:])] + ([] if cues is None else [cues]), dim=1)
        e1 = self.enc1(x)
        e2 = self.enc2(e1)
        e3 = self.enc3(e2)
        up = lambda a, b: F.interpolate(a, size=b.shape[-2:], mode="bilinear", align_corners=False)
        d2 = self.dec2(torch.cat([up(e3, e2), e2], dim=1))
        d1 = self.dec1(torch.cat([up(d2, e1), e1], dim=1))
        out = self.head(d1)
        prior = torch.logit((1.0 - t).clamp(1e-3, 1 - 1e-3))
        mask = torch.sigmoid(prior + out[:, :1])
        return warped2 + mask * (warped0 - warped2) + out[:, 1:]


def occlusion_cues(frame0: torch.Tensor, frame2: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
    """[B, 2, h, w]: frame 0's and frame 2's splat density at tau, clipped to 2."""
    cues = []
    for a, b, t in zip(frame0, frame2, tau.tolist()):
        f02, f20 = dis_both_ways(*(f.permute(1, 2, 0).contiguous().numpy() for f in (a, b)))
        cues.append(np.stack([splat_density(t * f02), splat_density((1 - t) * f20)]))
    return torch.from_numpy(np.stack(cues)).clamp(max=2.0)


def probe_loss(output: torch.Tensor, target: torch.Tensor, norm: str) -> torch.Tensor:
    """L1, or the batch mean of each sample's log mean squared error ("log_l2")."""
    error = output - target
    if norm == "l1":
        return error.abs().mean()
    return error.square().flatten(1).mean(dim=1).add(LOG_L2_FLOOR).log().mean()


def pad_to(x: torch.Tensor, multiple: int = 4) -> torch.Tensor:
    h, w = x.shape[-2:]
    return F.pad(x, (0, -w % multiple, 0, -h % multiple), mode="replicate")


def prepare_validation(val, threshold: float = 0.05, with_cues: bool = False) -> list:
    """Per validation triplet, once: the net's padded inputs, the flow average's scores and the
    flow-failure mask (the same for every evaluation)."""
    prepared = []
    for item in val:
        t = item.triplet
        f0, f2 = t.frame0[None], t.frame2[None]
        flows = estimate_flows(f0, f2, t.tau)
        w0, w2 = warp_frames(f0, f2, flows)
        mask = disagreement_mask(w0, w2, threshold)
        average = (w0 + (w2 - w0) * t.tau)[0]
        tau = torch.tensor([t.tau])
        cues = [pad_to(occlusion_cues(f0, f2, tau))] if with_cues else []
        prepared.append({"triplet": t, "mask": mask,
                         "inputs": (pad_to(w0), pad_to(w2), pad_to(flows), tau, *cues),
                         "flow_whole": float(psnr(average, t.target)),
                         "flow_region": region_psnr(average, t.target, mask)})
    return prepared


def synthetic_validation(config, batches: int, with_cues: bool, hard: bool) -> list:
    """Held-out synthetic crops: `batches` batches drawn with another seed, as ((net inputs),
    target) pairs; `hard`: picked as the config's hard examples, else plain draws."""
    held_out = copy.deepcopy(config)
    held_out.seed = config.seed + 1000
    held_out.data.real_fraction = 0.0
    if not hard:
        held_out.data.hard_fraction = 0.0
    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(held_out, Path(out), validate=False)
    prepared = []
    for step in range(batches):
        f0, ft, f2, tau, flows, *context_warps = trainer.batches[step]
        w0, w2 = context_warps[0] if context_warps else warp_frames(f0, f2, flows)
        prepared.append(((w0, w2, flows, tau, occlusion_cues(f0, f2, tau) if with_cues else None), ft))
    return prepared


def sample_psnr(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """[B] PSNR of each sample of [B, 3, h, w] images in [0, 1]."""
    mse = (output.clamp(0, 1) - target).square().flatten(1).mean(dim=1)
    return -10.0 * torch.log10(mse.clamp_min(1e-10))


def evaluate_synthetic(net: FusionNet, prepared: list, name: str) -> dict:
    """Mean per-sample PSNR of the net and of the flow average on held-out synthetic crops."""
    net.eval()
    ours, flow = [], []
    with torch.no_grad():
        for (w0, w2, flows, tau, cues), target in prepared:
            ours.append(sample_psnr(net(w0, w2, flows, tau, cues), target))
            flow.append(sample_psnr(w0 + (w2 - w0) * tau.view(-1, 1, 1, 1), target))
    net.train()
    return {name: float(torch.cat(ours).mean()), name + "_flow": float(torch.cat(flow).mean())}


def mean(values) -> float:
    return sum(values) / len(values)


def evaluate(net: FusionNet, prepared: list) -> dict:
    """Whole-frame and flow-failure-region PSNR of the net, next to the flow average's."""
    net.eval()
    whole, region = [], []
    with torch.no_grad():
        for p in prepared:
            t = p["triplet"]
            h, w = t.target.shape[-2:]
            out = net(*p["inputs"])[..., :h, :w].clamp(0, 1)[0]
            whole.append(float(psnr(out, t.target)))
            region.append(region_psnr(out, t.target, p["mask"]))
    net.train()
    return {"whole": mean(whole), "region": mean(region), "flow_whole": mean([p["flow_whole"] for p in prepared]),
            "flow_region": mean([p["flow_region"] for p in prepared])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--flow-context", type=int, default=1,
                        help="data.flow_context: flows and warps on a view this many times larger "
                             "than the crop (centre kept)")
    parser.add_argument("--occlusion-cues", action="store_true",
                        help="also feed each frame's splat density at tau (see the module docstring)")
    parser.add_argument("--synthetic-val", type=int, default=0,
                        help="also score this many batches of held-out synthetic crops")
    parser.add_argument("--real-fraction", type=float, default=None,
                        help="data.real_fraction of the training crops (default: the config's)")
    parser.add_argument("--loss", choices=("l1", "log_l2"), default="l1")
    parser.add_argument("--save", default=None, help="write the net's weights here (safetensors)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = load_config(args.config)
    config.data.flow_context = args.flow_context
    if args.real_fraction is not None:
        config.data.real_fraction = args.real_fraction
    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(config, Path(out), validate=False)
    val = prepare_validation(validation_set(trainer.real or real_clips(config), config), with_cues=args.occlusion_cues)
    net = FusionNet(args.width, cue_channels=2 if args.occlusion_cues else 0)
    print(f"fusion net: {sum(p.numel() for p in net.parameters())} parameters", flush=True)
    optimizer = torch.optim.Adam(net.parameters(), lr=args.lr, betas=(0.9, 0.99))
    synthetic = {name: synthetic_validation(config, args.synthetic_val, args.occlusion_cues, hard)
                 for name, hard in (("synthetic", False), ("synthetic_hard", True))} if args.synthetic_val else {}
    scores = lambda: {**evaluate(net, val),  # noqa: E731
                      **{k: v for name, s in synthetic.items() for k, v in evaluate_synthetic(net, s, name).items()}}
    print(json.dumps({"step": 0, **scores()}), flush=True)
    start, losses, flow_losses = time.time(), [], []
    for step, (f0, ft, f2, tau, flows, *context_warps) in enumerate(
            prefetched_batches(trainer.batches, 0, config.steps, args.workers), start=1):
        w0, w2 = context_warps[0] if context_warps else warp_frames(f0, f2, flows)
        cues = occlusion_cues(f0, f2, tau) if args.occlusion_cues else None
        loss = probe_loss(net(w0, w2, flows, tau, cues), ft, args.loss)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        optimizer.step()
        losses.append(float(loss.detach()))
        flow_losses.append(float(probe_loss(w0 + (w2 - w0) * tau.view(-1, 1, 1, 1), ft, args.loss)))
        done = time.time() - start > args.minutes * 60
        if step % args.eval_every == 0 or done:
            print(json.dumps({"step": step, "loss": sum(losses) / len(losses),
                              "flow_average_loss": sum(flow_losses) / len(flow_losses),
                              "minutes": round((time.time() - start) / 60, 1), **scores()}),
                  flush=True)
            losses, flow_losses = [], []
            if args.save:
                from safetensors.torch import save_file
                save_file(net.state_dict(), args.save)
        if done:
            break


if __name__ == "__main__":
    main()
