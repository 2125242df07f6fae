"""Random search against successive halving and Hyperband on NAAP-440, simulated from its tables.

    python -m naap.examples.search [--seeds 20] [--budget 0.05] [--out search_regret.png]

Every method gets the same budget, a fraction of what training all 440 architectures for 90
epochs costs (6.7e15 FLOP), and runs under each seed. Regret: the best final test accuracy in
NAAP-440 minus the final test accuracy of the method's incumbent, against the cost spent so far.
The figure shows the median over the seeds and the band between the quartiles
(docs/figures/search_regret.png is this figure).
"""
import argparse
import time

import matplotlib

matplotlib.use("Agg")  # draws without a display; set before pyplot is imported
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from naap._io import atomic_write  # noqa: E402
from naap.bench import search  # noqa: E402
from naap.bench.query import load  # noqa: E402

METHODS = {
    "random search (90 epochs each)": search.random_search,
    "successive halving (27 archs, 3-10-30-90 epochs)": search.repeated_successive_halving,
    "Hyperband (1 to 90 epochs, eta 3)": search.hyperband,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--budget", type=float, default=0.05, help="fraction of the whole benchmark's cost")
    parser.add_argument("--out", default="search_regret.png", help="the PNG to write")
    args = parser.parse_args()

    start = time.perf_counter()
    bench = load()
    whole = bench.objective().cumulative[:, -1].sum()  # every architecture, every epoch
    budget = args.budget * whole
    spent = np.linspace(0, budget, 400)
    figure, axes = plt.subplots(figsize=(8, 4.5), dpi=100, constrained_layout=True)
    print(f"budget {budget:.3g} FLOP ({args.budget:.0%} of {whole:.3g}), {args.seeds} seeds")
    print(f"{'method':50s} {'final regret (median, quartiles)':>34s} {'architectures seen':>20s}")
    for name, method in METHODS.items():
        regrets, seen = [], []
        for seed in range(args.seeds):
            objective = bench.objective(budget=budget)
            method(objective, seed=seed)
            regrets.append(search.regret_at(objective.trace, spent) * 100)  # accuracy points
            seen.append(objective.trace["arch_id"].nunique())
        regrets = np.array(regrets)
        every_seed = ~np.isnan(regrets).any(axis=0)  # from the point where every seed has an incumbent
        low, median, high = np.percentile(regrets[:, every_seed], [25, 50, 75], axis=0)
        line, = axes.plot(spent[every_seed] / 1e15, median, label=name)
        axes.fill_between(spent[every_seed] / 1e15, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
        print(f"{name:50s} {median[-1]:10.2f} ({low[-1]:.2f} to {high[-1]:.2f}) points {np.median(seen):14.0f}")
    axes.set(xlabel="cost spent (PFLOP: 2 FLOP per MAC, training at 3x forward, plus the test pass)",
             ylabel="regret (test accuracy points)", ylim=(0, None),
             title=f"NAAP-440 simulated search: median and quartiles over {args.seeds} seeds")
    axes.legend()
    atomic_write(args.out, lambda tmp: figure.savefig(tmp, format="png"))
    print(f"wrote {args.out} in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
