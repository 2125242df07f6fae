"""The `naap` command line. Each subcommand lives in the module of its concept, which
registers it through `add_command(subparsers)` and sets `run=callable(args) -> int`."""
from __future__ import annotations

import argparse
import importlib
import signal
import sys

from naap.errors import NaapError

# Which module registers each command. Only the chosen command's module is imported, so that
# `naap info` does not pay for importing PyTorch.
COMMANDS = {"schemes": "naap.commands", "info": "naap.commands", "import-release": "naap.commands",
            "export-csv": "naap.commands", "dataset": "naap.runner", "merge": "naap.merge",
            "leaderboard": "naap.leaderboard"}


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread as Ctrl-C raises KeyboardInterrupt: every command stops the same way."""


def _terminate(signum, frame):
    raise Terminated()


def interrupt_exit_code(interrupt: KeyboardInterrupt) -> int:
    """128 + the signal's number, as a shell reports a process ended by it: 130 (SIGINT), 143 (SIGTERM)."""
    return 128 + (signal.SIGTERM if isinstance(interrupt, Terminated) else signal.SIGINT)


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
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        args = build_parser(argv[0] if argv else None).parse_args(argv)
        return int(args.run(args) or 0)
    except NaapError as exc:
        print(f"naap: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and the like
        return 0
    except KeyboardInterrupt as interrupt:  # a command may say what it kept, in the exception's message
        name = "SIGTERM" if isinstance(interrupt, Terminated) else "SIGINT"
        print(f"naap: interrupted ({name}){f': {interrupt}' if str(interrupt) else ''}", file=sys.stderr)
        return interrupt_exit_code(interrupt)
    finally:
        signal.signal(signal.SIGTERM, previous)
