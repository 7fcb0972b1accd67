"""`interpolate`: one pair of image files -> the in-between frame."""

from __future__ import annotations

import argparse

from .common import (add_cascade_arguments, add_model_arguments, model_from_args,
                     settings_from_args, tqdm_progress)

HELP = "interpolate one in-between frame from two image files (PNG 8/16-bit, JPEG)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("frame0", help="the first frame (image file)")
    parser.add_argument("frame2", help="the second frame (image file)")
    parser.add_argument("-o", "--output", required=True, help="output image (.png or .jpg)")
    parser.add_argument("--tau", type=float, default=0.5, help="time between the frames, in (0, 1)")
    parser.add_argument("--bit-depth", type=int, choices=[8, 16], default=None,
                        help="output bit depth (default: that of frame0; 16 needs .png)")
    add_model_arguments(parser)
    add_cascade_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from ..errors import HiFIInputError
    from ..image_io import check_image_output, read_image, write_image
    from ..interpolate import interpolate
    from ..validation import check_taus

    check_taus(args.tau)
    frame0, depth = read_image(args.frame0)
    frame2, _ = read_image(args.frame2)
    if frame0.shape != frame2.shape:
        raise HiFIInputError(
            f"{args.frame0} is {frame0.shape[2]}x{frame0.shape[1]} but {args.frame2} is "
            f"{frame2.shape[2]}x{frame2.shape[1]}: both frames must have the same size")
    bit_depth = args.bit_depth or (16 if depth == 16 and args.output.lower().endswith(".png") else 8)
    inputs = (args.frame0, args.frame2)
    check_image_output(args.output, bit_depth, inputs)  # before minutes of work, not after
    settings = settings_from_args(args)
    model = model_from_args(args)
    update, close = tqdm_progress("interpolating")
    try:
        result = interpolate(model, frame0, frame2, args.tau, settings=settings, progress=update)
    finally:
        close()
    write_image(args.output, result, bit_depth, inputs)
    print(f"wrote {args.output}")
    return 0
