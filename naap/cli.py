"""The `naap` command line. Each subcommand lives in the module of its concept, which
registers it through `add_command(subparsers)` and sets `run=callable(args) -> int`."""
from __future__ import annotations

import argparse
import sys

from naap.errors import NaapError

COMMAND_MODULES = ("naap.commands", "naap.runner", "naap.leaderboard")


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(prog="naap", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_command(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except NaapError as exc:
        print(f"naap: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and the like
        return 0
    except KeyboardInterrupt:
        print("naap: interrupted", file=sys.stderr)
        return 130
