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

Tau is scored as the headline is: on each cv test fold, then averaged over the folds. The folds
matter: they are stratified by accuracy (one architecture per bin of neighbours), so they hold
fewer close pairs than the whole set, and the same noise costs less tau on them (on NAAP-440's
folds, noise of sd 0.0047 gives about 0.947; over all 440 at once, 0.931).
"""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
from scipy import stats

from naap.bench.tables import Tables, run_maxima

DRAWS = 1000
SEED = 20220905
# With one seed per architecture: the ceiling a run-to-run sd of this much accuracy (0.2, 0.4 and
# 0.6 points) would give on the same folds, for comparison with the board's tau (fewer draws: a mean).
REFERENCE_SDS = (0.002, 0.004, 0.006)
REFERENCE_DRAWS = 100


def seed_maxima(tables: Tables) -> pd.DataFrame:
    """MaxAccuracy per architecture (rows) and seed (columns); NaN where a seed did not run."""
    return run_maxima(tables.epochs).unstack("seed")


def simulated_taus(target: pd.Series, noise_sd, folds, draws: int, seed: int = SEED) -> np.ndarray:
    """Per draw, Kendall's tau between `target` (indexed by arch_id) and target + normal noise of
    sd `noise_sd` (a number, or one per architecture), averaged over `folds` (arrays of arch_ids)."""
    positions = [target.index.get_indexer(fold) for fold in folds]
    if any((p < 0).any() for p in positions):
        raise ValueError("a fold names an architecture the target does not have")
    values, rng = target.to_numpy(), np.random.default_rng(seed)
    taus = []
    for _ in range(draws):
        noisy = values + rng.normal(0.0, noise_sd, len(values))
        taus.append(np.mean([stats.kendalltau(values[p], noisy[p]).statistic for p in positions]))
    return np.array(taus)


def noise_ceiling(tables: Tables, folds=None, draws: int = DRAWS, seed: int = SEED) -> dict | None:
    """The estimates above on `folds` (arrays of arch_ids; all architectures as one fold where
    None), or None where no architecture has two seeds."""
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
    target = tables.architectures.set_index("arch_id")["max_accuracy"].reindex(maxima.index)
    folds = [maxima.index.to_numpy()] if folds is None else folds
    taus = simulated_taus(target, np.sqrt(variance / counts.to_numpy()), folds, draws, seed)
    return {"architectures_with_seeds": int(len(multi)), "architectures": int(len(maxima)),
            "seeds": int(maxima.shape[1]), "seed_to_seed_tau": float(np.mean(pairs)) if pairs else float("nan"),
            "noise_sd": float(np.sqrt(variance)), "folds": len(folds), "ceiling_tau": float(np.mean(taus)),
            "ceiling_tau_low": float(np.quantile(taus, 0.025)), "ceiling_tau_high": float(np.quantile(taus, 0.975))}


def reference_ceilings(tables: Tables, folds, sds=REFERENCE_SDS, draws: int = REFERENCE_DRAWS) -> dict[float, float]:
    """For a dataset with one seed: the mean ceiling tau on `folds` if one run's sd were each of `sds`."""
    target = tables.architectures.set_index("arch_id")["max_accuracy"]
    return {sd: float(simulated_taus(target, sd, folds, draws).mean()) for sd in sds}


def _on(folds: int) -> str:
    return "over all architectures at once" if folds == 1 else f"averaged over the cv protocol's {folds} test folds"


def describe(ceiling: dict | None, references: dict[float, float] | None = None, folds: int = 1) -> str:
    """One line for the leaderboard; `references` (reference_ceilings) and `folds` where there is no ceiling."""
    if ceiling is None:
        line = ("Noise ceiling: not estimable: the dataset has one training run (seed) per architecture, so "
                "nothing tells how far the target itself would move on retraining (a rebuild that trains "
                "two or more seeds of some architectures gives it).")
        if references:
            ifs = " / ".join(f"{100 * sd:.1f}" for sd in references)
            taus = " / ".join(f"{tau:.3f}" for tau in references.values())
            line += (f" For comparison: if one run's MaxAccuracy varied from seed to seed with sd {ifs} accuracy "
                     f"points, a predictor that knew every architecture's expected accuracy would reach "
                     f"Kendall τ ≈ {taus} ({_on(folds)}).")
        return line
    return (f"Noise ceiling: from {ceiling['architectures_with_seeds']} of {ceiling['architectures']} architectures "
            f"trained with two or more seeds (run-to-run sd of MaxAccuracy {ceiling['noise_sd']:.4f}), one seed ranks "
            f"another with Kendall τ {ceiling['seed_to_seed_tau']:.3f}; a predictor that knew every architecture's "
            f"expected accuracy would reach τ ≈ {ceiling['ceiling_tau']:.3f} "
            f"[{ceiling['ceiling_tau_low']:.3f}, {ceiling['ceiling_tau_high']:.3f}] against the recorded target "
            f"({_on(ceiling['folds'])}).")
