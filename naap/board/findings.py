"""What the results say, as sentences generated from them (no number is written by hand): the
cross-validated headline per budget, what matters, and which families and feature sets help.

Comparisons are paired over the cv folds (every predictor and budget sees the same folds) with
the corrected t-test of summary.paired_p_value. A difference "helps" or "hurts" where
p <= 0.05, and is "no measurable difference" otherwise. Predictors flagged near-constant never
count as the best of anything.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from naap.escape import datum
from naap.board.features import BUDGET_FREE
from naap.board.summary import by_tau, paired_p_value

ARCH_SETS = ("arch", "arch-curve", "arch-proxies")
SIGNIFICANCE = 0.05
ALMOST_NOTHING = 0.01  # a difference in tau below this, and not significant, is "almost nothing"
NAMED_PAIRS = (  # (what, the variant, the reference), both registered predictors
    ("A pairwise ranking objective instead of squared error (XGBoost on the encoding)",
     "XGBoost ranking (arch)", "XGBoost (arch)"),
)


def _cv(summary: pd.DataFrame) -> pd.DataFrame:
    return summary[(summary["protocol"] == "cv") & ~summary["near_constant"] & summary["kendall_tau"].notna()]


def best(summary: pd.DataFrame, budget: int, where=None) -> pd.Series | None:
    """The cv row with the highest mean tau at `budget` among rows where `where(row frame)` holds;
    of equal ones, one that reads no epoch (a budget-free feature set), then by name."""
    rows = _cv(summary)
    rows = rows[rows["budget"] == budget]
    if where is not None:
        rows = rows[where(rows)]
    return None if rows.empty else by_tau(rows).iloc[0]


def _reads_training(rows: pd.DataFrame) -> pd.Series:
    return ~rows["features"].isin(BUDGET_FREE)


def _fmt(row: pd.Series) -> str:
    return f"{row['kendall_tau']:.3f} [{row['kendall_tau_low']:.3f}, {row['kendall_tau_high']:.3f}]"


def compare(results: pd.DataFrame, a: pd.Series, b: pd.Series) -> tuple[float, float]:
    """(mean tau of a - mean tau of b, paired p-value over the shared folds)."""
    cv = results[results["protocol"] == "cv"]

    def folds(row):
        return cv[(cv["predictor"] == row["predictor"]) & (cv["budget"] == row["budget"])]

    fa, fb = folds(a), folds(b)
    p = paired_p_value(fa.set_index("fold")["kendall_tau"], fb.set_index("fold")["kendall_tau"], fa)
    return float(a["kendall_tau"] - b["kendall_tau"]), p


def _p(p: float) -> str:
    if not np.isfinite(p):
        return "no test: too few folds"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def _verdict(diff: float, p: float) -> str:
    if np.isfinite(p) and p <= SIGNIFICANCE:
        return "helps" if diff > 0 else "hurts"
    return "no measurable difference"


def _sentence(what: str, results, a, b) -> str:
    diff, p = compare(results, a, b)
    return (f"{what}: {_verdict(diff, p)} (τ {a['kendall_tau']:.3f}, {datum(a['predictor'])}, against "
            f"{b['kendall_tau']:.3f}, {datum(b['predictor'])}; difference {diff:+.3f}, {_p(p)}).")


def headline(summary: pd.DataFrame) -> list[str]:
    """The best cv predictor at each budget, with its interval, and every predictor that the paired
    test cannot tell apart from it (p > 0.05, summary's p_vs_best; an untestable p counts as that):
    a change in the last digits (another CPU) may swap the first name with one of these, never
    change who is named."""
    lines = []
    cv = _cv(summary)
    for budget in sorted(cv["budget"].unique()):
        row = best(summary, budget)
        others = by_tau(cv[(cv["budget"] == budget) & (cv["predictor"] != row["predictor"])])
        level = others[~(others["p_vs_best"] <= SIGNIFICANCE)]
        level_text = ("; the data cannot tell apart from it (paired p > 0.05): " + ", ".join(
            f"{datum(r['predictor'])} {r['kendall_tau']:.3f} ({_p(r['p_vs_best'])})" for _, r in level.iterrows())
            if len(level) else "; every other predictor is worse (paired p <= 0.05)")
        lines.append(f"{budget} epochs: **{datum(row['predictor'])}**, Kendall τ {_fmt(row)}; "
                     f"{row['violations']:.1f} violations per test fold (ties as half), mean of {row['runs']} folds"
                     f"{level_text}.")
    return lines


PUBLISHED = {9: "Random Forest (N=200), 25 violations in the paper's count"}  # docs/benchmark.md


HELD_OUT = {"extrapolation-size": "the largest tenth by NumMACs", "extrapolation-accuracy": "the most accurate tenth"}


def fixed_split_lines(summary: pd.DataFrame) -> list[str]:
    """The paper split's best at its largest budget (fewest violations, ties as half), then each
    extrapolation protocol's best (highest tau)."""
    lines = []
    fixed = summary[(summary["protocol"] != "cv") & ~summary["near_constant"]]
    for protocol in ["paper", *HELD_OUT]:
        rows = fixed[fixed["protocol"] == protocol]
        if rows.empty:
            continue
        budget = rows["budget"].max()
        rows = rows[rows["budget"] == budget]
        if protocol == "paper":
            top = rows.sort_values(["violations", "mae", "predictor"]).iloc[0]
            published = f"; the paper's published best: {PUBLISHED[budget]}" if budget in PUBLISHED else ""
            lines.append(f"The paper's split (the reproduction), {budget} epochs: **{datum(top['predictor'])}**, "
                         f"{top['violations']:g} violations (ties as half; the paper's count {top['violations_strict']:g}; "
                         f"the median of {top['runs']} seeds), Kendall τ {top['kendall_tau']:.3f}{published}.")
        else:
            top = rows.sort_values(["kendall_tau", "predictor"], ascending=[False, True]).iloc[0]
            lines.append(f"Extrapolation to {HELD_OUT[protocol]} ({protocol}), {budget} epochs: "
                         f"**{datum(top['predictor'])}**, Kendall τ {top['kendall_tau']:.3f} within it "
                         f"({top['violations']:g} violations, ties as half).")
    return lines


def what_matters(results: pd.DataFrame, summary: pd.DataFrame, recorded: int) -> str | None:
    """One plain sentence: does training (the largest budget) add to the best model without it?"""
    budgets = sorted(_cv(summary)["budget"].unique())
    if len(budgets) < 2:
        return None
    first, last = budgets[0], budgets[-1]
    with_training, without = best(summary, last, _reads_training), best(summary, first)
    if with_training is None:
        return None
    diff, p = compare(results, with_training, without)
    share = f"{last} of {recorded} epochs ({100 * last / recorded:.0f} %)"
    encoded = "With the architecture encoded, " if without["features"] in ARCH_SETS else ""
    if abs(diff) < ALMOST_NOTHING and not p <= SIGNIFICANCE:
        verb = "add almost nothing"
    else:
        verb = f"{'add' if diff > 0 else 'lose'} {abs(diff):.3f} in τ" + (" (significant)" if p <= SIGNIFICANCE else "")
    return (f"{encoded}{'the' if encoded else 'The'} first {share} of training {verb}: the best predictor that "
            f"reads them ({datum(with_training['predictor'])}) reaches τ {_fmt(with_training)}, the best with no "
            f"training ({datum(without['predictor'])}) {_fmt(without)}; paired difference {diff:+.3f}, {_p(p)}.")


def what_helps(results: pd.DataFrame, summary: pd.DataFrame) -> list[str]:
    """Sentences on feature sets, training, objectives, proxies and families, where the results have them."""
    budgets = sorted(_cv(summary)["budget"].unique())
    if not budgets:
        return []
    first, last = budgets[0], budgets[-1]
    lines = []

    def pair(what, a, b):
        if a is not None and b is not None and (a["predictor"], a["budget"]) != (b["predictor"], b["budget"]):
            lines.append(_sentence(what, results, a, b))

    def features(names):
        return lambda rows: rows["features"].isin(names)

    pair(f"Encoding the architecture instead of the paper's columns, at {first} epochs",
         best(summary, first, features(ARCH_SETS)), best(summary, first, features(["paper"])))
    if last != first:
        pair(f"The curve summary of {last} epochs, added to the encoding",
             best(summary, last, features(["arch-curve"])), best(summary, last, features(["arch"])))
        pair(f"{last} epochs of curves with the paper's columns, against none",
             best(summary, last, features(["paper"])), best(summary, first, features(["paper"])))
    with_proxies = best(summary, first, features(["arch-proxies"]))
    if with_proxies is not None:
        pair("The zero-cost proxies added to the encoding (same family)", with_proxies,
             best(summary, first, lambda rows: (rows["features"] == "arch") & (rows["family"] == with_proxies["family"])))
    pair("The six zero-cost proxies in one model, against the best proxy alone",
         best(summary, first, lambda rows: (rows["features"] == "proxies") & (rows["family"] != "zero-cost proxy")),
         best(summary, first, lambda rows: rows["family"] == "zero-cost proxy"))
    pair("The best zero-cost proxy alone, against NumMACs alone",
         best(summary, first, lambda rows: rows["family"] == "zero-cost proxy"),
         best(summary, first, lambda rows: rows["predictor"] == "NumMACs alone"))
    for what, a, b in NAMED_PAIRS:
        pair(what, best(summary, first, lambda rows, a=a: rows["predictor"] == a),
             best(summary, first, lambda rows, b=b: rows["predictor"] == b))
    top = best(summary, last)
    families = []
    for family, rows in _cv(summary)[lambda s: s["budget"] == last].groupby("family"):
        member = rows.loc[rows["kendall_tau"].idxmax()]
        if member["predictor"] == top["predictor"]:
            continue
        diff, p = compare(results, member, top)
        families.append((member["kendall_tau"], f"{datum(family)} {member['kendall_tau']:.3f} "
                                                f"({'cannot be told apart' if not p <= SIGNIFICANCE else 'worse'}, "
                                                f"{_p(p)})"))
    if families:
        lines.append(f"Families at {last} epochs, best member's τ against the best, {datum(top['predictor'])} "
                     f"({top['kendall_tau']:.3f}): " + "; ".join(text for _, text in sorted(families, reverse=True)) + ".")
    return lines
