"""The paper protocol reproduces the paper's (docs/benchmark.md); the cv and extrapolation protocols' splits and
intervals; reuse changes nothing; what a predictor is handed carries no answer; small data."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.linear_model import LinearRegression
from sklearn.neighbors import KNeighborsRegressor
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVR
from threadpoolctl import threadpool_limits

from naap.bench.tables import load_tables
from naap.board import estimators, features, predictors, protocols
from naap.board.summary import by_tau, summarise
from naap.errors import NaapError
from tests.conftest import REPO

DATA = REPO / "data" / "naap440"


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return features.wide_frame(load_tables(DATA))


def chosen(*names):
    return [predictors.REGISTRY[name] for name in names]


def reported(results, name, budget):
    summary = summarise(results)
    return summary[(summary["predictor"] == name) & (summary["budget"] == budget)].iloc[0]


# --- the deterministic regressors, computed independently from the published CSV ------------------

def plain_sklearn(csv, model, budget, power=None):
    """The paper's protocol written out with plain pandas and scikit-learn; its violations counted pair by pair."""
    data = csv.sort_values("MaxAccuracy", kind="stable")
    data[["NumParams", "NumMACs"]] = np.log(data[["NumParams", "NumMACs"]])
    columns = ["NumParams", "NumStages"] if budget == 0 else (
        ["NumParams", "NumMACs", "NumLayers", "NumStages", "FirstLayerWidth", "LastLayerWidth"]
        + [f"e{i}{kind}" for i in range(1, budget + 1) for kind in ("LossMean", "LossMedian", "Accuracy")])
    train, test = data[data["IsTest"] == 0], data[data["IsTest"] == 1]
    scaler = StandardScaler().fit(train[columns])
    y = train["MaxAccuracy"] if power is None else train["MaxAccuracy"] ** (1 / power) - 1
    with threadpool_limits(1):  # k-NN on two features has exact distance ties that rounding breaks
        predicted = model.fit(scaler.transform(train[columns]), y).predict(scaler.transform(test[columns]))
    predicted = predicted if power is None else (predicted + 1) ** power
    violations = sum(predicted[i] > predicted[j] for i in range(40) for j in range(i + 1, 40))
    return violations, np.mean(np.abs(predicted - test["MaxAccuracy"].to_numpy()))


PLAIN = {"1-NN": lambda: KNeighborsRegressor(1, algorithm="brute"),
         "5-NN": lambda: KNeighborsRegressor(5, algorithm="brute"),
         "9-NN": lambda: KNeighborsRegressor(9, algorithm="brute"),
         "Linear Regression": LinearRegression,
         "Linear Regression (D=0.5)": LinearRegression,
         "Linear Regression (D=0.25)": LinearRegression,
         "SVR (RBF kernel)": lambda: SVR(kernel="rbf", epsilon=0.001, C=0.1),
         "SVR (Linear kernel)": lambda: SVR(kernel="linear", epsilon=0.001, C=0.1)}
POWER = {"Linear Regression (D=0.5)": 0.5, "Linear Regression (D=0.25)": 0.25}


def test_deterministic_regressors_match_plain_scikit_learn(frame, release_dir):
    csv = pd.read_csv(release_dir / "naap440.csv")
    results = protocols.run_protocols(frame, chosen(*PLAIN), [0, 3, 9], ["paper"], jobs=1, progress=False).results
    for name, make in PLAIN.items():
        for budget in (0, 3, 9):
            violations, mae = plain_sklearn(csv, make(), budget, POWER.get(name))
            rows = results[(results["predictor"] == name) & (results["budget"] == budget)]
            assert len(rows) == 5 and (rows["violations_strict"] == violations).all(), (name, budget)
            np.testing.assert_allclose(rows["mae"], mae, rtol=1e-12, err_msg=f"{name} {budget}")


# --- the published numbers ----------------------------------------------------------------------

def paper_run(frame, family, budget):
    names = [f"{family} (N={n})" for n in (25, 50, 100, 200)]
    return protocols.run_protocols(frame, chosen(*names), [budget], ["paper"], jobs=2, progress=False).results


