"""The predictors of the leaderboard: scikit-learn-compatible regressors from features to MaxAccuracy.

`REGISTRY` holds the paper's 24 regressors (docs/benchmark.md) under the paper's names, XGBoost, LightGBM, an
LcSVR-style model (Baker et al. 2017: curve, differences, nu-SVR), a parametric learning-curve
extrapolator, models of the architecture encoding (a Gaussian process with ARD, gradient
boosting, XGBoost with a regression and a pairwise ranking objective), and each zero-cost proxy
and NumMACs / NumParams alone; the estimators themselves are in naap.board.estimators. Every
setting they do not fit on their training rows is fixed there, in advance.

Users add predictors without editing the package: `--predictor package.module:factory`, or an
entry point in the group `naap.predictors` (name = predictor name, value = `package.module:factory`).
A factory takes no argument and returns an estimator or a `Predictor`.
"""
from __future__ import annotations

import copy
import importlib
import math
import os
import sys
from dataclasses import dataclass
from functools import partial
from importlib.metadata import entry_points
from typing import Callable

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.ensemble import AdaBoostRegressor, RandomForestRegressor
from sklearn.pipeline import Pipeline

from naap.bench.tables import PROXIES
from naap.board.estimators import (
    OneColumnRegressor,
    adaboost,
    curve_extrapolation,
    decision_tree,
    gp_ard,
    gp_ard_linear_curve,
    gradient_boosting,
    gradient_boosting_arch,
    knn,
    lcsvr,
    lightgbm_regressor,
    linear_regression,
    random_forest,
    svr,
    xgboost_ranker_regressor,
    xgboost_regressor,
)
from naap.escape import one_line
from naap.board.features import FEATURE_SETS, LOG_PROXIES
from naap.errors import NaapError, first_line

ENTRY_POINT_GROUP = "naap.predictors"
# The family and feature set of predictions made elsewhere (naap.board.external): they read a file, no feature set.
EXTERNAL = "external"


@dataclass(frozen=True)
class Predictor:
    """A named recipe for an estimator.

    features: the feature set it reads (naap.board.features.FEATURE_SETS).
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

    def __post_init__(self):
        check_fields(self)


MAX_TEXT = 200  # characters of a name, family or description: one line of a table or a figure


def _short(text: str, limit: int = 100) -> str:
    """Text for one line of an error message: control characters as spaces, cut short."""
    text = one_line(text)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _shown(value) -> str:
    """A name as an error message quotes it: its repr, cut short (a name may be a megabyte)."""
    return _short(repr(value), 60)


def check_fields(predictor: Predictor) -> None:
    """Every field of the right type and range, and the texts printable, one line, at most
    MAX_TEXT characters: a plug-in's mistake is one NaapError naming the predictor and the field."""
    def refuse(field: str, why: str):
        raise NaapError(f"predictor {_shown(predictor.name)}: field '{field}' {why}")

    for field in ("name", "family", "features", "description"):
        value = getattr(predictor, field)
        if not isinstance(value, str):
            refuse(field, f"is a {type(value).__name__}, not a string")
        if len(value) > MAX_TEXT:
            refuse(field, f"has {len(value):,} characters, more than {MAX_TEXT}")
        if not value.isprintable():
            refuse(field, "holds a character that is not printable (a newline, a control character)")
        if field != "description" and not value.strip():
            refuse(field, "is empty")
    if predictor.features not in (*FEATURE_SETS, EXTERNAL):
        refuse("features", f"is {_shown(predictor.features)}, not a feature set (known: {', '.join(FEATURE_SETS)})")
    if not callable(predictor.make):
        refuse("make", f"is a {type(predictor.make).__name__}, not callable")
    if not isinstance(predictor.deterministic, bool):
        refuse("deterministic", f"is a {type(predictor.deterministic).__name__}, not True or False")
    if predictor.ensemble is not None and not isinstance(predictor.ensemble, str):
        refuse("ensemble", f"is a {type(predictor.ensemble).__name__}, not a string or None")
    for field, least in (("members", 0), ("min_train_rows", 1)):
        value = getattr(predictor, field)
        if isinstance(value, bool) or not isinstance(value, int) or not least <= value <= 1_000_000:
            refuse(field, f"is {_shown(value)}, not a whole number from {least} to 1000000")
    if predictor.ensemble is not None and predictor.members < 1:
        refuse("members", "must be at least 1 for a member of an ensemble")
    cost = predictor.cost
    if isinstance(cost, bool) or not isinstance(cost, (int, float)) or not (math.isfinite(cost) and 0 < cost <= 1e6):
        refuse("cost", f"is {_shown(cost)}, not a number above 0 and at most 1e6")


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


