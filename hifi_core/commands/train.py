"""`python -m hifi_core train`: train (or resume) a model from a JSON config; export EMA weights.

Examples:
    python -m hifi_core train --config configs/train/small.json --out runs/small
    torchrun --nproc_per_node=2 -m hifi_core train --config configs/train/tiny.json --out runs/t
    python -m hifi_core train --config configs/train/small-own.json --out runs/gpu \
        --device cuda --precision bf16 --loader-workers 6
    python -m hifi_core train --out runs/small --export checkpoints/hifi-small.safetensors
    python -m hifi_core train --out runs/small --evaluate checkpoints/hifi-small.safetensors

A run directory that already holds a checkpoint is resumed (use --fresh to refuse that).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

HELP = "train a HiFI model from a JSON config (resumable, DDP-ready) or export its EMA weights"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="training config JSON (configs/train/*.json); "
                        "default: the config stored in --out's checkpoint, else configs/train/small.json")
    parser.add_argument("--out", type=Path, required=True, help="run directory (checkpoint, logs, plot)")
    parser.add_argument("--preset", help="override the config's model preset")
    parser.add_argument("--data", help="override data.root (folder with clips/ and photos/)")
    parser.add_argument("--steps", type=int, help="override the total number of steps")
    parser.add_argument("--stop-at", type=int, help="stop at this step without changing the schedule")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    parser.add_argument("--resume", action="store_true", help="require an existing checkpoint in --out")
    parser.add_argument("--fresh", action="store_true", help="refuse to resume an existing run")
    parser.add_argument("--no-validate", action="store_true", help="skip in-training validation")
    parser.add_argument("--threads", type=int, help="torch intra-op threads")
    parser.add_argument("--loader-workers", type=int, metavar="N",
                        help="override loader_workers: processes that make the next batches ahead "
                        "(on a GPU: a few per GPU; the batches do not change)")
    parser.add_argument("--precision", choices=("fp32", "bf16", "fp16"),
                        help="override precision: autocast of the training forward pass (GPU: bf16)")
    parser.add_argument("--evaluate", type=Path, metavar="CHECKPOINT",
                        help="score a HiFI checkpoint on the config's held-out validation triplets at "
                        "full resolution next to blend and DIS flow, plus the shortcut check; writes "
                        "evaluation.json/.md to --report-dir (default --out) and exits")
    parser.add_argument("--eval-per-clip", type=int, default=3, metavar="N",
                        help="--evaluate: triplets per clip and gap (default %(default)s)")
    parser.add_argument("--eval-settings", default="2x1,2x2,3x1,3x2", metavar="LxS,...",
                        help="--evaluate: cascade levels x DDIM steps to score (default %(default)s)")
    parser.add_argument("--report-dir", type=Path, help="--evaluate: where to write the report")
    parser.add_argument("--no-shortcut-check", action="store_true",
                        help="--evaluate: score only (the shortcut check costs about as long again)")
    parser.add_argument("--export", type=Path, metavar="PATH",
                        help="write the EMA weights of --out's checkpoint to PATH (safetensors) and exit")


def _load_config(args):
    from ..errors import HiFIInputError
    from ..training.config import config_from_dict, load_config

    checkpoint = args.out / "checkpoint.safetensors"
    if args.config is not None:
        config = load_config(args.config)
    elif checkpoint.exists():
        from safetensors import safe_open

        with safe_open(str(checkpoint), framework="pt") as f:
            config = config_from_dict(json.loads(f.metadata()["state"])["config"], str(checkpoint))
    elif Path("configs/train/small.json").exists():
        config = load_config(Path("configs/train/small.json"))
    else:
        raise HiFIInputError("no --config given and no checkpoint in --out to take one from")
    data = config.to_dict()
    if args.preset:
        data["preset"] = args.preset
    if args.data:
        data["data"]["root"] = args.data
    if args.steps:
        data["steps"] = args.steps
    if args.loader_workers is not None:
        data["loader_workers"] = args.loader_workers
    if args.precision:
        data["precision"] = args.precision
    return config_from_dict(data)


def run(args: argparse.Namespace) -> int:
    import torch

    from ..errors import HiFIInputError
    from ..training.state import CHECKPOINT_NAME, export_ema
    from ..training.trainer import Trainer

    if args.export is not None:
        checkpoint = args.out / CHECKPOINT_NAME
        if not checkpoint.exists():
            raise HiFIInputError(f"{checkpoint}: no training checkpoint to export; train into --out first")
        path = export_ema(checkpoint, args.export)
        print(f"exported EMA weights to {path}")
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    config = _load_config(args)
    if args.evaluate is not None:
        return _evaluate(args, config)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    trainer = Trainer(config, args.out, device=device, validate=not args.no_validate)
    try:
        exists = trainer.checkpoint_path.exists()
        if args.fresh and exists:
            raise HiFIInputError(f"{trainer.checkpoint_path} exists and --fresh was given; pick another --out")
        if args.resume and not exists:
            raise HiFIInputError(f"--resume: no checkpoint in {args.out}")
        if trainer.resume() and trainer.dist.main:
            print(f"resumed {args.out} at step {trainer.step}")
        if trainer.dist.main:
            (args.out / "config.json").write_text(config.to_json())
        trainer.fit(stop_at=args.stop_at)
        if trainer.dist.main:
            print(f"stopped at step {trainer.step}; checkpoint {trainer.checkpoint_path}")
    finally:
        trainer.close()
    return 0


def _evaluate(args, config) -> int:
    import dataclasses
    import platform

    from ..checkpoint import load_checkpoint
    from ..errors import HiFIInputError
    from ..training.evaluate import EvalSetting, condition_check, score_methods, write_report
    import torch

    from ..training.validation import real_clips, validation_set

    try:
        settings = [EvalSetting(*(int(n) for n in item.split("x"))) for item in args.eval_settings.split(",")]
    except (TypeError, ValueError):
        raise HiFIInputError(f"--eval-settings {args.eval_settings!r}: use LEVELSxSTEPS pairs, e.g. 2x1,3x2")
    model = load_checkpoint(args.evaluate)
    full_res = dataclasses.replace(config, validation=dataclasses.replace(
        config.validation, scale=1, per_clip=args.eval_per_clip))
    val = validation_set(real_clips(config), full_res)
    print(f"evaluating {args.evaluate} on {len(val)} full-resolution validation triplets")
    records = score_methods(model, val, settings, progress=True)
    check = [] if args.no_shortcut_check else condition_check(model, val, progress=True)
    machine = f"{platform.machine()}, {os.cpu_count()} CPU threads, torch {torch.__version__}"
    path = write_report(args.report_dir or args.out, records, check,
                        title=f"Validation of {Path(args.evaluate).name}",
                        command="python -m hifi_core " + shlex.join(sys.argv[1:]),
                        machine=machine)
    print(path.read_text())
    return 0
