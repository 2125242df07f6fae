"""The ranking metrics against a brute-force pair count (SPEC section 6, ties included)."""
import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from naap import metrics


def brute_force_violations(y_true, y_pred) -> int:
    """Every pair, in true order (ties in truth keep the given order): the later one predicted strictly lower."""
    order = sorted(range(len(y_true)), key=lambda i: (y_true[i], i))
    return sum(y_pred[a] > y_pred[b] for a, b in itertools.combinations(order, 2))


# Small integer ranges make ties in the truth and in the predictions frequent.
values = st.lists(st.integers(0, 6), min_size=0, max_size=60)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_violations_match_brute_force(data):
    y_true = data.draw(values)
    y_pred = data.draw(st.lists(st.floats(-3, 3, allow_nan=False) | st.integers(0, 4).map(float),
                                min_size=len(y_true), max_size=len(y_true)))
    assert metrics.violations(y_true, y_pred) == brute_force_violations(y_true, y_pred)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(0, 1, allow_nan=False), min_size=2, max_size=50, unique=True), st.randoms())
def test_monotonicity_is_half_one_plus_tau_without_ties(y_true, rng):
    y_pred = list(y_true)
    rng.shuffle(y_pred)
    tau = stats.kendalltau(y_true, y_pred).statistic
    assert metrics.monotonicity(y_true, y_pred) == pytest.approx((1 + tau) / 2)
    assert metrics.kendall_tau(y_true, y_pred) == pytest.approx(tau)


def test_forty_items_have_780_pairs_and_extremes():
    y = np.arange(40) / 40
    assert metrics.max_violations(40) == 780
    assert metrics.violations(y, y) == 0 and metrics.monotonicity(y, y) == 1.0
    assert metrics.violations(y, -y) == 780 and metrics.monotonicity(y, -y) == 0.0


def test_tied_predictions_are_not_violations():
    y = np.arange(10.0)
    assert metrics.violations(y, np.zeros(10)) == 0
    assert np.isnan(metrics.kendall_tau(y, np.zeros(10)))
    # one swapped pair among tied neighbours
    assert metrics.violations([1, 2, 3, 4], [0.5, 0.5, 0.7, 0.6]) == 1


def test_score_has_every_leaderboard_metric():
    y_true, y_pred = [0.1, 0.2, 0.3, 0.4], [0.12, 0.25, 0.22, 0.41]
    score = metrics.score(y_true, y_pred)
    assert score["violations"] == 1 and score["max_violations"] == 6
    assert score["monotonicity"] == pytest.approx(5 / 6)
    assert score["mae"] == pytest.approx(np.mean([0.02, 0.05, 0.08, 0.01]))
    assert score["spearman"] == pytest.approx(stats.spearmanr(y_true, y_pred).statistic)


def test_shape_mismatch_is_rejected():
    with pytest.raises(ValueError, match="one length"):
        metrics.violations([1, 2, 3], [1, 2])
