"""Predictors: the paper's names, scikit-learn compatibility, reuse identities, choices made on
training rows only, plug-ins (and plug-ins that misbehave), and cheats that must score chance."""
import importlib.metadata
import re
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
from joblib.externals.loky import get_reusable_executor
from scipy import stats
from sklearn.base import clone
from sklearn.utils.estimator_checks import parametrize_with_checks

from naap import cli
from naap.bench.tables import load_proxies, load_tables
from naap import escape
from naap.board import estimators, features, predictors
from naap.board.curves import extrapolate_curves
from naap.board.protocols import sort_by_accuracy
from naap.errors import NaapError
from tests.conftest import REPO

DATA = REPO / "data" / "naap440"
PAPER_NAMES = ["1-NN", "3-NN", "5-NN", "7-NN", "9-NN", "Linear Regression", "Linear Regression (D=0.5)",
               "Linear Regression (D=0.25)", "Decision Tree", "Gradient Boosting (N=25)", "Gradient Boosting (N=50)",
               "Gradient Boosting (N=100)", "Gradient Boosting (N=200)", "AdaBoost (N=25)", "AdaBoost (N=50)",
               "AdaBoost (N=100)", "AdaBoost (N=200)", "SVR (RBF kernel)", "SVR (Polynomial kernel)",
               "SVR (Linear kernel)", "Random Forest (N=25)", "Random Forest (N=50)", "Random Forest (N=100)",
               "Random Forest (N=200)"]


@pytest.fixture(scope="module")
def split():
    """Budget-3 features of the paper split, per feature set: (X_train, y_train, X_test, y_test)."""
    frame = sort_by_accuracy(features.wide_frame(load_tables(DATA), load_proxies(DATA)[0]))
    test = frame["IsTest"].to_numpy() == 1
    y = frame["MaxAccuracy"].to_numpy()
    return {name: (X[~test], y[~test], X[test], y[test])
            for name in features.FEATURE_SETS
            for X in [features.build_features(frame, name, 3)]}


def fit_predict(predictor, data, seed):
    X_train, y_train, X_test, _ = data[predictor.features]
    np.random.seed(seed)
    return predictor.make().fit(X_train, y_train).predict(X_test)


def test_the_paper_set_is_the_24_regressors_under_the_paper_names():
    assert [p.name for p in predictors.select_predictors("paper")] == PAPER_NAMES
    names = [p.name for p in predictors.select_predictors("all")]
    assert names[:24] == PAPER_NAMES and {"XGBoost", "LightGBM", "LcSVR", "Curve extrapolation (pow3)",
                                          "GP-ARD (arch)", "GP-ARD (arch + curve)", "synflow alone",
                                          "NumMACs alone"} <= set(names)
    assert all(p.features in features.FEATURE_SETS for p in predictors.REGISTRY.values())


def test_paper_regressor_settings():
    svr = predictors.REGISTRY["SVR (Polynomial kernel)"].make()[-1]
    assert (svr.kernel, svr.epsilon, svr.C) == ("poly", 0.001, 0.1)
    knn = predictors.REGISTRY["7-NN"].make()[-1]
    assert (knn.n_neighbors, knn.algorithm) == (7, "brute")
    assert predictors.REGISTRY["Random Forest (N=100)"].make()[-1].n_estimators == 100
    target = predictors.REGISTRY["Linear Regression (D=0.25)"].make()[-1]
    y = np.array([0.5, 0.6, 0.7])
    np.testing.assert_allclose(target.func(y), y ** 4 - 1)
    np.testing.assert_allclose(target.inverse_func(target.func(y)), y)
    # Below the transform's range (a linear model extrapolating far down) the prediction is 0, not NaN.
    assert target.inverse_func(np.array([-1.5, -1.0])).tolist() == [0.0, 0.0]


@parametrize_with_checks([estimators.CurveExtrapolationRegressor(),
                          estimators.CurveExtrapolationRegressor(family="exp3")])
def test_curve_extrapolator_is_a_scikit_learn_estimator(estimator, check):
    check(estimator)


def test_one_column_regressor_ranks_by_the_column_with_the_training_rows_sign(split):
    X_train, y_train, X_test, y_test = split["arch"]
    for sign in (1, -1):
        flipped_train, flipped_test = X_train.assign(NumMACs=sign * X_train["NumMACs"]), \
            X_test.assign(NumMACs=sign * X_test["NumMACs"])
        predicted = estimators.OneColumnRegressor("NumMACs").fit(flipped_train, y_train).predict(flipped_test)
        assert stats.kendalltau(predicted, X_test["NumMACs"]).statistic == pytest.approx(1.0)
    with pytest.raises(ValueError, match="'nope' is not among the features"):
        estimators.OneColumnRegressor("nope").fit(X_train, y_train)