def test_gradient_boosting_100_at_0_epochs_is_the_published_42_violations(frame):
    """The published 42 counts none of its 11 tied pairs; with ties as half it is 47.5 (issue 10)."""
    results = paper_run(frame, "Gradient Boosting", 0)
    rows = results[results["predictor"] == "Gradient Boosting (N=100)"]
    assert sorted(rows["seed"]) == list(protocols.PAPER_SEEDS)
    row = reported(results, "Gradient Boosting (N=100)", 0)
    assert (row["violations_strict"], row["violations"]) == (42, 47.5)


def test_random_forest_200_at_9_epochs_comes_close_to_the_published_numbers(frame):
    """Published: MAE 0.004, monotonicity 0.968, 25 violations. Forests are randomised and scikit-learn's
    random streams have changed since the paper, so the median seed's numbers come close, not exactly."""
    results = paper_run(frame, "Random Forest", 9)
    best = reported(results, "Random Forest (N=200)", 9)
    assert abs(best["violations"] - 25) <= 3
    first_seed = results[(results["predictor"] == "Random Forest (N=200)") & (results["seed"] == 20220905)]
    assert first_seed["violations_strict"].tolist() == [25]  # the published number, with the first seed
    assert round(best["mae"], 3) == 0.004
    assert abs(best["monotonicity"] - 0.968) <= 0.004


def test_reuse_and_parallelism_give_the_numbers_of_separate_plain_fits(frame):
    names = ["Random Forest (N=25)", "Random Forest (N=50)", "Gradient Boosting (N=25)", "Gradient Boosting (N=50)",
             "AdaBoost (N=25)", "AdaBoost (N=50)", "Decision Tree", "3-NN"]
    run = dict(predictors=chosen(*names), budgets=[3], protocols=["paper"], progress=False)
    fast, fast_predictions, *_ = protocols.run_protocols(frame, jobs=2, **run)
    plain, plain_predictions, *_ = protocols.run_protocols(frame, jobs=1, share_fits=False, **run)
    keys = ["protocol", "predictor", "budget", "seed", "fold"]
    pd.testing.assert_frame_equal(fast.drop(columns="fit_seconds"), plain.drop(columns="fit_seconds"))
    pd.testing.assert_frame_equal(fast_predictions, plain_predictions)
    assert len(fast) == len(names) * 5 and not fast.duplicated(keys).any()


# --- summaries ------------------------------------------------------------------------------------

def fake_results(protocol, violations, taus=None, predictor="A"):
    n = len(violations)
    return pd.DataFrame({"protocol": protocol, "predictor": predictor, "family": "f", "features": "paper",
                         "budget": 9, "seed": np.arange(20220905, 20220905 + n),
                         "fold": None if protocol == "paper" else np.arange(n), "mae": np.arange(n) / 100,
                         "violations": violations, "violations_strict": violations, "max_violations": 780,
                         "monotonicity": 1 - np.asarray(violations) / 780, "near_constant": False,
                         "kendall_tau": taus if taus is not None else 0.9, "spearman": 0.95,
                         "train_items": 400, "test_items": 40, "fit_seconds": 0.1})


def test_paper_reports_the_seed_with_the_median_violations():
    row = summarise(fake_results("paper", [30, 26, 28, 25, 29])).iloc[0]
    assert (row["seed"], row["violations"], row["mae"], row["runs"]) == (20220907, 28, 0.02, 5)
    tied = summarise(fake_results("paper", [27, 27, 30, 27, 20])).iloc[0]
    assert tied["seed"] == 20220906  # sorted by violations then seed: 20, 27 (…05), 27 (…06), ...


