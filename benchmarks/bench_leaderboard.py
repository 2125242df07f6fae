"""The paper protocol (24 regressors, budgets 0/3/6/9, five seeds) run plainly against naap's path.

plain:     every fit one after another (in one worker process), each ensemble size and each seed fitted anew;
optimised: joblib processes over all cores, ensemble sizes read off the largest fit, deterministic
           regressors fitted once for the five seeds.
Both runs happen here, one after the other; the numbers they produce must be identical.

    make bench-leaderboard            (or: python benchmarks/bench_leaderboard.py [DATA_DIR])
"""
import os
import sys
import time

import pandas as pd

from naap.board import features, predictors, protocols
from naap.bench.tables import load_tables


def timed(frame, **options):
    start = time.perf_counter()
    results = protocols.run_protocols(frame, predictors.select_predictors("paper"), [0, 3, 6, 9], ["paper"],
                                      progress=False, **options).results
    return time.perf_counter() - start, results


def main(data_dir: str = "data/naap440") -> None:
    frame = features.wide_frame(load_tables(data_dir))
    plain_seconds, plain = timed(frame, jobs=1, share_fits=False)
    fast_seconds, fast = timed(frame, jobs=-1, share_fits=True)
    same = fast.drop(columns="fit_seconds").equals(plain.drop(columns="fit_seconds"))
    print(f"paper protocol, {len(plain)} results on {os.cpu_count()} cores")
    print(f"plain (one after another, no reuse): {plain_seconds:7.1f} s")
    print(f"optimised (joblib + reuse):          {fast_seconds:7.1f} s")
    print(f"speed-up: {plain_seconds / fast_seconds:.1f}x   identical results: {same}")
    if not same:
        diff = pd.concat([plain, fast]).drop(columns="fit_seconds").drop_duplicates(keep=False)
        print(diff.head(), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main(*sys.argv[1:])