def test_the_linear_curve_gp_reads_the_encoding_by_rbf_and_the_curve_summary_linearly(split):
    X_train, y_train, _, _ = split["arch-curve"]
    model = predictors.REGISTRY["GP-ARD (arch) + linear (curve)"].make().fit(X_train, y_train)
    names = np.array(X_train.columns)
    assert list(names[model.linear_columns_]) == list(features.CURVE_SUMMARY)
    varying = [name for name in split["arch"][0].columns if X_train[name].nunique() > 1]
    assert list(names[model.rbf_columns_]) == varying


@pytest.mark.parametrize("name", list(predictors.REGISTRY))
def test_every_predictor_clones_fits_and_predicts(split, name):
    predictor = predictors.REGISTRY[name]
    estimator = predictor.make()
    assert clone(estimator).get_params().keys() == estimator.get_params().keys()
    prediction = fit_predict(predictor, split, 1)
    assert prediction.shape == (40,) and np.isfinite(prediction).all()


@pytest.mark.parametrize("name", [p.name for p in predictors.REGISTRY.values() if p.deterministic])
def test_deterministic_predictors_do_not_depend_on_the_seed(split, name):
    predictor = predictors.REGISTRY[name]
    np.testing.assert_array_equal(fit_predict(predictor, split, 20220905), fit_predict(predictor, split, 7))


@pytest.mark.parametrize("ensemble", ["Random Forest", "Gradient Boosting", "AdaBoost"])
def test_the_first_members_of_a_large_ensemble_are_the_smaller_ensembles(split, ensemble):
    """Reuse identity: the first n members of one fit == a separate fit of n members, bit for bit."""
    members = [p for p in predictors.REGISTRY.values() if p.ensemble == ensemble]
    largest = members[-1]
    X_train, y_train, X_test, _ = split["paper"]
    np.random.seed(20220906)
    model = largest.make().fit(X_train, y_train)
    staged = predictors.predict_members(model, X_test, [p.members for p in members])
    for p in members:
        np.testing.assert_array_equal(staged[p.members], fit_predict(p, split, 20220906), err_msg=p.name)
    assert not np.array_equal(staged[members[0].members], staged[largest.members])


def test_curve_extrapolation_recovers_a_power_law():
    t = np.arange(1, 10)
    curves = np.stack([0.8 - 0.3 * t ** -0.5, 0.6 - 0.1 * t ** -1.5])
    extrapolated, asymptote, amplitude, seen = extrapolate_curves(curves, horizon=90).T
    np.testing.assert_allclose(extrapolated, [0.8 - 0.3 * 90 ** -0.5, 0.6 - 0.1 * 90 ** -1.5], atol=2e-3)
    np.testing.assert_allclose(asymptote, [0.8, 0.6], atol=2e-3)
    np.testing.assert_array_equal(seen, curves[:, -1])
    short = extrapolate_curves(curves[:, :2], horizon=90)
    np.testing.assert_array_equal(short[:, 0], curves[:, 1])  # two epochs: the best seen


PLUGIN = textwrap.dedent('''
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from naap.board.predictors import Predictor


    def ridge():
        return make_pipeline(StandardScaler(), Ridge(alpha=1.0))


    def named():
        return Predictor("Ridge on curves", "Ridge", ridge, features="curve", deterministic=True)


    def not_an_estimator():
        return 42


    def raises():
        raise RuntimeError("no model today")


    def exits():
        raise SystemExit(3)
''')


@pytest.fixture
def plugin_module(tmp_path, monkeypatch):
    # Worker processes that earlier tests left running cannot import modules from this tmp_path;
    # a command-line run starts its workers after the plug-in is found, so start them afresh here.
    get_reusable_executor().shutdown(wait=True)
    (tmp_path / "my_predictors.py").write_text(PLUGIN)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield "my_predictors"
    sys.modules.pop("my_predictors", None)