def test_cv_interval_and_paired_test():
    taus = np.linspace(0.85, 0.95, 11)
    a = fake_results("cv", [30] * 11, taus, "A")
    b = fake_results("cv", [30] * 11, taus - 0.05, "B")
    noise = 0.002 * np.where(np.arange(11) % 2 == 0, 1, -1) + 0.0001  # mean 0.00028 below the best, sd 0.002
    c = fake_results("cv", [30] * 11, taus - noise, "C")
    summary = summarise(pd.concat([a, b, c], ignore_index=True)).set_index("predictor")
    assert summary.loc["A", "kendall_tau"] == pytest.approx(0.9)
    assert summary.loc["A", "kendall_tau_low"] < 0.9 < summary.loc["A", "kendall_tau_high"]
    assert summary.loc["A", "violations_low"] == summary.loc["A", "violations_high"] == 30
    assert np.isnan(summary.loc["A", "p_vs_best"])
    assert summary.loc["B", "p_vs_best"] < 1e-6  # always 0.05 below the best
    assert summary.loc["C", "p_vs_best"] > 0.05  # noise around the best


def test_cv_folds_are_forty_items_one_per_accuracy_bin(frame):
    y = frame["MaxAccuracy"].to_numpy()
    splits = protocols.cv_splits(y, repeats=2)
    assert len(splits) == 22
    rank = np.argsort(np.argsort(y, kind="stable"), kind="stable")
    for repeat in range(2):
        tests = [test for _, test in splits[11 * repeat: 11 * (repeat + 1)]]
        assert sorted(np.concatenate(tests)) == list(range(440))
        for test in tests:
            assert len(test) == 40 and len(np.unique(rank[test] // 11)) == 40
    assert not np.array_equal(splits[0][1], splits[11][1])


def test_budget_beyond_the_data_is_rejected_before_any_fit(frame):
    with pytest.raises(NaapError, match="budget of 90 epochs"):
        protocols.run_protocols(frame, chosen("1-NN"), [0, 90], progress=False)


def test_paper_protocol_without_a_split_is_rejected(frame):
    with pytest.raises(NaapError, match="needs a split"):
        protocols.run_protocols(frame.assign(IsTest=0), chosen("1-NN"), [0], ["paper"], progress=False)


def test_intervals_stay_within_what_the_metric_can_be():
    """Two folds of near-perfect rankings: the t-interval of tau would pass 1; it is cut there."""
    rows = [{"protocol": "cv", "predictor": "A", "family": "A", "features": "paper", "budget": 3, "seed": s,
             "fold": f, "mae": 0.01, "violations": v, "violations_strict": v, "max_violations": 66,
             "monotonicity": 1 - v / 66, "near_constant": False,
             "kendall_tau": 1 - 2 * v / 66, "spearman": 1 - v / 66, "train_items": 12, "test_items": 12,
             "fit_seconds": 0.0} for f, (s, v) in enumerate([(1, 0), (2, 3)])]
    summary = summarise(pd.DataFrame(rows)).set_index("predictor")
    assert summary.loc["A", "kendall_tau_high"] == 1.0 and summary.loc["A", "monotonicity_high"] == 1.0
    assert summary.loc["A", "violations_low"] == 0.0 and summary.loc["A", "kendall_tau_low"] < 0.9


# --- what a predictor is handed --------------------------------------------------------------------

def test_predictions_are_mapped_back_to_their_architectures(frame):
    """Test rows are handed over shuffled: a model predicting exactly log NumMACs (a linear fit of
    the target on it, positive slope) must come back with each prediction on its own architecture."""
    outcome = protocols.run_protocols(frame, chosen("NumMACs alone"), [0], ["paper", "cv"], repeats=1, jobs=1,
                                      progress=False)
    macs = frame.set_index("ModelId")["NumMACs"]
    for _, rows in outcome.predictions.groupby(["protocol", "seed"]):
        expected = stats.rankdata(np.log(macs.loc[rows["arch_id"]]))
        np.testing.assert_array_equal(stats.rankdata(rows["predicted"]), expected)


# --- reuse ------------------------------------------------------------------------------------------

def test_budget_free_and_copied_fits_give_the_numbers_of_separate_fits(frame):
    """A budget-free feature set is fitted once for all budgets; a predictor with the same factory
    reading the same matrix (curve and accuracy at budget 0) is copied, not refitted."""
    same = estimators.linear_regression
    pair = [predictors.Predictor("LR (curve)", "Linear Regression", same, features="curve", deterministic=True),
            predictors.Predictor("LR (accuracy)", "Linear Regression", same, features="accuracy", deterministic=True)]
    chosen_ = chosen("NumMACs alone", "XGBoost (arch)") + pair
    assert protocols.copies_of(chosen_, [0, 3]) == {("LR (accuracy)", 0): ("LR (curve)", 0)}
    run = dict(predictors=chosen_, budgets=[0, 3], protocols=["paper", "cv"], repeats=1, progress=False)
    fast, fast_predictions, *_ = protocols.run_protocols(frame, jobs=2, **run)
    plain, plain_predictions, *_ = protocols.run_protocols(frame, jobs=1, share_fits=False, **run)
    pd.testing.assert_frame_equal(fast.drop(columns="fit_seconds"), plain.drop(columns="fit_seconds"))
    pd.testing.assert_frame_equal(fast_predictions, plain_predictions)
    assert set(fast["family"][fast["predictor"] == "LR (accuracy)"]) == {"Linear Regression"}


# --- the extrapolation protocols --------------------------------------------------------------------

@pytest.mark.parametrize("protocol, column", [("extrapolation-size", "NumMACs"),
                                              ("extrapolation-accuracy", "MaxAccuracy")])
def test_extrapolation_tests_on_the_top_tenth(frame, protocol, column):
    ordered = protocols.sort_by_accuracy(frame)
    train, test = protocols.split_rows(ordered, protocol)
    top = ordered.sort_values([column, "ModelId"]).tail(44)
    assert sorted(ordered.loc[test, "ModelId"]) == sorted(top["ModelId"])
    assert len(train) == 396 and not set(train) & set(test)
    assert ordered.loc[train, column].max() <= ordered.loc[test, column].min()


def test_extrapolation_results_are_reported_like_the_paper_protocol(frame):
    outcome = protocols.run_protocols(frame, chosen("Linear Regression", "Random Forest (N=25)"), [0, 3],
                                      list(protocols.EXTRAPOLATION), jobs=2, progress=False)
    summary = summarise(outcome.results)
    assert set(summary["protocol"]) == set(protocols.EXTRAPOLATION)
    assert (summary["runs"] == 5).all() and (outcome.results["test_items"] == 44).all()


# --- small and broken data ----------------------------------------------------------------------------

def test_a_predictor_that_cannot_fit_a_small_fold_is_skipped_there(frame):
    small = frame.head(12)
    outcome = protocols.run_protocols(small, chosen("1-NN", "7-NN"), [0], ["cv"], repeats=1, jobs=1, progress=False)
    assert set(outcome.results["predictor"]) == {"1-NN"}
    assert outcome.skipped.to_dict("records") == [
        {"protocol": "cv", "predictor": "7-NN", "budget": 0, "reason": "needs at least 7 training rows, has 6"}]
    assert outcome.notices == ["Cross-validation on 12 architectures: test folds of 6 items; "
                               "at this size the intervals mean nothing."]


def test_a_nan_target_is_one_clear_line_before_any_fit(frame):
    broken = frame.copy()
    broken.loc[broken["ModelId"] == 6, "MaxAccuracy"] = np.nan
    with pytest.raises(NaapError, match="data/x: architectures.parquet: max_accuracy .* ModelId 6 has no finite"):
        protocols.run_protocols(broken, chosen("1-NN"), [0], ["cv"], progress=False, source="data/x")


def test_of_equal_taus_the_best_is_the_one_that_reads_no_epoch():
    """GP-ARD (arch + curve) at budget 0 is GP-ARD (arch) itself: the one that reads no epoch is named best."""
    taus = np.linspace(0.85, 0.95, 11)
    a = fake_results("cv", [30] * 11, taus, "A (arch + curve)").assign(features="arch-curve")
    b = fake_results("cv", [30] * 11, taus, "B (arch)").assign(features="arch")
    summary = summarise(pd.concat([a, b], ignore_index=True)).set_index("predictor")
    assert np.isnan(summary.loc["B (arch)", "p_vs_best"]) and summary.loc["A (arch + curve)", "p_vs_best"] == 1.0
    assert by_tau(summary.reset_index())["predictor"].tolist() == ["B (arch)", "A (arch + curve)"]
