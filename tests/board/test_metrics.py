"""The ranking metrics against brute-force pair counts: the paper's strict count (docs/benchmark.md)
and the headline count with tied predictions as half a violation."""
import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from naap.board import metrics


def brute_force_strict(y_true, y_pred) -> int:
    """Every pair, in true order (ties in truth keep the given order): the later one predicted strictly lower."""
    order = sorted(range(len(y_true)), key=lambda i: (y_true[i], i))
    return sum(y_pred[a] > y_pred[b] for a, b in itertools.combinations(order, 2))


def brute_force_ties_as_half(y_true, y_pred) -> float:
    """Every pair: tied in truth 0, tied in prediction 1/2, ordered the other way round 1."""
    total = 0.0
    for i, j in itertools.combinations(range(len(y_true)), 2):
        if y_true[i] == y_true[j]:
            continue
        total += 0.5 if y_pred[i] == y_pred[j] else float((y_true[i] - y_true[j]) * (y_pred[i] - y_pred[j]) < 0)
    return total


# Small integer ranges make ties in the truth and in the predictions frequent.
values = st.lists(st.integers(0, 6), min_size=0, max_size=60)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_violations_match_brute_force(data):
    y_true = data.draw(values)
    y_pred = data.draw(st.lists(st.floats(-3, 3, allow_nan=False) | st.integers(0, 4).map(float),
                                min_size=len(y_true), max_size=len(y_true)))
    assert metrics.violations_strict(y_true, y_pred) == brute_force_strict(y_true, y_pred)
    assert metrics.violations(y_true, y_pred) == brute_force_ties_as_half(y_true, y_pred)


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


def test_a_constant_prediction_scores_chance_not_perfection():
    y = np.arange(10.0)
    assert metrics.violations_strict(y, np.zeros(10)) == 0  # the paper's count calls it perfect
    assert metrics.violations(y, np.zeros(10)) == 45 / 2 and metrics.monotonicity(y, np.zeros(10)) == 0.5
    assert metrics.kendall_tau(y, np.zeros(10)) == 0.0 and metrics.spearman(y, np.zeros(10)) == 0.0
    # one swapped pair and one tied pair among neighbours
    assert metrics.violations_strict([1, 2, 3, 4], [0.5, 0.5, 0.7, 0.6]) == 1
    assert metrics.violations([1, 2, 3, 4], [0.5, 0.5, 0.7, 0.6]) == 1.5


@pytest.mark.parametrize("predictions, flagged", [
    (np.full(40, 0.7), True),
    (np.repeat([0.6, 0.65, 0.7, 0.75], 10), True),  # 4 distinct values of 40: at most 10 %
    (np.repeat([0.6, 0.65, 0.7, 0.75, 0.8], 8), False),
    (0.7 + 1e-12 * np.arange(40), True),  # distinct, but a spread of nothing
    (np.linspace(0.5, 0.8, 40), False),
])
def test_near_constant_predictions_are_flagged(predictions, flagged):
    y = np.linspace(0.55, 0.75, 40)
    assert metrics.near_constant(y, predictions) is flagged
    assert metrics.score(y, predictions)["near_constant"] is flagged


def test_score_has_every_leaderboard_metric():
    y_true, y_pred = [0.1, 0.2, 0.3, 0.4], [0.12, 0.25, 0.22, 0.41]
    score = metrics.score(y_true, y_pred)
    assert score["violations"] == score["violations_strict"] == 1 and score["max_violations"] == 6
    assert score["distinct_predictions"] == 4
    assert score["monotonicity"] == pytest.approx(5 / 6)
    assert score["mae"] == pytest.approx(np.mean([0.02, 0.05, 0.08, 0.01]))
    assert score["spearman"] == pytest.approx(stats.spearmanr(y_true, y_pred).statistic)


def test_shape_mismatch_is_rejected():
    with pytest.raises(ValueError, match="one length"):
        metrics.violations([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="one length"):
        metrics.violations_strict([1, 2, 3], [1, 2])
