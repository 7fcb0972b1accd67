"""Arguments and helpers shared by the commands that run the model (interpolate, retime, bench)."""

from __future__ import annotations

import argparse
import math
import sys
from typing import Callable, Optional, Tuple

from ..checkpoint import DEFAULT_CHECKPOINT_NAME, default_checkpoint_path, load_checkpoint, load_model
from ..config import PRESETS
from ..interpolate import CascadeSettings
from ..model import HiFIModel
from ..progress import ProgressEvent
from ..runtime import resolve_device as runtime_resolve_device


def parse_size(text: str) -> Tuple[int, int]:
    """'256x384' -> (256, 384) as (height, width); '256' -> (256, 256)."""
    try:
        parts = [int(p) for p in text.lower().split("x")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size like 256x384 (HxW)") from None
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size like 256x384 (HxW)")
    return parts[0], parts[1]


def finite_float(low: float = float("-inf"), high: float = float("inf"), *, low_open: bool = False):
    """An argparse type: a finite float in [low, high] ((low, high] with `low_open`), so NaN,
    inf and out-of-range values are refused where they are parsed, naming the option."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value) or value > high or value < low or (low_open and value == low):
            bounds = f"{'(' if low_open else '['}{low:g}, {high:g}]"
            raise argparse.ArgumentTypeError(f"{text!r} must be a finite number in {bounds}")
        return value
    return parse


def int_in(low: int, high: int):
    """An argparse type: a whole number in [low, high]."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text!r} must be between {low} and {high}")
        return value
    return parse


def parse_levels(text: str):
    return text if text == "auto" else int(text)


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--checkpoint", help="a HiFI .safetensors checkpoint "
                       "(default: the bundled trained checkpoint)")
    group.add_argument("--preset", choices=sorted(PRESETS),
                       help="an untrained preset (for testing the pipeline only)")
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda if available)")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "fp16", "bf16"])
    parser.add_argument("--compile", action="store_true",
                        help="run the network through torch.compile (GPUs, long jobs; falls back "
                        "with a warning where no compiler works)")


def add_cascade_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = CascadeSettings()
    parser.add_argument("--steps", type=int, default=defaults.steps, help="DDIM steps per level")
    parser.add_argument("--samples", type=int, default=defaults.samples, help="samples averaged")
    parser.add_argument("--levels", type=parse_levels, default=defaults.levels,
                        help="cascade levels, or 'auto'")
    parser.add_argument("--patch", type=parse_size, default=defaults.patch_size,
                        help="patch size HxW (default %(default)s)")
    parser.add_argument("--overlap", type=int, default=defaults.overlap, help="patch overlap in px")
    parser.add_argument("--eta", type=finite_float(0.0, 1.0), default=defaults.eta,
                        help="DDIM eta in [0, 1] (0 = deterministic, 1 = ancestral)")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--feather", action="store_true", help="feathered patch blending")
    parser.add_argument("--patch-batch", type=int, default=None, help="patches per network call")
    parser.add_argument("--memory-budget-mb", type=finite_float(0.0, 2.0 ** 40, low_open=True), default=None,
                        help="memory for the network's working set (default: 80%% of free)")


def resolve_device(name: Optional[str]) -> str:
    """--device as a string for the library (`runtime.resolve_device`: none given = CUDA if present)."""
    return str(runtime_resolve_device(name))


def model_from_args(args: argparse.Namespace) -> HiFIModel:
    """The model the flags ask for; warns loudly when it is an untrained preset."""
    device = resolve_device(args.device)
    if getattr(args, "preset", None):
        print(f"WARNING: using the UNTRAINED '{args.preset}' preset: output is only a pipeline "
              "test, not a real interpolation", file=sys.stderr)
        return load_model(args.preset, device)
    if getattr(args, "checkpoint", None):
        return load_model(args.checkpoint, device)
    path = default_checkpoint_path()
    if path is None:
        print(f"WARNING: no bundled checkpoint found (checkpoints/{DEFAULT_CHECKPOINT_NAME}); falling "
              "back to the UNTRAINED 'tiny' preset: output is only a pipeline test",
              file=sys.stderr)
        return load_model("tiny", device)
    return load_checkpoint(path, device)


def settings_from_args(args: argparse.Namespace) -> CascadeSettings:
    budget = None if args.memory_budget_mb is None else int(args.memory_budget_mb * 2 ** 20)
    return CascadeSettings(levels=args.levels, patch_size=args.patch, overlap=args.overlap,
                           steps=args.steps, samples=args.samples, eta=args.eta, seed=args.seed,
                           feather=args.feather, patch_batch=args.patch_batch,
                           memory_budget=budget, device=resolve_device(args.device),
                           precision=args.precision, compile=getattr(args, "compile", False))


def tqdm_progress(description: str) -> Tuple[Callable[[ProgressEvent], None], Callable[[], None]]:
    """A progress callback driving a tqdm bar over patch evaluations, and a closer."""
    from tqdm import tqdm

    bar = tqdm(desc=description, unit="patch", dynamic_ncols=True)

    def update(event: ProgressEvent) -> None:
        bar.total = event.units_total
        bar.set_postfix_str(f"level {event.level + 1}/{event.num_levels} "
                            f"step {event.step + 1}/{event.num_steps}", refresh=False)
        bar.update(event.units_done - bar.n)

    return update, bar.close
