"""Ranking and error metrics on the predictions of one test set.

Violations, the headline count: pairs of test architectures that the predictions order the wrong
way round, a pair the predictions tie counting as half (a tie is a coin toss between the two
orders). Pairs whose true accuracies tie count nothing (neither order is wrong). A constant
predictor thus scores pairs / 2, chance, not 0.

`violations_strict` is the paper's count (docs/benchmark.md, Evaluation protocol): the rows held
in true order (ties in truth in the order given), pairs that the predictions order strictly the
other way round; tied predictions are not counted, as if the predictions were sorted stably.

Kendall's tau-b and Spearman's rho are undefined (0 / 0) where the predictions, or the truths,
are all equal; they are taken as 0 there, no association, so a constant predictor scores chance.
"""
from __future__ import annotations

import warnings

import numpy as np
from scipy import stats

NEAR_CONSTANT_FRACTION = 0.1  # at most this fraction of the test items as distinct predictions
NEAR_CONSTANT_SPREAD = 1e-6  # or a standard deviation below this fraction of the truth's


def _arrays(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true, dtype=float)
    y_pred = np.asarray(y_pred, dtype=float)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(f"y_true and y_pred must be 1-d of one length, got {y_true.shape} and {y_pred.shape}")
    return y_true, y_pred


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


def _tied_pairs(*columns: np.ndarray) -> int:
    """Pairs equal in every one of `columns`."""
    _, counts = np.unique(np.column_stack(columns), axis=0, return_counts=True)
    return int(np.sum(counts * (counts - 1) // 2))


def violations_strict(y_true, y_pred) -> int:
    """The paper's count: the inversions of the predictions held in true order (stable), by merge sort."""
    y_true, y_pred = _arrays(y_true, y_pred)
    return _sort_and_count(y_pred[np.argsort(y_true, kind="stable")])[1]


def violations(y_true, y_pred) -> float:
    """Discordant pairs + half the pairs tied in the predictions only (pairs tied in truth: 0)."""
    y_true, y_pred = _arrays(y_true, y_pred)
    if len(y_true) < 2:
        return 0.0
    # Sorted by truth, then prediction: truth-tied pairs are in prediction order and never inverted.
    discordant = _sort_and_count(y_pred[np.lexsort((y_pred, y_true))])[1]
    return discordant + 0.5 * (_tied_pairs(y_pred) - _tied_pairs(y_true, y_pred))


def max_violations(n: int) -> int:
    """All pairs of n items: n (n - 1) / 2 (780 for the paper's 40 test items)."""
    return n * (n - 1) // 2


def monotonicity(y_true, y_pred) -> float:
    """1 - violations / pairs: 1 for a perfect ranking, (1 + Kendall tau) / 2 without ties."""
    return 1.0 - violations(y_true, y_pred) / max_violations(len(y_true))


def _statistic(test, y_true, y_pred) -> float:
    """A scipy rank correlation; 0 where either side is constant (0 / 0, see the module docstring)."""
    y_true, y_pred = _arrays(y_true, y_pred)
    if len(y_true) < 2 or np.ptp(y_true) == 0 or np.ptp(y_pred) == 0:
        return 0.0
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


def near_constant(y_true, y_pred) -> bool:
    """Predictions that (nearly) do not vary: at most NEAR_CONSTANT_FRACTION of the test items as
    distinct values (one value always counts), or a spread below NEAR_CONSTANT_SPREAD of the truth's."""
    y_true, y_pred = _arrays(y_true, y_pred)
    distinct = len(np.unique(y_pred))
    return bool(distinct <= max(1, int(NEAR_CONSTANT_FRACTION * len(y_pred)))
                or np.std(y_pred) <= NEAR_CONSTANT_SPREAD * np.std(y_true))


def score(y_true, y_pred) -> dict:
    """Every metric of the leaderboard for one test set."""
    count = violations(y_true, y_pred)
    pairs = max_violations(len(y_true))
    return {"mae": mae(y_true, y_pred), "violations": count, "violations_strict": violations_strict(y_true, y_pred),
            "max_violations": pairs, "monotonicity": 1.0 - count / pairs if pairs else 1.0,
            "kendall_tau": kendall_tau(y_true, y_pred), "spearman": spearman(y_true, y_pred),
            "distinct_predictions": len(np.unique(np.asarray(y_pred, dtype=float))),
            "near_constant": near_constant(y_true, y_pred)}
