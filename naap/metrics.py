"""Ranking and error metrics of SPEC section 6, on predictions of one test set.

The rows are held in true order (ascending true accuracy, ties in the order given). A violation is a
pair that the predictions order strictly the other way round, so two tied predictions are not a
violation (as if the predictions were sorted stably).
"""
from __future__ import annotations

import warnings

import numpy as np
from scipy import stats


def _in_true_order(y_true, y_pred) -> np.ndarray:
    """The predictions, rows sorted stably by the truth (tied truths keep the order given)."""
    y_true = np.asarray(y_true, dtype=float)
    y_pred = np.asarray(y_pred, dtype=float)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(f"y_true and y_pred must be 1-d of one length, got {y_true.shape} and {y_pred.shape}")
    return y_pred[np.argsort(y_true, kind="stable")]


def _sort_and_count(values: np.ndarray) -> tuple[np.ndarray, int]:
    """Merge sort that counts the pairs i < j with values[i] > values[j] (strictly): O(n log n)."""
    n = len(values)
    if n < 2:
        return values, 0
    left, left_count = _sort_and_count(values[: n // 2])
    right, right_count = _sort_and_count(values[n // 2:])
    merged = np.concatenate([left, right])
    order = np.argsort(merged, kind="stable")  # timsort: two sorted runs merge in linear time
    right_positions = np.flatnonzero(order >= len(left))
    left_not_greater = right_positions - np.arange(len(right))  # left items placed before each right item
    return merged[order], left_count + right_count + int(np.sum(len(left) - left_not_greater))


def violations(y_true, y_pred) -> int:
    """Pairs ordered one way by the truth and strictly the other way by the predictions: the
    inversions of the predictions held in true order, counted by merge sort in O(n log n)."""
    return _sort_and_count(_in_true_order(y_true, y_pred))[1]


def max_violations(n: int) -> int:
    """All pairs of n items: n (n - 1) / 2 (780 for the paper's 40 test items)."""
    return n * (n - 1) // 2


def monotonicity(y_true, y_pred) -> float:
    """1 - violations / pairs: 1 for a perfect ranking, (1 + Kendall tau) / 2 without ties."""
    return 1.0 - violations(y_true, y_pred) / max_violations(len(y_true))


def _statistic(test, y_true, y_pred) -> float:
    """A scipy rank correlation; NaN, without a warning, where the predictions are all equal."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        return float(test(y_true, y_pred).statistic)


def kendall_tau(y_true, y_pred) -> float:
    """Kendall's tau-b."""
    return _statistic(stats.kendalltau, y_true, y_pred)


def spearman(y_true, y_pred) -> float:
    """Spearman's rho."""
    return _statistic(stats.spearmanr, y_true, y_pred)


def mae(y_true, y_pred) -> float:
    return float(np.mean(np.abs(np.asarray(y_true, dtype=float) - np.asarray(y_pred, dtype=float))))


def score(y_true, y_pred) -> dict[str, float]:
    """Every metric of the leaderboard for one test set."""
    count = violations(y_true, y_pred)
    pairs = max_violations(len(y_true))
    return {"mae": mae(y_true, y_pred), "violations": count, "max_violations": pairs,
            "monotonicity": 1.0 - count / pairs, "kendall_tau": kendall_tau(y_true, y_pred),
            "spearman": spearman(y_true, y_pred)}
