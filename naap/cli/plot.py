"""`naap plot [DIR] --arch ... --out FILE.png`: learning curves of architectures to a PNG."""
from __future__ import annotations

import argparse
from pathlib import Path

from naap._io import atomic_write
from naap.bench.plot import learning_curves
from naap.bench.query import load
from naap.errors import NaapError

DESCRIPTION = "Draw test accuracy and mean training loss against epoch, one line per architecture (the mean over seeds)."


def run(args: argparse.Namespace) -> int:
    bench = load(args.data_dir)
    archs = [int(a) if a.isascii() and a.isdigit() else a for a in args.arch]  # '²' is a digit, not a number
    try:
        ids = bench.ids(archs)
    except (NaapError, ValueError, TypeError) as exc:
        raise NaapError(f"--arch: {exc}") from None
    if not bench.epochs.index.isin(ids).any():
        raise NaapError(f"--arch: no epoch rows to draw (each run of {', '.join(args.arch)} diverged "
                        f"in its first epoch)")
    if Path(args.out).suffix.lower() != ".png":
        raise NaapError(f"--out {args.out}: must be a .png file")

    # matplotlib loads here, not for `naap plot --help`; the Agg backend draws without a display
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure = learning_curves(bench, archs)[0].figure
    atomic_write(args.out, lambda tmp: figure.savefig(tmp, format="png"))
    plt.close(figure)
    print(f"wrote {args.out}")
    return 0


def add_command(subparsers) -> None:
    parser = subparsers.add_parser("plot", help="draw learning curves of architectures to a PNG",
                                   description=DESCRIPTION)
    parser.add_argument("data_dir", nargs="?", default=None, metavar="DIR",
                        help="dataset directory (default: the shipped NAAP-440)")
    parser.add_argument("--arch", action="append", required=True, metavar="ID|STRING|HASH",
                        help="an arch_id, an architecture string such as 'k3w12s2 k3w16s2 k1w16s1r', "
                             "or an arch_hash (repeatable)")
    parser.add_argument("--out", required=True, metavar="FILE.png", help="the PNG to write")
    parser.set_defaults(run=run)
