"""The `naap` command line. Each subcommand lives in the module of its concept, which
registers it through `add_command(subparsers)` and sets `run=callable(args) -> int`."""
from __future__ import annotations

import argparse
import importlib
import sys

from naap.errors import NaapError

# Which module registers each command. Only the chosen command's module is imported, so that
# `naap info` does not pay for importing PyTorch.
COMMANDS = {"schemes": "naap.commands", "info": "naap.commands", "import-release": "naap.commands",
            "export-csv": "naap.commands", "dataset": "naap.runner", "leaderboard": "naap.leaderboard",
            "proxies": "naap.proxies"}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="naap", description="Rebuild the NAAP-440 benchmark and rank accuracy predictors on it.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    modules = [COMMANDS[command]] if command in COMMANDS else dict.fromkeys(COMMANDS.values())
    for name in modules:
        importlib.import_module(name).add_command(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv[0] if argv else None).parse_args(argv)
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
