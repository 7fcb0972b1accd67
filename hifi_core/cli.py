"""Command line: `python -m hifi_core <command> ...`.

Each sub-command lives in `hifi_core/commands/<name>.py` and exposes `HELP`,
`add_arguments(parser)` and `run(args) -> int`. User errors print one clear line and exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import List, Optional

from .errors import Cancelled, CheckpointError, HiFIInputError

COMMANDS = ("info", "interpolate", "retime", "setup-motion", "train", "bench")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m hifi_core",
                                     description="HiFI high-resolution frame interpolation")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"hifi_core.commands.{name.replace('-', '_')}")
        except ModuleNotFoundError as error:
            if error.name == f"hifi_core.commands.{name.replace('-', '_')}":
                continue  # that command is not part of this build
            raise
        command = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(command)
        command.set_defaults(handler=module.run)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except (HiFIInputError, CheckpointError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except (Cancelled, KeyboardInterrupt):
        print("cancelled", file=sys.stderr)
        return 130