def test_plugin_predictor_reaches_the_results_table(plugin_module, tmp_path):
    out = tmp_path / "lb"
    code = cli.main(["leaderboard", str(DATA), "--out", str(out), "--protocol", "paper", "--budgets", "0,3",
                     "--predictor-set", "none", "--predictor", "my_predictors:ridge", "--predictor",
                     "my_predictors:named", "--predictor", "1-NN", "--jobs", "2", "--quiet"])
    assert code == 0
    results = pd.read_parquet(out / "results.parquet")
    assert set(results["predictor"]) == {"my_predictors:ridge", "Ridge on curves", "1-NN"}
    rows = results[results["predictor"] == "my_predictors:ridge"]
    assert (rows["family"] == "plug-in").all() and len(rows) == 2 * 5  # two budgets, five seeds
    assert set(results.loc[results["predictor"] == "Ridge on curves", "features"]) == {"curve"}
    assert "my_predictors:ridge" in (out / "README.md").read_text()


def test_installed_entry_point_joins_the_all_set(plugin_module, monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(tmp_path))  # as if installed
    point = importlib.metadata.EntryPoint("Ridge (entry point)", "my_predictors:ridge", predictors.ENTRY_POINT_GROUP)
    monkeypatch.setattr(predictors, "entry_points",
                        lambda group: [point] if group == predictors.ENTRY_POINT_GROUP else [])
    chosen = predictors.select_predictors("all")
    assert chosen[-1].name == "Ridge (entry point)" and chosen[-1].family == "plug-in"
    assert "Ridge (entry point)" not in [p.name for p in predictors.select_predictors("paper")]


@pytest.mark.parametrize("spec, message", [
    ("Random Forest (N=300)", "unknown predictor 'Random Forest (N=300)'"),
    ("no_such_module:factory", "cannot import module 'no_such_module'"),
    ("my_predictors:missing", "module 'my_predictors' has no callable 'missing'"),
    ("my_predictors:not_an_estimator", "the factory returned int, not an estimator"),
    (":ridge", "expected a predictor name or package.module:factory"),
    ("my_predictors:raises", "predictor 'my_predictors:raises': the factory raised RuntimeError: no model today"),
    ("my_predictors:exits", "predictor 'my_predictors:exits': the factory raised SystemExit: 3"),
    ("raises_at_import:factory", "--predictor 'raises_at_import:factory': importing module 'raises_at_import' "
                                 "raised ValueError: broken plug-in"),
    ("exits_at_import:factory", "--predictor 'exits_at_import:factory': importing module 'exits_at_import' "
                                "raised SystemExit: 4"),
])
def test_bad_predictor_is_one_clear_line(plugin_module, capsys, tmp_path, spec, message):
    (tmp_path / "raises_at_import.py").write_text("raise ValueError('broken plug-in')\n")
    (tmp_path / "exits_at_import.py").write_text("import sys\nsys.exit(4)\n")
    code = cli.main(["leaderboard", str(DATA), "--out", str(tmp_path / "lb"), "--predictor-set", "none",
                     "--predictor", spec])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "lb").exists()
    for name in ("raises_at_import", "exits_at_import"):
        sys.modules.pop(name, None)


def test_an_entry_point_that_fails_to_load_is_one_clear_line(plugin_module, monkeypatch, tmp_path):
    (tmp_path / "raises_at_import.py").write_text("raise ValueError('broken plug-in')\n")
    monkeypatch.syspath_prepend(str(tmp_path))  # as if installed
    point = importlib.metadata.EntryPoint("Broken", "raises_at_import:factory", predictors.ENTRY_POINT_GROUP)
    monkeypatch.setattr(predictors, "entry_points",
                        lambda group: [point] if group == predictors.ENTRY_POINT_GROUP else [])
    with pytest.raises(NaapError, match=r"predictor 'Broken' \(entry point raises_at_import:factory\): loading it "
                                        "raised ValueError: broken plug-in"):
        predictors.select_predictors("all")
    sys.modules.pop("raises_at_import", None)


def test_selecting_nothing_or_twice_is_an_error():
    with pytest.raises(NaapError, match="no predictor selected"):
        predictors.select_predictors("none")
    with pytest.raises(NaapError, match="'1-NN' is selected twice"):
        predictors.select_predictors("paper", ["1-NN"])
    with pytest.raises(NaapError, match="unknown predictor set 'best'"):
        predictors.select_predictors("best")


