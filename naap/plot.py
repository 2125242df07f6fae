"""Learning curves: test accuracy and training loss against epoch, to a figure or a PNG.

    naap plot [DIR] --arch 10 --arch "k3w16s2 k3w24s2 k3w32s1" --out curves.png
    axes = naap.load().plot_curves([10, 20])        # the same in Python: (accuracy, loss) Axes

One line per architecture: the mean over seeds (the published release has one seed).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from naap.errors import NaapError

FIGSIZE = (10, 4)  # inches
DPI = 100


def learning_curves(bench, archs, axes=None):
    """Draw test accuracy (left) and mean training loss (right) of `archs` against epoch on two
    matplotlib Axes (new ones in a new figure if `axes` is None); returns the two Axes."""
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=FIGSIZE, dpi=DPI, constrained_layout=True)
    accuracy_axes, loss_axes = axes
    curves = bench.curves(archs).groupby(["arch_id", "epoch"], sort=False)[["test_accuracy", "train_loss_mean"]]
    curves = curves.mean().reset_index()
    for arch_id, curve in curves.groupby("arch_id", sort=False):
        label = f"{arch_id}: {bench.arch(int(arch_id))}"
        accuracy_axes.plot(curve["epoch"], curve["test_accuracy"], label=label, linewidth=1)
        loss_axes.plot(curve["epoch"], curve["train_loss_mean"], label=label, linewidth=1)
    accuracy_axes.set(xlabel="epoch", ylabel="test accuracy", title=f"{bench.name}: test accuracy after each epoch")
    loss_axes.set(xlabel="epoch", ylabel="training loss", title="mean training loss of each epoch")
    accuracy_axes.legend(fontsize="small")
    return accuracy_axes, loss_axes


def run(args: argparse.Namespace) -> int:
    from naap.bench import load
    from naap.tables import atomic_write

    bench = load(args.data_dir)
    archs = [int(a) if a.isdigit() else a for a in args.arch]
    try:
        bench.ids(archs)
    except (NaapError, ValueError, TypeError) as exc:
        raise NaapError(f"--arch: {exc}") from None
    if Path(args.out).suffix.lower() != ".png":
        raise NaapError(f"--out {args.out}: must be a .png file")

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
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("data_dir", nargs="?", default=None, metavar="DIR",
                        help="dataset directory (default: the shipped NAAP-440)")
    parser.add_argument("--arch", action="append", required=True, metavar="ID|STRING|HASH",
                        help="an arch_id, an architecture string such as 'k3w12s2 k3w16s2 k1w16s1r', "
                             "or an arch_hash (repeatable)")
    parser.add_argument("--out", required=True, metavar="FILE.png", help="the PNG to write")
    parser.set_defaults(run=run)
