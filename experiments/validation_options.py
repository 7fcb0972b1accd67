"""The options the validation-set scripts share: --config, --threads, --scale, and the config
they give (the scripts score the held-out validation triplets of a training config)."""

import argparse

import torch

from hifi_core.training.config import load_config


def validation_arguments(description: str, threads: int = 1) -> argparse.ArgumentParser:
    """A parser with --config, --threads (default `threads`) and --scale."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", required=True)
    parser.add_argument("--threads", type=int, default=threads)
    parser.add_argument("--scale", type=int, default=None,
                        help="clip downscale of the triplets (default: the config's validation scale; "
                             "1 = full size, as the README's evaluation)")
    return parser


def load_validation_config(args):
    """The config with --scale applied; torch at --threads."""
    torch.set_num_threads(args.threads)
    config = load_config(args.config)
    if args.scale is not None:
        config.validation.scale = args.scale
    return config
