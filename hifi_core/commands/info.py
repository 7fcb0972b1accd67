"""`info`: presets (parameters, FLOPs per megapixel per step) and the checkpoints found."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import int_in

HELP = "list model presets with their size and cost, and the checkpoints that can be found"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint-dir", action="append", default=[],
                        help="extra folder to search for .safetensors checkpoints")
    parser.add_argument("--flops-patch", type=int_in(16, 4096), default=256,
                        help="square patch side at which FLOPs are counted (attention grows with it)")


def unet_flops_per_megapixel(config, side: int) -> float:
    """FLOPs of one U-Net evaluation on a side x side patch, per megapixel (meta device)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from ..unet import EfficientUNet

    with torch.device("meta"):
        unet = EfficientUNet(config)
        x = torch.zeros(1, config.in_channels, side, side)
        scalars = torch.zeros(1)
        with FlopCounterMode(display=False) as counter:
            unet(x, scalars, scalars, torch.zeros(1, dtype=torch.bool))
    return counter.get_total_flops() / (side * side / 1e6)


def run(args: argparse.Namespace) -> int:
    import torch

    from ..checkpoint import describe_metadata, find_checkpoints
    from ..motion_base import SETUP_COMMAND, find_rife_weights
    from ..config import PRESETS
    from ..errors import CheckpointError
    from ..unet import EfficientUNet

    print(f"{'preset':8} {'params':>10} {'GFLOP/MP/step':>14}  (FLOPs at {args.flops_patch}x{args.flops_patch} patches)")
    for name, config in PRESETS.items():
        side = max(args.flops_patch // config.unet.alignment, 1) * config.unet.alignment
        with torch.device("meta"):
            params = sum(p.numel() for p in EfficientUNet(config.unet).parameters())
        flops = unet_flops_per_megapixel(config.unet, side)
        print(f"{name:8} {params / 1e6:9.2f}M {flops / 1e9:14.1f}")
    print("\ncheckpoints:")
    for folder in args.checkpoint_dir:
        if not Path(folder).is_dir():
            print(f"  warning: --checkpoint-dir {folder} is not a folder; nothing was read from it")
    found = find_checkpoints(args.checkpoint_dir)
    for path in found:
        try:
            print(f"  {path}\n    {describe_metadata(path)}")
        except CheckpointError as error:
            print(f"  {path}\n    unreadable: {error}")
    if not found:
        print("  none found (bundled checkpoints live in checkpoints/)")
    print("\nlearned motion base (RIFE HDv3 flows):")
    motion = find_rife_weights(Path(d) / "motion" for d in args.checkpoint_dir)
    print(f"  {motion}" if motion else f"  not set up: run `{SETUP_COMMAND}` (DIS flow is used meanwhile)")
    return 0
