"""The `naap` command line. Each command has its module in naap.cli (argument parsing and printing;
the work is done by naap.bench, naap.rebuild and naap.board), which registers it through
`add_command(subparsers)` and sets `run=callable(args) -> int`."""
from __future__ import annotations

import argparse
import contextlib
import importlib
import signal
import sys

from naap._signals import handled_signals, interrupt_exit_code, interrupt_signal, raise_interrupt, signals_held
from naap.errors import NaapError
from naap.extras import needs

# Each command: the module that registers it, and its line in `naap --help`. Only the chosen
# command's module is imported (`naap info` does not pay for PyTorch), and `naap --help` imports
# none; tests/cli/test_cli_help.py checks that these lines are the ones the modules register.
COMMANDS = {
    "recipes": ("naap.cli.recipes", "list the shipped recipes (usable by name)"),
    "schemes": ("naap.cli.inspect", "list a recipe's architectures"),
    "info": ("naap.cli.inspect", "summarise a dataset directory"),
    "import-release": ("naap.cli.release", "turn the published CSV + schemes JSON into Parquet"),
    "export-csv": ("naap.cli.release", "write a dataset in the published CSV layout"),
    "dataset": ("naap.cli.dataset", "train every architecture of a recipe into a Parquet dataset (resumable, torchrun-ready)"),
    "merge": ("naap.cli.merge", "merge the parts of a dataset folder built with --shard into its tables"),
    "leaderboard": ("naap.cli.leaderboard", "rank accuracy predictors (cross-validation, the paper's protocol, extrapolation)"),
    "folds": ("naap.cli.folds", "write every protocol's splits and features to a Parquet file, to rank predictions made elsewhere"),
    "predictors": ("naap.cli.predictors", "list the registered accuracy predictors"),
    "plot": ("naap.cli.plot", "draw learning curves of architectures to a PNG"),
    "proxies": ("naap.cli.proxies", "compute zero-cost proxies of a dataset's architectures into DIR/proxies.parquet"),
}
# The extra a command's libraries come from (pyproject.toml); the others need only `pip install naap`.
EXTRA = {"dataset": "build", "proxies": "build", "leaderboard": "board", "predictors": "board", "folds": "board"}


class Parser(argparse.ArgumentParser):
    """argparse, with a mistake in the arguments as one line and exit 2, like every other bad
    input (argparse itself would print the usage too): `naap COMMAND --help` shows the usage."""

    def error(self, message: str):
        raise NaapError(f"{self.prog}: {message} (`{self.prog} --help` shows the usage)")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    parser = Parser(
        prog="naap", description="Rebuild the NAAP-440 benchmark and rank accuracy predictors on it.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    if command in COMMANDS:
        importlib.import_module(COMMANDS[command][0]).add_command(subparsers)
    else:  # `naap --help` or an unknown command: list them all, importing none
        for name, (_, line) in COMMANDS.items():
            subparsers.add_parser(name, help=line)
    return parser


def utf8_output() -> None:
    """stdout and stderr in UTF-8 whatever the locale (PYTHONIOENCODING=ascii, LANG=C): names such
    as τ are printed, never a UnicodeEncodeError after the work is done."""
    for stream in (sys.stdout, sys.stderr):  # nor a path's undecodable bytes (backslash escapes)
        with contextlib.suppress(AttributeError, ValueError, OSError):
            stream.reconfigure(encoding="utf-8", errors="backslashreplace")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    utf8_output()
    previous = {s: signal.signal(s, raise_interrupt) for s in handled_signals() if s != signal.SIGINT}
    command = argv[0] if argv else None
    try:
        with needs(f"naap {command}", EXTRA.get(command)):  # a missing extra: one line naming it
            with signals_held():
                parser = build_parser(command)
            args = parser.parse_args(argv)
            return int(args.run(args) or 0)
    except NaapError as exc:
        print(f"naap: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and the like
        return 0
    except OSError as exc:  # a path the system refuses (longer than PATH_MAX, ...) before a command checks it
        print(f"naap: error: {exc.filename or 'a path'}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as interrupt:  # a command may say what it kept, in the exception's message
        name = interrupt_signal(interrupt).name
        print(f"naap: interrupted ({name}){f': {interrupt}' if str(interrupt) else ''}", file=sys.stderr)
        return interrupt_exit_code(interrupt)
    finally:
        for s, restored in previous.items():
            signal.signal(s, restored)