def raised(exc: BaseException) -> str:
    """What a plug-in raised, for one line: its type and the first line of its message, cut short.
    Ctrl-C and SIGTERM (KeyboardInterrupt) are not a plug-in's failure: they go on as interrupts."""
    if isinstance(exc, KeyboardInterrupt):
        raise exc
    return f"{type(exc).__name__}: {_short(first_line(exc))}" if str(exc).strip() else type(exc).__name__


def as_predictor(name: str, factory: Callable) -> Predictor:
    """A predictor from a factory returning an estimator (named `name`) or a Predictor."""
    try:
        made = factory()
    except NaapError as exc:  # a Predictor with a wrong field: its own line, under the plug-in's name
        raise NaapError(f"predictor {_shown(name)}: {exc}") from None
    except BaseException as exc:  # a plug-in's bug is its author's (SystemExit and the like too): one line
        raise NaapError(f"predictor {_shown(name)}: the factory raised {raised(exc)}") from None
    if isinstance(made, Predictor):
        return made
    if not (callable(getattr(made, "fit", None)) and callable(getattr(made, "predict", None))):
        raise NaapError(f"predictor {_shown(name)}: the factory returned {type(made).__name__}, "
                        "not an estimator with fit and predict")
    return Predictor(name, "plug-in", factory)


def load_plugin(spec: str) -> Predictor:
    """`package.module:factory` -> Predictor. The working directory is importable, as with `python -m`."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise NaapError(f"--predictor {_shown(spec)}: expected a predictor name or package.module:factory")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise NaapError(f"--predictor {_shown(spec)}: cannot import module {_shown(module_name)} "
                        f"({_short(first_line(exc))})") from None
    except BaseException as exc:  # the module's own failure, whatever it raises: one line
        raise NaapError(f"--predictor {_shown(spec)}: importing module {_shown(module_name)} raised "
                        f"{raised(exc)}") from None
    factory = getattr(module, attribute, None)
    if not callable(factory):
        raise NaapError(f"--predictor {_shown(spec)}: module {_shown(module_name)} has no callable {_shown(attribute)}")
    return as_predictor(spec, factory)


def installed_plugins() -> list[Predictor]:
    plugins = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            factory = ep.load()
        except BaseException as exc:  # the plug-in's own failure, whatever it raises: one line
            raise NaapError(f"predictor {_shown(ep.name)} (entry point {_short(ep.value)}): loading it raised "
                            f"{raised(exc)}") from None
        plugins.append(as_predictor(ep.name, factory))
    return plugins


def select_predictors(predictor_set: str = "all", extra: list[str] = (), none_needed: bool = False) -> list[Predictor]:
    """The predictors of a set (`all` includes installed plug-ins) plus each of `extra`: a
    registered name or package.module:factory. Unknown names are a NaapError; so is an empty
    choice, unless `none_needed` (predictions made elsewhere are ranked alone)."""
    if predictor_set not in PREDICTOR_SETS:
        raise NaapError(f"unknown predictor set {_shown(predictor_set)} (known: {', '.join(PREDICTOR_SETS)})")
    chosen = {"all": lambda: PAPER_PREDICTORS + NEW_PREDICTORS + installed_plugins(),
              "paper": lambda: list(PAPER_PREDICTORS), "none": list}[predictor_set]()
    for spec in extra:
        if spec in REGISTRY:
            chosen.append(REGISTRY[spec])
        elif ":" in spec:
            chosen.append(load_plugin(spec))
        else:
            raise NaapError(f"unknown predictor {_shown(spec)} (known: {', '.join(REGISTRY)}; "
                            "or give package.module:factory)")
    names = [p.name for p in chosen]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate:
        raise NaapError(f"predictor {_shown(duplicate)} is selected twice")
    if not chosen and not none_needed:
        raise NaapError("no predictor selected (give --predictor-set all|paper, --predictor or --predictions)")
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
