"""The `naap` command line. Each subcommand lives in the module of its concept, which
registers it through `add_command(subparsers)` and sets `run=callable(args) -> int`."""
from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import sys
from pathlib import Path

from naap.errors import NaapError

# Which module registers each command. Only the chosen command's module is imported, so that
# `naap info` does not pay for importing PyTorch.
COMMANDS = {"schemes": "naap.commands", "info": "naap.commands", "import-release": "naap.commands",
            "export-csv": "naap.commands", "dataset": "naap.runner", "leaderboard": "naap.leaderboard",
            "predictors": "naap.catalog", "plot": "naap.plot"}


def help_lines() -> dict[str, str | None]:
    """Each command's line in `naap --help`: the literal help= of the `add_parser(NAME, help=...)`
    call in its module's source, read without importing the module (some import PyTorch)."""
    lines = {}
    for module in dict.fromkeys(COMMANDS.values()):
        tree = ast.parse(Path(importlib.util.find_spec(module).origin).read_text())
        for call in ast.walk(tree):
            if (isinstance(call, ast.Call) and getattr(call.func, "attr", None) == "add_parser"
                    and call.args and isinstance(call.args[0], ast.Constant)):
                given = [k.value for k in call.keywords if k.arg == "help" and isinstance(k.value, ast.Constant)]
                lines[call.args[0].value] = given[0].value if given else None
    return lines


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="naap", description="Rebuild the NAAP-440 benchmark and rank accuracy predictors on it.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    if command in COMMANDS:
        importlib.import_module(COMMANDS[command]).add_command(subparsers)
    else:  # `naap --help` or an unknown command: list them all, importing none
        lines = help_lines()
        for name in COMMANDS:
            subparsers.add_parser(name, help=lines.get(name))
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
