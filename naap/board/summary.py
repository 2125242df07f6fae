"""The protocols' results summarised: the median seed of a fixed split, the mean of the cv folds with
a corrected resampled-t interval, and paired tests against the best predictor."""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from naap.board.features import BUDGET_FREE
from naap.board.protocols import FIXED_SPLITS

METRICS = ("mae", "violations", "violations_strict", "monotonicity", "kendall_tau", "spearman")
# Intervals are cut to what a metric can be (few, small folds give wide t-intervals).
METRIC_RANGES = {"mae": (0.0, np.inf), "violations": (0.0, np.inf), "violations_strict": (0.0, np.inf),
                 "monotonicity": (0.0, 1.0), "kendall_tau": (-1.0, 1.0), "spearman": (-1.0, 1.0)}


def _corrected_scale(group: pd.DataFrame) -> float:
    """Nadeau and Bengio's variance correction for repeated resampling: the folds share training
    rows, so the fold results are not independent; 1/J becomes 1/J + n_test/n_train."""
    ratio = (group["test_items"] / group["train_items"]).mean()
    return np.sqrt(1.0 / len(group) + ratio)


SUMMARY_KEYS = ["protocol", "predictor", "family", "features", "budget"]


def summarise(results: pd.DataFrame) -> pd.DataFrame:
    """One row per protocol, predictor and budget.

    Fixed splits (paper, extrapolation): the seed with the median violations (ties as half;
    sorted by violations, then seed; the middle one). cv: the mean over folds and a 95 % interval
    (corrected resampled t), and `p_vs_best`, the p-value of a corrected paired t-test of Kendall
    tau against the predictor with the best mean tau at that budget (NaN for that one).
    near_constant: the predictions were (nearly) constant in at least half of the runs.
    """
    keys = SUMMARY_KEYS
    parts = []
    fixed = results[results["protocol"].isin(FIXED_SPLITS)]
    if len(fixed):
        ranked = fixed.sort_values(keys + ["violations", "seed"])
        middle = ranked.groupby(keys, sort=False).apply(lambda g: g.iloc[len(g) // 2], include_groups=False)
        runs = fixed.groupby(keys).size().rename("runs")
        flagged = fixed.groupby(keys)["near_constant"].mean().ge(0.5).rename("flagged")
        part = middle.drop(columns="near_constant").join(runs).join(flagged).reset_index()
        parts.append(part.rename(columns={"flagged": "near_constant"})[keys + ["runs", "seed", "near_constant"]
                                                                      + list(METRICS)])
    cv = results[results["protocol"] == "cv"]
    if len(cv):
        parts.append(_summarise_cv(cv, keys))
    summary = pd.concat(parts, ignore_index=True)
    summary["violations"] = summary["violations"].astype(float)
    summary["violations_strict"] = summary["violations_strict"].astype(float)
    summary["near_constant"] = summary["near_constant"].astype(bool)
    return summary


def by_tau(rows: pd.DataFrame) -> pd.DataFrame:
    """`rows` best first: higher Kendall tau, then (of equal ones) one that reads no epoch (a
    budget-free feature set), then by name."""
    order = rows.assign(_tau=-rows["kendall_tau"], _reads=~rows["features"].isin(BUDGET_FREE))
    return rows.loc[order.sort_values(["_tau", "_reads", "predictor"]).index]


def _summarise_cv(cv: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    rows = []
    for key, group in cv.groupby(keys, sort=False):
        row = dict(zip(keys, key), runs=len(group), seed=None, near_constant=group["near_constant"].mean() >= 0.5)
        half = stats.t.ppf(0.975, len(group) - 1) * _corrected_scale(group) if len(group) > 1 else np.nan
        for metric in METRICS:
            values = group[metric].astype(float)
            row[metric] = values.mean()
            spread = half * values.std(ddof=1)
            row[f"{metric}_low"], row[f"{metric}_high"] = np.clip(
                [values.mean() - spread, values.mean() + spread], *METRIC_RANGES[metric])
        rows.append(row)
    summary = pd.DataFrame(rows)
    summary["p_vs_best"] = np.nan
    for budget, at_budget in summary.groupby("budget"):
        candidates = at_budget[~at_budget["near_constant"]]
        if candidates.empty:
            continue
        best = by_tau(candidates)["predictor"].iloc[0]
        folds = cv[cv["budget"] == budget].pivot(index="fold", columns="predictor", values="kendall_tau")
        reference = cv[(cv["budget"] == budget) & (cv["predictor"] == best)]
        for index, predictor in at_budget["predictor"].items():
            if predictor == best:
                continue
            summary.loc[index, "p_vs_best"] = paired_p_value(folds[best], folds[predictor], reference)
    return summary


def paired_p_value(a: pd.Series, b: pd.Series, reference: pd.DataFrame) -> float:
    """Corrected paired t-test (Nadeau-Bengio) of a - b over the shared folds."""
    diff = (a - b).dropna()
    if len(diff) < 2:
        return np.nan
    spread = diff.std(ddof=1) * _corrected_scale(reference)
    t_stat = diff.mean() / spread if spread > 0 else (np.inf if diff.mean() else 0.0)
    return float(2 * stats.t.sf(abs(t_stat), len(diff) - 1))
