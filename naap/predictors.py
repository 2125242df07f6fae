"""The predictors of the leaderboard: scikit-learn-compatible regressors from features to MaxAccuracy.

`REGISTRY` holds the paper's 24 regressors (docs/benchmark.md) under the paper's names, XGBoost, LightGBM, an
LcSVR-style model (Baker et al. 2017: curve, differences, nu-SVR), a parametric learning-curve
extrapolator, models of the architecture encoding (a Gaussian process with ARD, gradient
boosting, XGBoost with a regression and a pairwise ranking objective), and each zero-cost proxy
and NumMACs / NumParams alone. The paper's regressors standardise their features (mean and std
fitted on the training rows, as the paper does) and take their randomness from NumPy's
global state, which the protocols seed before each fit.

Every choice a predictor makes from data (the GP's hyperparameters, the variances of its linear
term included; a proxy's sign; the ranker's calibration) is made on its training rows only; every
other setting is fixed here, in advance.

Users add predictors without editing the package: `--predictor package.module:factory`, or an
entry point in the group `naap.predictors` (name = predictor name, value = `package.module:factory`).
A factory takes no argument and returns an estimator or a `Predictor`.
"""
from __future__ import annotations

import copy
import importlib
import os
import sys
from dataclasses import dataclass
from functools import partial
from importlib.metadata import entry_points
from typing import Callable

import numpy as np
from scipy import stats
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.compose import TransformedTargetRegressor
from sklearn.ensemble import AdaBoostRegressor, GradientBoostingRegressor, RandomForestRegressor
from sklearn.linear_model import LinearRegression
from sklearn.neighbors import KNeighborsRegressor
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVR, NuSVR
from sklearn.tree import DecisionTreeRegressor
from sklearn.utils.validation import check_is_fitted, validate_data

from naap.errors import NaapError
from naap.features import CURVE_SUMMARY, LOG_PROXIES, PROXIES, accuracy_columns
from naap.gp import ArdGaussianProcess

ENTRY_POINT_GROUP = "naap.predictors"


@dataclass(frozen=True)
class Predictor:
    """A named recipe for an estimator.

    features: the feature set it reads (naap.features.FEATURE_SETS).
    deterministic: its predictions do not depend on the seed, so one fit serves all seeds.
    ensemble, members: predictors with the same `ensemble` key are the first `members` members of
    one ensemble fitted under the same seed; the protocols fit the largest and read the others off it.
    min_train_rows: fewer training rows than this and the fit is skipped (reported as such).
    cost: relative cost of one fit, to start the slow ones first.
    """
    name: str
    family: str
    make: Callable[[], BaseEstimator]
    features: str = "paper"
    deterministic: bool = False
    ensemble: str | None = None
    members: int = 0
    description: str = ""
    min_train_rows: int = 2
    cost: float = 1.0


# --- the paper's regressors -------------------------------------------------------------------

def _standardised(model) -> Pipeline:
    return make_pipeline(StandardScaler(), model)


def _power(y, exponent):
    return np.power(y, exponent) - 1.0


def _inverse_power(prediction, exponent):
    """(prediction + 1)^D, floored at 0: a linear model can extrapolate below -1, where a
    fractional power has no real value (never on NAAP-440, but on small rebuilt datasets)."""
    return np.power(np.maximum(prediction + 1.0, 0.0), exponent)


def knn(k: int) -> Pipeline:
    return _standardised(KNeighborsRegressor(n_neighbors=k, algorithm="brute"))


def linear_regression(d: float | None = None) -> Pipeline:
    """Plain, or fitted to y^(1/D) - 1 and predicting (prediction + 1)^D (the paper's)."""
    if d is None:
        return _standardised(LinearRegression())
    return _standardised(TransformedTargetRegressor(
        LinearRegression(), func=partial(_power, exponent=1.0 / d), inverse_func=partial(_inverse_power, exponent=d),
        check_inverse=False))


def decision_tree() -> Pipeline:
    return _standardised(DecisionTreeRegressor())


def gradient_boosting(n: int) -> Pipeline:
    return _standardised(GradientBoostingRegressor(n_estimators=n))


def adaboost(n: int) -> Pipeline:
    return _standardised(AdaBoostRegressor(n_estimators=n))


