"""Learning curves: test accuracy and training loss against epoch, to a figure or a PNG.

    naap plot [DIR] --arch 10 --arch "k3w16s2 k3w24s2 k3w32s1" --out curves.png
    axes = naap.load().plot_curves([10, 20])        # the same in Python: (accuracy, loss) Axes

One line per architecture: the mean over seeds (the published release has one seed).
"""
from __future__ import annotations

FIGSIZE = (10, 4)  # inches
DPI = 100


def learning_curves(bench, archs, axes=None):
    """Draw test accuracy (left) and mean training loss (right) of `archs` against epoch on two
    matplotlib Axes (new ones in a new figure if `axes` is None); returns the two Axes."""
    import matplotlib.pyplot as plt  # matplotlib loads on the first figure, not with naap.load()

    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=FIGSIZE, dpi=DPI, constrained_layout=True)
    accuracy_axes, loss_axes = axes
    curves = bench.curves(archs).groupby(["arch_id", "epoch"], sort=False)[["test_accuracy", "train_loss_mean"]]
    for arch_id, curve in curves.mean().reset_index().groupby("arch_id", sort=False):
        label = f"{arch_id}: {bench.arch(int(arch_id))}"
        accuracy_axes.plot(curve["epoch"], curve["test_accuracy"], label=label, linewidth=1)
        loss_axes.plot(curve["epoch"], curve["train_loss_mean"], label=label, linewidth=1)
    accuracy_axes.set(xlabel="epoch", ylabel="test accuracy", title=f"{bench.name}: test accuracy after each epoch")
    loss_axes.set(xlabel="epoch", ylabel="training loss", title="mean training loss of each epoch")
    accuracy_axes.legend(fontsize="small")
    return accuracy_axes, loss_axes

