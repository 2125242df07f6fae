"""The estimators the registered predictors make (naap.board.predictors): the paper's regressors, as
the paper configured them, and the ones made for learning curves and the architecture encoding.

Each is a scikit-learn estimator. The paper's regressors standardise their features (mean and std
fitted on the training rows) and take their randomness from NumPy's global state, which the
protocols seed before each fit. Every choice an estimator makes from data (the GP's
hyperparameters, a proxy's sign, the ranker's calibration) is made on its training rows only.
"""
from __future__ import annotations

from functools import partial

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

from naap.board.curves import CURVE_FAMILIES, extrapolate_curves
from naap.board.features import CURVE_SUMMARY, accuracy_columns
from naap.board.gp import ArdGaussianProcess

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


# --- estimators made for learning curves and architectures ------------------------------------

def xgboost_regressor():
    import xgboost  # imported on use: a second or so that other commands need not pay

    return xgboost.XGBRegressor(n_jobs=1, random_state=0)


def lightgbm_regressor():
    import lightgbm  # imported on use, as xgboost

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
    """The RBF over the encoding, the curve summary through the GP's linear term (naap.board.gp)."""
    return ArdGaussianProcess(linear=CURVE_SUMMARY)


def gradient_boosting_arch() -> GradientBoostingRegressor:
    """Fixed in advance (issue 10's settings): slow learning rate, many shallow trees, row subsampling."""
    return GradientBoostingRegressor(n_estimators=500, learning_rate=0.03, max_depth=3, subsample=0.8, random_state=0)


def xgboost_ranker_regressor() -> "RankingRegressor":
    import xgboost  # imported on use, as above

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