def svr(kernel: str) -> Pipeline:
    return _standardised(SVR(kernel=kernel, epsilon=0.001, C=0.1))


def random_forest(n: int) -> Pipeline:
    return _standardised(RandomForestRegressor(n_estimators=n))


# --- predictors made for learning curves ------------------------------------------------------

def xgboost_regressor():
    import xgboost  # imported on use: a second or so that other commands need not pay

    return xgboost.XGBRegressor(n_jobs=1, random_state=0)


def lightgbm_regressor():
    import lightgbm

    return lightgbm.LGBMRegressor(n_jobs=1, random_state=0, verbose=-1)


def lcsvr() -> Pipeline:
    """nu-SVR (RBF) on the scheme, the curves and their differences, as LcSVR (Baker et al. 2017).
    Its settings are scikit-learn's defaults (C 1, nu 0.5, gamma 'scale': 1 / the number of
    columns on standardised features), fixed in advance: nothing is chosen from any rows. (Baker
    et al. searched them by cross-validation on the training data; nested in every fit here that
    would cost about a tenth of `make leaderboard`, for a baseline the encoding models beat.)"""
    return _standardised(NuSVR())


def gp_ard() -> ArdGaussianProcess:
    return ArdGaussianProcess()


def gp_ard_linear_curve() -> ArdGaussianProcess:
    """The RBF over the encoding, the curve summary through the GP's linear term (naap.gp)."""
    return ArdGaussianProcess(linear=CURVE_SUMMARY)


def gradient_boosting_arch() -> GradientBoostingRegressor:
    """Fixed in advance (issue 10's settings): slow learning rate, many shallow trees, row subsampling."""
    return GradientBoostingRegressor(n_estimators=500, learning_rate=0.03, max_depth=3, subsample=0.8, random_state=0)


def xgboost_ranker_regressor() -> "RankingRegressor":
    import xgboost

    # XGBoost's default pairing draws one pair per item and round; with one query of hundreds of
    # items that learns little (a check by 5-fold CV on the paper split's 400 training rows only:
    # tau 0.72 against 0.83 with 8 pairs per item drawn uniformly, "mean").
    return RankingRegressor(xgboost.XGBRanker(objective="rank:pairwise", lambdarank_pair_method="mean",
                                              lambdarank_num_pair_per_sample=8, n_jobs=1, random_state=0))


class RankingRegressor(RegressorMixin, BaseEstimator):
    """A learning-to-rank model (all training rows one query, relevance = the rank of MaxAccuracy
    among them, 0 for the lowest; ties share one) as a regressor: its scores are mapped to
    accuracies by a linear fit on the training rows, so MAE means something; the ranking is the
    ranker's (where the slope is positive)."""

    def __init__(self, ranker=None):
        self.ranker = ranker

    def fit(self, X, y):
        X, y = validate_data(self, X, y, y_numeric=True)
        relevance = stats.rankdata(y, method="dense").astype(int) - 1
        self.ranker_ = clone(self.ranker).fit(X, relevance, qid=np.zeros(len(y), dtype=int))
        self.calibration_ = LinearRegression().fit(self.ranker_.predict(X)[:, None], y)
        return self

    def predict(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, reset=False)
        return self.calibration_.predict(self.ranker_.predict(X)[:, None])


class OneColumnRegressor(RegressorMixin, BaseEstimator):
    """A linear fit of the target on one named column (a zero-cost proxy, NumMACs, ...; the feature
    sets hand some as logarithms): its ranking is the column's, or the reverse where the training
    rows say the column falls with accuracy (the slope's sign, fitted on the training rows only)."""

    def __init__(self, column: str = "NumMACs"):
        self.column = column

    def _values(self, X) -> np.ndarray:
        return X[:, [self.index_]]

    def fit(self, X, y):
        X, y = validate_data(self, X, y, y_numeric=True)
        names = list(getattr(self, "feature_names_in_", []))
        if self.column not in names:
            raise ValueError(f"column {self.column!r} is not among the features")
        self.index_ = names.index(self.column)
        self.linear_ = LinearRegression().fit(self._values(X), y)
        return self

    def predict(self, X):
        check_is_fitted(self)
        return self.linear_.predict(self._values(validate_data(self, X, reset=False)))