def test_a_predictor_that_predicts_nan_is_one_clear_line(plugin_module, capsys, tmp_path):
    (tmp_path / "nan_predictor.py").write_text(textwrap.dedent('''
        import numpy as np
        from sklearn.dummy import DummyRegressor


        class NaNRegressor(DummyRegressor):
            def predict(self, X):
                return np.full(len(X), np.nan)


        def factory():
            return NaNRegressor()
    '''))
    code = cli.main(["leaderboard", str(DATA), "--out", str(tmp_path / "lb"), "--protocol", "paper", "--budgets", "0",
                     "--predictor-set", "none", "--predictor", "nan_predictor:factory", "--jobs", "1", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "predictor 'nan_predictor:factory' predicted a non-finite value" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "lb").exists()
    sys.modules.pop("nan_predictor", None)


def test_a_predictor_that_raises_is_one_clear_line(plugin_module, capsys, tmp_path):
    (tmp_path / "failing_predictor.py").write_text(textwrap.dedent('''
        from sklearn.dummy import DummyRegressor


        class Failing(DummyRegressor):
            def fit(self, X, y):
                raise RuntimeError("out of ideas")


        def factory():
            return Failing()
    '''))
    code = cli.main(["leaderboard", str(DATA), "--out", str(tmp_path / "lb"), "--protocol", "paper", "--budgets", "0",
                     "--predictor-set", "none", "--predictor", "failing_predictor:factory", "--jobs", "1",
                     "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and not (tmp_path / "lb").exists()
    assert "predictor 'failing_predictor:factory' failed (paper protocol, budget 0, seed" in err
    assert "RuntimeError: out of ideas" in err
    sys.modules.pop("failing_predictor", None)


CHEATS = textwrap.dedent('''
    import numpy as np
    from sklearn.base import BaseEstimator, RegressorMixin
    from sklearn.dummy import DummyRegressor


    class IndexEcho(RegressorMixin, BaseEstimator):
        """Predicts the row labels it is handed (the answer, where rows come in true order)."""
        def fit(self, X, y):
            return self

        def predict(self, X):
            return np.asarray(X.index, dtype=float)


    class PositionEcho(IndexEcho):
        """Predicts each row's position."""
        def predict(self, X):
            return np.arange(len(X), dtype=float)


    def index_echo():
        return IndexEcho()


    def position_echo():
        return PositionEcho()


    def constant():
        return DummyRegressor()
''')


def test_cheats_score_chance_and_never_win_a_column(plugin_module, tmp_path):
    """End to end through the leaderboard: a predictor that echoes the row labels, one that echoes
    the row positions and a constant one score chance on cv (tau about 0, about half the pairs
    violated), and none of them is in bold anywhere; the constant one is flagged."""
    (tmp_path / "cheats.py").write_text(CHEATS)
    out = tmp_path / "lb"
    cheats = ["cheats:index_echo", "cheats:position_echo", "cheats:constant"]
    argv = ["leaderboard", str(DATA), "--out", str(out), "--protocol", "paper,cv", "--budgets", "0",
            "--predictor-set", "none", "--predictor", "1-NN", "--jobs", "2", "--quiet"]
    assert cli.main(argv + [arg for spec in cheats for arg in ("--predictor", spec)]) == 0
    summary = pd.read_parquet(out / "summary.parquet").set_index(["protocol", "predictor"])
    for spec in cheats:
        row = summary.loc[("cv", spec)]
        assert abs(row["kendall_tau"]) < 0.05 and row["kendall_tau_low"] <= 0 <= row["kendall_tau_high"], spec
        assert abs(row["violations"] - 390) < 25, spec
    assert summary.loc[("cv", "cheats:constant"), "violations"] == 390  # every pair tied: half of 780
    assert summary.loc[("cv", "cheats:constant"), "near_constant"]
    assert summary.loc[("cv", "1-NN"), "kendall_tau"] > 0.8
    readme = (out / "README.md").read_text()
    for spec in cheats:  # in Markdown, cheats:index_echo is cheats:index\_echo
        rows = [line for line in readme.splitlines() if line.startswith(f"| {escape.markdown(spec)} |")]
        assert rows and not any("**" in line for line in rows), spec
    assert re.search(r"\| cheats:constant \|.*near-constant predictions \|", readme)
    page = (out / "index.html").read_text()
    for spec in cheats:
        for row in re.findall(rf"<tr[^>]*><td[^>]*>{re.escape(spec)}</td>.*?</tr>", page):
            assert 'class="best"' not in row, spec
    sys.modules.pop("cheats", None)


def test_the_readme_counts_the_registered_predictors():
    readme = (REPO / "README.md").read_text()
    stated = re.search(r"ranks (\d+) predictors", readme)
    assert stated and int(stated.group(1)) == len(predictors.REGISTRY)
