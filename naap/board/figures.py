"""The leaderboard's figures (matplotlib, Agg backend), rendered to PNG bytes. Names from data
(predictors, families) pass through naap.escape.figure_text: one line, `$` literal."""
from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from naap.escape import figure_text  # noqa: E402


def _paper_ranking(summary) -> tuple[int, pd.DataFrame]:
    """The paper protocol's largest budget and its rows, fewest violations (then lowest MAE) first,
    predictors flagged near-constant left out."""
    paper = summary[(summary["protocol"] == "paper") & ~summary["near_constant"]]
    budget = paper["budget"].max()
    return budget, paper[paper["budget"] == budget].sort_values(["violations", "mae"])


def _reported_predictions(ranked, predictions, budget) -> pd.DataFrame:
    """The test predictions of the seed each of the paper protocol's `ranked` rows reports."""
    paper = predictions[(predictions["protocol"] == "paper") & (predictions["budget"] == budget)]
    return paper.merge(ranked[["predictor", "seed"]], on=["predictor", "seed"])


def figure_predicted_vs_true(summary, predictions, count: int = 4):
    budget, ranked = _paper_ranking(summary)
    best = ranked.drop_duplicates("family")["predictor"].head(count).tolist()  # the best of the best families
    shown = _reported_predictions(ranked, predictions, budget)
    fig, axes = plt.subplots(1, len(best), figsize=(3.2 * len(best), 3.4), squeeze=False)
    for ax, name in zip(axes[0], best):
        rows = shown[shown["predictor"] == name]
        row = ranked[ranked["predictor"] == name].iloc[0]
        low, high = rows[["true", "predicted"]].min().min(), rows[["true", "predicted"]].max().max()
        ax.plot([low, high], [low, high], color="0.6", lw=1)
        ax.scatter(rows["true"], rows["predicted"], s=14)
        ax.set_title(f"{figure_text(name)}\n{row['violations']:g} violations, MAE {row['mae']:.4f}", fontsize=9)
        ax.set_xlabel("true MaxAccuracy")
    axes[0][0].set_ylabel("predicted")
    fig.suptitle(f"Paper split, {budget} epochs: predicted vs true, best of the {len(best)} best families "
                 "(the reported seed)", fontsize=10)
    fig.tight_layout()
    return fig


def figure_tau_vs_budget(summary):
    """The best member of each family at each budget; cv: mean with its 95 % interval as error bars
    (families side by side around each budget). Near-constant predictors are left out."""
    protocol = "cv" if (summary["protocol"] == "cv").any() else "paper"
    frame = summary[(summary["protocol"] == protocol) & ~summary["near_constant"]]
    families = sorted(frame["family"].unique())
    budgets = sorted(frame["budget"].unique())
    step = min(np.diff(budgets)) if len(budgets) > 1 else 1
    fig, ax = plt.subplots(figsize=(8, 4.6))
    ax.set_prop_cycle(color=plt.get_cmap("tab20").colors[::2] + plt.get_cmap("tab20").colors[1::2])
    for i, family in enumerate(families):
        rows = frame[frame["family"] == family]
        best = rows.loc[rows.groupby("budget")["kendall_tau"].idxmax()].sort_values("budget")
        x = best["budget"] + step * 0.5 * (i / max(len(families) - 1, 1) - 0.5)
        errors = None
        if protocol == "cv":
            errors = [best["kendall_tau"] - best["kendall_tau_low"], best["kendall_tau_high"] - best["kendall_tau"]]
        ax.errorbar(x, best["kendall_tau"], yerr=errors, marker="o", ms=4, lw=1.2, capsize=2, label=figure_text(family))
    ax.set_xlabel("budget (epochs of training seen)")
    ax.set_ylabel("Kendall τ (best of family)")
    ax.set_xticks(budgets)
    ax.set_title(f"Kendall τ against budget ({'cv mean, 95 % interval' if protocol == 'cv' else 'paper split'})",
                 fontsize=10)
    if ax.get_legend_handles_labels()[0]:  # no family has a finite tau on a tiny dataset
        ax.legend(fontsize=7, ncol=2, loc="lower right")
    fig.tight_layout()
    return fig


def figure_rank_matrix(summary, predictions, count: int = 30):
    """Rows: the `count` predictors with the fewest violations (on top); columns: the test
    architectures in true order; colour: the rank the predictor gives. A perfect predictor is a smooth ramp."""
    budget, ranked = _paper_ranking(summary)
    ranked = ranked.head(count)
    order = ranked["predictor"].tolist()
    shown = _reported_predictions(ranked, predictions, budget).sort_values(["predictor", "true", "arch_id"])
    shown["rank"] = shown.groupby("predictor")["predicted"].rank(method="average")
    matrix = np.stack([shown.loc[shown["predictor"] == name, "rank"].to_numpy() for name in order])
    fig, ax = plt.subplots(figsize=(8, 0.22 * len(order) + 1.4))
    image = ax.imshow(matrix, aspect="auto", cmap="viridis", interpolation="nearest")
    ax.set_yticks(range(len(order)), [f"{figure_text(n)} ({v:g})" for n, v in zip(order, ranked["violations"])],
                  fontsize=7)
    ax.set_xlabel("test architectures, by true MaxAccuracy (low to high)")
    ax.set_title(f"Paper split, {budget} epochs: predicted rank (violations in brackets)", fontsize=10)
    fig.colorbar(image, ax=ax, label="predicted rank")
    fig.tight_layout()
    return fig


def png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()