CURVE_FAMILIES = {
    # name: (basis phi_alpha(t) of best_accuracy(t) = c - a * phi_alpha(t), grid of alpha)
    "pow3": (lambda t, alpha: t ** -alpha, np.linspace(0.05, 3.0, 60)),
    "exp3": (lambda t, alpha: np.exp(-alpha * t), np.geomspace(0.01, 2.0, 60)),
}


def extrapolate_curves(accuracy: np.ndarray, horizon: int, family: str = "pow3") -> np.ndarray:
    """Fit best(t) = c - a * phi_alpha(t) to each row's best-so-far accuracy over the observed epochs
    and evaluate it at `horizon`. Returns (n, 4): the extrapolated best accuracy, the asymptote c,
    the amplitude a and the best accuracy seen.

    For each alpha of the family's grid, (c, a) is one least-squares solve for all rows (the design
    matrix is shared), and each row keeps the alpha with the smallest residual: no loop over rows.
    The extrapolation stays between the best accuracy seen and 1. With fewer than three epochs the
    curve is not identifiable and the extrapolation is the best accuracy seen.
    """
    best_so_far = np.maximum.accumulate(accuracy, axis=1)
    n, k = best_so_far.shape
    seen = best_so_far[:, -1]
    if k < 3:
        return np.column_stack([seen, seen, np.zeros(n), seen])
    basis, alphas = CURVE_FAMILIES[family]
    t = np.arange(1, k + 1, dtype=float)
    fits = []
    for alpha in alphas:
        design = np.column_stack([np.ones(k), -basis(t, alpha)])
        coef, *_ = np.linalg.lstsq(design, best_so_far.T, rcond=None)
        residual = np.sum((design @ coef - best_so_far.T) ** 2, axis=0)
        fits.append((residual, coef[0] - coef[1] * basis(float(horizon), alpha), coef[0], coef[1]))
    residual, at_horizon, asymptote, amplitude = (np.stack(part) for part in zip(*fits))
    pick = np.argmin(residual, axis=0), np.arange(n)
    return np.column_stack([np.clip(at_horizon[pick], seen, 1.0), asymptote[pick], amplitude[pick], seen])


class CurveExtrapolationRegressor(RegressorMixin, BaseEstimator):
    """Extrapolate each architecture's learning curve to the last epoch with a parametric family,
    then regress MaxAccuracy on the extrapolation and the other (scheme) features.

    The curve is read from the columns named e{i}Accuracy (pass a DataFrame); without them the
    model is `regressor` on the features alone. `horizon` is the last epoch of training (the
    leaderboard sets it to the dataset's number of recorded epochs). The default regressor is
    gradient boosting with `random_state` (None: NumPy's global state, like the paper's regressors).
    """

    def __init__(self, family: str = "pow3", horizon: int = 90, regressor=None, random_state=None):
        self.family = family
        self.horizon = horizon
        self.regressor = regressor
        self.random_state = random_state

    def _design(self, X: np.ndarray) -> np.ndarray:
        if not self.curve_columns_:
            return X
        others = np.delete(X, self.curve_columns_, axis=1)
        return np.column_stack([others, extrapolate_curves(X[:, self.curve_columns_], self.horizon, self.family)])

    def fit(self, X, y):
        if self.family not in CURVE_FAMILIES:
            raise ValueError(f"family must be one of {sorted(CURVE_FAMILIES)}, got {self.family!r}")
        X, y = validate_data(self, X, y, y_numeric=True)
        names = list(getattr(self, "feature_names_in_", []))
        self.curve_columns_ = [names.index(c) for c in accuracy_columns(names)]
        regressor = GradientBoostingRegressor(random_state=self.random_state) if self.regressor is None \
            else self.regressor
        self.regressor_ = clone(regressor).fit(self._design(X), y)
        return self

    def predict(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, reset=False)
        return self.regressor_.predict(self._design(X))


def curve_extrapolation(family: str = "pow3") -> CurveExtrapolationRegressor:
    return CurveExtrapolationRegressor(family=family)


# --- the registry -------------------------------------------------------------------------------

