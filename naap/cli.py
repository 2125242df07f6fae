"""The `naap` command line. Each subcommand lives in the module of its concept, which
registers it through `add_command(subparsers)` and sets `run=callable(args) -> int`."""
from __future__ import annotations

import argparse
import importlib
import signal
import sys
from contextlib import contextmanager

from naap.errors import NaapError

# Each command: the module that registers it, and its line in `naap --help`. Only the chosen
# command's module is imported (`naap info` does not pay for PyTorch), and `naap --help` imports
# none; tests/test_cli_help.py checks that these lines are the ones the modules register.
COMMANDS = {
    "schemes": ("naap.commands", "list a recipe's architectures"),
    "info": ("naap.commands", "summarise a dataset directory"),
    "import-release": ("naap.commands", "turn the published CSV + schemes JSON into Parquet"),
    "export-csv": ("naap.commands", "write a dataset in the published CSV layout"),
    "dataset": ("naap.runner", "train every architecture of a recipe into a Parquet dataset (resumable, torchrun-ready)"),
    "merge": ("naap.merge", "merge the parts of a dataset folder built with --shard into its tables"),
    "leaderboard": ("naap.leaderboard", "rank accuracy predictors (cross-validation, the paper's protocol, extrapolation)"),
    "predictors": ("naap.catalog", "list the registered accuracy predictors"),
    "plot": ("naap.plot", "draw learning curves of architectures to a PNG"),
    "proxies": ("naap.proxies", "compute zero-cost proxies of a dataset's architectures into DIR/proxies.parquet"),
}


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread as Ctrl-C raises KeyboardInterrupt: every command stops the same way."""


def _interrupt(signum, frame):
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


@contextmanager
def signals_handled(handler):
    """Inside, SIGINT and SIGTERM call `handler(signum, frame)`; after, the previous handlers are back."""
    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, restored in previous.items():
            signal.signal(s, restored)


@contextmanager
def _signals_held():
    """SIGINT and SIGTERM wait while the command's modules are imported, and are taken right
    after: an interrupt inside a library's import can leave it half-imported (some libraries
    catch every exception there), and the command would then fail with a confusing traceback."""
    received = []
    with signals_handled(lambda signum, frame: received.append(signum)):
        yield
    if received:
        _interrupt(received[0], None)


def interrupt_exit_code(interrupt: KeyboardInterrupt) -> int:
    """128 + the signal's number, as a shell reports a process ended by it: 130 (SIGINT), 143 (SIGTERM)."""
    return 128 + (signal.SIGTERM if isinstance(interrupt, Terminated) else signal.SIGINT)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="naap", description="Rebuild the NAAP-440 benchmark and rank accuracy predictors on it.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    if command in COMMANDS:
        importlib.import_module(COMMANDS[command][0]).add_command(subparsers)
    else:  # `naap --help` or an unknown command: list them all, importing none
        for name, (_, line) in COMMANDS.items():
            subparsers.add_parser(name, help=line)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        with _signals_held():
            parser = build_parser(argv[0] if argv else None)
        args = parser.parse_args(argv)
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
