"""The noise ceiling: how well any predictor can rank architectures when the target is itself
one noisy training run (or the mean of a few).

It needs several seeds for at least some architectures (a rebuild whose recipe trains more than
one seed); the published NAAP-440 has one seed per architecture, so there it cannot be estimated.
From the architectures with two or more seeds:

- seed-to-seed tau: Kendall's tau between two seeds' MaxAccuracy over the architectures both
  trained, averaged over the pairs of seeds: how well one run ranks another.
- ceiling tau: a simulation of a predictor that knows each architecture's expected MaxAccuracy
  exactly. The noise of one run is the pooled within-architecture variance of the seeds' maxima;
  an architecture's target, the mean of its k seeds, gets that variance / k. The observed targets
  stand in for the expected accuracies (their spread includes some noise, so the ceiling is, if
  anything, a little high). Mean and 2.5 / 97.5 % quantiles of tau over the draws.
"""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
from scipy import stats

from naap.tables import Tables, run_maxima

DRAWS = 1000
SEED = 20220905


def seed_maxima(tables: Tables) -> pd.DataFrame:
    """MaxAccuracy per architecture (rows) and seed (columns); NaN where a seed did not run."""
    return run_maxima(tables.epochs).unstack("seed")


def noise_ceiling(tables: Tables, draws: int = DRAWS, seed: int = SEED) -> dict | None:
    """The estimates above, or None where no architecture has two seeds."""
    maxima = seed_maxima(tables)
    counts = maxima.notna().sum(axis=1)
    multi = maxima[counts >= 2]
    if len(multi) < 2:
        return None
    pairs = []
    for a, b in itertools.combinations(multi.columns, 2):
        both = multi[[a, b]].dropna()
        if len(both) >= 2:
            pairs.append(stats.kendalltau(both[a], both[b]).statistic)
    deviations = multi.sub(multi.mean(axis=1), axis=0)
    variance = float(np.nansum(deviations.to_numpy() ** 2) / (multi.notna().sum().sum() - len(multi)))
    target = tables.architectures.set_index("arch_id")["max_accuracy"].reindex(maxima.index).to_numpy()
    k = counts.to_numpy()
    rng = np.random.default_rng(seed)
    taus = [stats.kendalltau(target, target + rng.normal(0.0, np.sqrt(variance / k))).statistic for _ in range(draws)]
    return {"architectures_with_seeds": int(len(multi)), "architectures": int(len(maxima)),
            "seeds": int(maxima.shape[1]), "seed_to_seed_tau": float(np.mean(pairs)) if pairs else float("nan"),
            "noise_sd": float(np.sqrt(variance)), "ceiling_tau": float(np.mean(taus)),
            "ceiling_tau_low": float(np.quantile(taus, 0.025)), "ceiling_tau_high": float(np.quantile(taus, 0.975))}


def describe(ceiling: dict | None) -> str:
    """One line for the leaderboard."""
    if ceiling is None:
        return ("Noise ceiling: not estimable: the dataset has one training run (seed) per architecture, so "
                "nothing tells how far the target itself would move on retraining (a rebuild that trains "
                "two or more seeds of some architectures gives it).")
    return (f"Noise ceiling: from {ceiling['architectures_with_seeds']} of {ceiling['architectures']} architectures "
            f"trained with two or more seeds (run-to-run sd of MaxAccuracy {ceiling['noise_sd']:.4f}), one seed ranks "
            f"another with Kendall τ {ceiling['seed_to_seed_tau']:.3f}; a predictor that knew every architecture's "
            f"expected accuracy would reach τ ≈ {ceiling['ceiling_tau']:.3f} "
            f"[{ceiling['ceiling_tau_low']:.3f}, {ceiling['ceiling_tau_high']:.3f}] against the recorded target.")