def _paper_predictors() -> list[Predictor]:
    listed = [Predictor(f"{k}-NN", "k-NN", partial(knn, k), deterministic=True, min_train_rows=k)
              for k in (1, 3, 5, 7, 9)]
    listed += [Predictor("Linear Regression", "Linear Regression", linear_regression, deterministic=True)]
    listed += [Predictor(f"Linear Regression (D={d})", "Linear Regression", partial(linear_regression, d),
                         deterministic=True) for d in (0.5, 0.25)]
    listed += [Predictor("Decision Tree", "Decision Tree", decision_tree)]
    for family, make in (("Gradient Boosting", gradient_boosting), ("AdaBoost", adaboost)):
        listed += [Predictor(f"{family} (N={n})", family, partial(make, n), ensemble=family, members=n)
                   for n in (25, 50, 100, 200)]
    listed += [Predictor(f"SVR ({label} kernel)", "SVR", partial(svr, kernel), deterministic=True)
               for label, kernel in (("RBF", "rbf"), ("Polynomial", "poly"), ("Linear", "linear"))]
    listed += [Predictor(f"Random Forest (N={n})", "Random Forest", partial(random_forest, n),
                         ensemble="Random Forest", members=n) for n in (25, 50, 100, 200)]
    return listed


def _proxy_predictors() -> list[Predictor]:
    """Each zero-cost proxy alone (`proxies` set, where synflow, snip and grad_norm are logarithms),
    and NumMACs and NumParams alone (the `arch` set, as logarithms): the baselines a proxy must beat."""
    listed = [Predictor(f"{name} alone", "zero-cost proxy", partial(OneColumnRegressor, name), features="proxies",
                        deterministic=True, description=f"the proxy {name}{' (log)' if name in LOG_PROXIES else ''}, "
                                                        "sign from the training rows")
              for name in PROXIES]
    listed += [Predictor(f"{name} alone", "one column", partial(OneColumnRegressor, name), features="arch",
                         deterministic=True, description=f"log {name}, linear fit")
               for name in ("NumMACs", "NumParams")]
    return listed


PAPER_PREDICTORS = _paper_predictors()
NEW_PREDICTORS = [
    Predictor("XGBoost", "XGBoost", xgboost_regressor, deterministic=True),
    Predictor("LightGBM", "LightGBM", lightgbm_regressor, deterministic=True),
    Predictor("LcSVR", "LcSVR", lcsvr, features="curve", deterministic=True,
              description="nu-SVR on curves and differences, scikit-learn's default settings fixed in advance"),
    Predictor("Curve extrapolation (pow3)", "Curve extrapolation", curve_extrapolation, features="accuracy"),
    Predictor("GP-ARD (arch)", "Gaussian process", gp_ard, features="arch", deterministic=True, cost=15.0,
              description="constant x ARD RBF + white noise; hyperparameters by marginal likelihood on the training rows"),
    Predictor("GP-ARD (arch + curve)", "Gaussian process", gp_ard, features="arch-curve", deterministic=True,
              cost=15.0, description="as GP-ARD (arch), with a five-number curve summary from budget 1"),
    Predictor("GP-ARD (arch) + linear (curve)", "Gaussian process", gp_ard_linear_curve, features="arch-curve",
              deterministic=True, cost=15.0,
              description="ARD RBF on the encoding + a linear term on the curve summary (one variance per column) "
                          "+ white noise; all by marginal likelihood on the training rows"),
    Predictor("Gradient Boosting (arch)", "Gradient Boosting", gradient_boosting_arch, features="arch",
              deterministic=True, cost=3.0, description="500 trees, lr 0.03, depth 3, subsample 0.8"),

    Predictor("XGBoost (arch)", "XGBoost", xgboost_regressor, features="arch", deterministic=True,
              description="XGBoost defaults, squared error"),
    Predictor("XGBoost ranking (arch)", "XGBoost", xgboost_ranker_regressor, features="arch", deterministic=True,
              description="XGBoost defaults, pairwise ranking objective, scores calibrated linearly"),
    Predictor("XGBoost (proxies)", "XGBoost", xgboost_regressor, features="proxies", deterministic=True,
              description="XGBoost defaults, on the six proxies together"),
    Predictor("XGBoost (arch + proxies)", "XGBoost", xgboost_regressor, features="arch-proxies", deterministic=True,
              description="XGBoost defaults, on the encoding and the six proxies"),
] + _proxy_predictors()
REGISTRY = {p.name: p for p in PAPER_PREDICTORS + NEW_PREDICTORS}
PREDICTOR_SETS = ("all", "paper", "none")


def as_predictor(name: str, factory: Callable) -> Predictor:
    """A predictor from a factory returning an estimator (named `name`) or a Predictor."""
    try:
        made = factory()
    except (Exception, SystemExit) as exc:  # a plug-in's bug is its author's: one line naming it
        raise NaapError(f"predictor '{name}': the factory raised {type(exc).__name__}: {exc}") from None
    if isinstance(made, Predictor):
        return made
    if not (callable(getattr(made, "fit", None)) and callable(getattr(made, "predict", None))):
        raise NaapError(f"predictor '{name}': the factory returned {type(made).__name__}, "
                        "not an estimator with fit and predict")
    return Predictor(name, "plug-in", factory)


def load_plugin(spec: str) -> Predictor:
    """`package.module:factory` -> Predictor. The working directory is importable, as with `python -m`."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise NaapError(f"--predictor '{spec}': expected a predictor name or package.module:factory")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise NaapError(f"--predictor '{spec}': cannot import module '{module_name}' ({exc})") from None
    except (Exception, SystemExit) as exc:
        raise NaapError(f"--predictor '{spec}': importing module '{module_name}' raised "
                        f"{type(exc).__name__}: {exc}") from None
    factory = getattr(module, attribute, None)
    if not callable(factory):
        raise NaapError(f"--predictor '{spec}': module '{module_name}' has no callable '{attribute}'")
    return as_predictor(spec, factory)


def installed_plugins() -> list[Predictor]:
    plugins = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            factory = ep.load()
        except (Exception, SystemExit) as exc:
            raise NaapError(f"predictor '{ep.name}' (entry point {ep.value}): loading it raised "
                            f"{type(exc).__name__}: {exc}") from None
        plugins.append(as_predictor(ep.name, factory))
    return plugins


def select_predictors(predictor_set: str = "all", extra: list[str] = ()) -> list[Predictor]:
    """The predictors of a set (`all` includes installed plug-ins) plus each of `extra`: a
    registered name or package.module:factory. Unknown names are a NaapError."""
    if predictor_set not in PREDICTOR_SETS:
        raise NaapError(f"unknown predictor set '{predictor_set}' (known: {', '.join(PREDICTOR_SETS)})")
    chosen = {"all": lambda: PAPER_PREDICTORS + NEW_PREDICTORS + installed_plugins(),
              "paper": lambda: list(PAPER_PREDICTORS), "none": list}[predictor_set]()
    for spec in extra:
        if spec in REGISTRY:
            chosen.append(REGISTRY[spec])
        elif ":" in spec:
            chosen.append(load_plugin(spec))
        else:
            raise NaapError(f"unknown predictor '{spec}' (known: {', '.join(REGISTRY)}; "
                            "or give package.module:factory)")
    names = [p.name for p in chosen]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate:
        raise NaapError(f"predictor '{duplicate}' is selected twice")
    if not chosen:
        raise NaapError("no predictor selected (give --predictor-set all|paper or --predictor)")
    return chosen


def predict_members(model, X, members: list[int]) -> dict[int, np.ndarray]:
    """Predictions of the first n members of a fitted forest or boosting ensemble, for each n:
    the numbers an ensemble of n members fitted under the same seed predicts (tests prove it).

    A forest of N trees draws one seed per tree from one random state, in order, so its first n
    trees are the forest of n trees; AdaBoost draws its bootstrap and tree seeds the same way and
    weighs the first n by the first n weights; gradient boosting adds one stage at a time
    (staged_predict). AdaBoost's own staged_predict recomputes every prefix (quadratic), so the
    forest and AdaBoost are cut to their first n members instead."""
    steps, final = (model[:-1], model[-1]) if isinstance(model, Pipeline) else (None, model)
    X = steps.transform(X) if steps is not None else X
    if isinstance(final, (RandomForestRegressor, AdaBoostRegressor)):
        predictions = {}
        for n in members:
            head = copy.copy(final)
            head.estimators_ = final.estimators_[:n]
            predictions[n] = head.predict(X)
        return predictions
    stages = list(final.staged_predict(X))
    return {n: stages[min(n, len(stages)) - 1] for n in members}
