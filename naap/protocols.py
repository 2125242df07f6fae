"""The evaluation protocols.

- `paper` (docs/benchmark.md, Evaluation protocol): the published split (IsTest), five seeds, the median seed reported.
- `cv`: repeated k-fold over all architectures, test folds of about 40 stratified by accuracy.
- `extrapolation-size`: train on the 90 % smallest architectures by NumMACs, test on the largest
  10 %; `extrapolation-accuracy`: train on the 90 % least accurate, test on the top 10 % (in the
  spirit of NAAP-440e: what a search needs, and where predictors fail). One split each, ties
  broken by ModelId, five seeds and the median seed as in `paper`.

What a predictor is handed carries nothing but the features: the index is reset to 0..n-1 and
the test rows are shuffled (a permutation seeded with the fit's seed), the predictions mapped
back after. The training rows keep the order the paper's protocol gives them (ascending target, a
function of the training targets the predictor receives anyway; random forests draw their
bootstrap samples by row, so this order reproduces the paper's numbers).

All protocols turn into a list of `Fit`s, one estimator fit each, run in parallel by joblib.
Work is reused only where the numbers are the same as separate fits (tests/test_predictors.py
and tests/test_protocols.py prove it):
- the members of one ensemble (Random Forest N=25..200, boosting stages) come from one fit of
  the largest under the same seed;
- a deterministic predictor is fitted once and its result stands for every seed;
- a predictor reading a budget-free feature set (naap.features.BUDGET_FREE) is fitted once and
  its result stands for every budget;
- two predictors made by the same factory, reading the same matrix (features.same_matrix: e.g.
  arch-curve at budget 0 is arch), are fitted once and the results copied to the second.
"""
from __future__ import annotations

import contextlib
import os
import random
import signal
import threading
import time
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from joblib.externals.loky import get_reusable_executor
from scipy import stats
from sklearn.model_selection import RepeatedStratifiedKFold
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from naap import metrics
from naap.errors import NaapError
from naap.features import BUDGET_FREE, build_features, check_budget, recorded_epochs, same_matrix, target
from naap.predictors import Predictor, predict_members

EXTRAPOLATION = ("extrapolation-size", "extrapolation-accuracy")
PROTOCOLS = ("paper", "cv") + EXTRAPOLATION
FIXED_SPLITS = ("paper",) + EXTRAPOLATION  # one split, five seeds, the median seed reported
PAPER_SEEDS = tuple(range(20220905, 20220910))
CV_SEED = 20220905
CV_TEST_ITEMS = 40
CV_FEWEST_TEST_ITEMS = 10  # below this, cv folds are too small for their intervals to mean anything
EXTRAPOLATION_FRACTION = 0.1
METRICS = ("mae", "violations", "violations_strict", "monotonicity", "kendall_tau", "spearman")
# Intervals are cut to what a metric can be (few, small folds give wide t-intervals).
METRIC_RANGES = {"mae": (0.0, np.inf), "violations": (0.0, np.inf), "violations_strict": (0.0, np.inf),
                 "monotonicity": (0.0, 1.0), "kendall_tau": (-1.0, 1.0), "spearman": (-1.0, 1.0)}


@dataclass(frozen=True)
class Fit:
    """One estimator fit on the features of `budget`. `predictors` are read off it (the fitted one
    last, the others its first members); its rows stand for each of `seeds` (all five for a
    deterministic predictor) and each of `budgets` (all of them for a budget-free feature set)."""
    protocol: str
    budget: int
    seed: int
    fold: int | None
    predictors: tuple[Predictor, ...]
    seeds: tuple[int, ...]
    train: np.ndarray
    test: np.ndarray
    budgets: tuple[int, ...]


class Outcome(NamedTuple):
    """results: one row per protocol, predictor, budget and seed (fixed splits) or fold (cv);
    predictions: the test predictions behind them; skipped: one row per protocol, predictor and
    budget that could not be fitted, with the reason; notices: lines the report should show."""
    results: pd.DataFrame
    predictions: pd.DataFrame
    skipped: pd.DataFrame
    notices: list[str]


def sort_by_accuracy(frame: pd.DataFrame) -> pd.DataFrame:
    """The paper's protocol sorts by MaxAccuracy; ties go by ModelId so the order is the same everywhere."""
    return frame.sort_values(["MaxAccuracy", "ModelId"], kind="stable", ignore_index=True)


def _groups(predictors: list[Predictor], reuse: bool) -> list[tuple[Predictor, ...]]:
    if not reuse:
        return [(p,) for p in predictors]
    groups: dict[tuple, list[Predictor]] = {}
    for p in predictors:
        key = ("ensemble", p.ensemble, p.features) if p.ensemble else ("single", p.name)
        groups.setdefault(key, []).append(p)
    return [tuple(sorted(group, key=lambda p: p.members)) for group in groups.values()]


def _by_budget(group: tuple[Predictor, ...], budgets, reuse: bool, copies=frozenset()) -> list[tuple[int, tuple[int, ...]]]:
    """(budget whose features are read, budgets the fit stands for); budgets in `copies` are left out."""
    budgets = [b for b in budgets if (group[-1].name, b) not in copies]
    if not budgets:
        return []
    if reuse and group[-1].features in BUDGET_FREE:
        return [(min(budgets), tuple(budgets))]
    return [(budget, (budget,)) for budget in budgets]


def copies_of(predictors: list[Predictor], budgets) -> dict[tuple[str, int], tuple[str, int]]:
    """(predictor, budget) -> the (predictor, budget) whose results it copies: the same factory,
    seed-dependence and feature matrix (ensemble members are read off their own fits)."""
    first: dict[tuple, tuple[str, int]] = {}
    copies = {}
    for p in predictors:
        if p.ensemble:
            continue
        for budget in budgets:
            key = (p.make, p.deterministic, same_matrix(p.features, budget))
            source = first.setdefault(key, (p.name, budget))
            if source[0] != p.name:
                copies[(p.name, budget)] = source
    return copies


def _copied(frame: pd.DataFrame, copies, predictors: list[Predictor]) -> pd.DataFrame:
    """The rows of each copy's source, relabelled as the copy."""
    by_name = {p.name: p for p in predictors}
    parts = [frame]
    for (name, budget), (source, source_budget) in copies.items():
        rows = frame[(frame["predictor"] == source) & (frame["budget"] == source_budget)].copy()
        rows["predictor"], rows["budget"] = name, budget
        if "family" in rows.columns:
            rows["family"], rows["features"] = by_name[name].family, by_name[name].features
        parts.append(rows)
    return pd.concat(parts, ignore_index=True)


def split_rows(frame: pd.DataFrame, protocol: str) -> tuple[np.ndarray, np.ndarray]:
    """Training and test rows (positions in `frame`, sorted by accuracy) of a fixed-split protocol."""
    n = len(frame)
    if protocol == "paper":
        is_test = frame["IsTest"].to_numpy() == 1
        train, test = np.flatnonzero(~is_test), np.flatnonzero(is_test)
        need = "a split (IsTest)"
    else:
        size = max(2, round(EXTRAPOLATION_FRACTION * n))
        key = ["NumMACs", "ModelId"] if protocol == "extrapolation-size" else ["MaxAccuracy", "ModelId"]
        order = frame.sort_values(key, kind="stable").index.to_numpy()
        train, test = np.sort(order[:n - size]), np.sort(order[n - size:])
        need = "enough architectures"
    if len(test) < 2 or len(train) < 2:
        raise NaapError(f"the {protocol} protocol needs {need} with at least two test and two training rows; "
                        f"this dataset has {len(test)} test and {len(train)} training rows")
    return train, test


def fixed_split_fits(frame: pd.DataFrame, protocol: str, predictors: list[Predictor], budgets,
                     reuse: bool = True, copies=frozenset()) -> list[Fit]:
    """One split, five seeds per predictor and budget."""
    train, test = split_rows(frame, protocol)
    fits = []
    for group in _groups(predictors, reuse):
        for budget, stands_for in _by_budget(group, budgets, reuse, copies):
            if reuse and all(p.deterministic for p in group):
                fits.append(Fit(protocol, budget, PAPER_SEEDS[0], None, group, PAPER_SEEDS, train, test, stands_for))
            else:
                fits += [Fit(protocol, budget, seed, None, group, (seed,), train, test, stands_for)
                         for seed in PAPER_SEEDS]
    return fits


def cv_splits(y: np.ndarray, repeats: int, test_items: int = CV_TEST_ITEMS, seed: int = CV_SEED):
    """Repeated k-fold over all rows with test folds of about `test_items`, stratified by accuracy:
    the rows are cut into consecutive accuracy bins of k items and each fold takes one per bin."""
    folds = max(2, round(len(y) / test_items))
    rank = stats.rankdata(y, method="ordinal") - 1  # 0..n-1, ties in the order given
    strata = np.minimum(rank // folds, max(len(y) // folds - 1, 0))  # a short last bin joins the one before
    splitter = RepeatedStratifiedKFold(n_splits=folds, n_repeats=repeats, random_state=seed)
    return list(splitter.split(np.zeros(len(y)), strata))


def cv_test_folds(frame: pd.DataFrame, repeats: int = 2) -> list[np.ndarray]:
    """The ModelIds of each cv test fold, the folds cv_fits scores on."""
    frame = sort_by_accuracy(frame)
    return [frame["ModelId"].to_numpy()[test] for _, test in cv_splits(frame["MaxAccuracy"].to_numpy(), repeats)]


def cv_fits(frame: pd.DataFrame, predictors: list[Predictor], budgets, repeats: int = 2,
            reuse: bool = True, copies=frozenset()) -> list[Fit]:
    """Every fold of every repeat, one seed per fold (CV_SEED + fold number)."""
    if len(frame) < 4:
        raise NaapError(f"the cv protocol needs at least 4 architectures; this dataset has {len(frame)}")
    splits = cv_splits(frame["MaxAccuracy"].to_numpy(), repeats)
    return [Fit("cv", budget, CV_SEED + fold, fold, group, (CV_SEED + fold,), np.sort(train), np.sort(test), stands_for)
            for group in _groups(predictors, reuse) for budget, stands_for in _by_budget(group, budgets, reuse, copies)
            for fold, (train, test) in enumerate(splits)]


def _configured(model, horizon: int):
    """Estimators with a `horizon` parameter learn the dataset's number of recorded epochs."""
    names = [name for name in model.get_params() if name == "horizon" or name.endswith("__horizon")]
    return model.set_params(**dict.fromkeys(names, horizon)) if names else model


def _predict(fit: Fit, model, X_test: pd.DataFrame) -> dict[str, np.ndarray]:
    """Each predictor's predictions of X_test: the rows handed over shuffled, mapped back."""
    order = np.random.default_rng(fit.seed).permutation(len(X_test))
    shuffled = X_test.iloc[order].reset_index(drop=True)
    if len(fit.predictors) > 1:
        by_members = predict_members(model, shuffled, [p.members for p in fit.predictors])
        predicted = {p.name: by_members[p.members] for p in fit.predictors}
    else:
        predicted = {fit.predictors[-1].name: model.predict(shuffled)}
    mapped = {}
    for name, values in predicted.items():
        values = np.asarray(values, dtype=float).ravel()
        if values.shape == order.shape:
            values = values[np.argsort(order)]
        mapped[name] = values
    return mapped


def run_fit(fit: Fit, X_train: pd.DataFrame, y_train, X_test: pd.DataFrame, y_test, arch_ids, horizon: int):
    """Seed NumPy's global RNG and Python's random, fit, predict: (metric rows, prediction rows, skipped rows).

    BLAS runs on one thread, in a worker or not: a multi-threaded sum can round differently, and
    exact ties (k-NN distances on two features) would then break differently."""
    fitted = fit.predictors[-1]
    where = f"({fit.protocol} protocol, budget {fit.budget}, seed {fit.seed})"
    keys = [{"protocol": fit.protocol, "predictor": p.name, "budget": budget}
            for p in fit.predictors for budget in fit.budgets]
    if len(y_train) < fitted.min_train_rows:
        reason = f"needs at least {fitted.min_train_rows} training rows, has {len(y_train)}"
        return [], [], [{**key, "reason": reason} for key in keys]
    with threadpool_limits(1):
        np.random.seed(fit.seed)
        random.seed(fit.seed)
        start = time.perf_counter()
        try:
            model = _configured(fitted.make(), horizon)
            model.fit(X_train.reset_index(drop=True), y_train)
            seconds = time.perf_counter() - start
            predicted = _predict(fit, model, X_test)
        except (Exception, SystemExit) as exc:  # a predictor's own failure (a plug-in's, say): one line naming it
            raise NaapError(f"predictor '{fitted.name}' failed {where}: {type(exc).__name__}: {exc}") from None
    rows, predictions = [], []
    for p in fit.predictors:
        if predicted[p.name].shape != y_test.shape:
            raise NaapError(f"predictor '{p.name}' gave {predicted[p.name].size} predictions for "
                            f"{len(y_test)} test rows {where}")
        if not np.isfinite(predicted[p.name]).all():
            raise NaapError(f"predictor '{p.name}' predicted a non-finite value {where}")
        scores = metrics.score(y_test, predicted[p.name])
        for budget in fit.budgets:
            for seed in fit.seeds:
                key = {"protocol": fit.protocol, "predictor": p.name, "budget": budget, "seed": seed,
                       "fold": fit.fold}
                rows.append({**key, "family": p.family, "features": p.features, **scores,
                             "train_items": len(y_train), "test_items": len(y_test), "fit_seconds": seconds})
                predictions.append(pd.DataFrame({**key, "arch_id": arch_ids, "true": y_test,
                                                 "predicted": predicted[p.name]}))
    return rows, predictions, []


def _cost(fit: Fit) -> float:
    """A rough relative cost, to start the long fits first."""
    return max(fit.predictors[-1].members, 10) * (fit.budget + 2) * fit.predictors[-1].cost


def _raise_on_sigterm(signum, frame):
    raise KeyboardInterrupt


# Killed workers leave semaphores and folders behind, which loky's resource tracker (a process
# of its own, started with the first pool) removes after naap has exited, with a UserWarning per
# item on the user's terminal: noise after the one line naap prints. Its warnings start thus.
TRACKER_WARNINGS = "ignore:resource_tracker:UserWarning"


@contextlib.contextmanager
def _workers_ended_on_interrupt(parallel: bool):
    """While the fits run: SIGTERM, where nothing else handles it, interrupts like Ctrl-C; on any
    interruption or error the worker processes are killed (a hanging fit included), not left behind."""
    install = parallel and threading.current_thread() is threading.main_thread() \
        and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    if install:
        signal.signal(signal.SIGTERM, _raise_on_sigterm)
    if parallel and TRACKER_WARNINGS not in os.environ.get("PYTHONWARNINGS", ""):
        os.environ["PYTHONWARNINGS"] = ",".join(filter(None, [os.environ.get("PYTHONWARNINGS"), TRACKER_WARNINGS]))
    try:
        yield
    except BaseException:
        if parallel:
            get_reusable_executor().shutdown(wait=False, kill_workers=True)
        raise
    finally:
        if install:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


def run_fits(frame: pd.DataFrame, fits: list[Fit], jobs: int = -1, progress: bool = True,
             source: str = "dataset") -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Run the fits (in parallel over `jobs` processes; 1 = one after another in this process)."""
    y = target(frame, source).to_numpy()
    arch_ids = frame["ModelId"].to_numpy()
    horizon = recorded_epochs(frame)
    matrices = {key: build_features(frame, *key, source=source)
                for key in {(fit.predictors[-1].features, fit.budget) for fit in fits}}

    def task(fit: Fit):
        X = matrices[(fit.predictors[-1].features, fit.budget)]
        return (fit, X.iloc[fit.train], y[fit.train], X.iloc[fit.test], y[fit.test], arch_ids[fit.test], horizon)

    ordered = sorted(fits, key=_cost, reverse=True)
    rows, predictions, skipped = [], [], []
    with tqdm(total=len(ordered), desc="fits", unit="fit", disable=not progress) as bar, \
            _workers_ended_on_interrupt(jobs != 1):
        if jobs == 1:
            outputs = (run_fit(*task(fit)) for fit in ordered)
        else:
            outputs = Parallel(n_jobs=jobs, return_as="generator_unordered")(
                delayed(run_fit)(*task(fit)) for fit in ordered)
        for fit_rows, fit_predictions, fit_skipped in outputs:
            rows += fit_rows
            predictions += fit_predictions
            skipped += fit_skipped
            bar.update()
    order = ["protocol", "predictor", "budget", "seed", "fold"]
    results = pd.DataFrame(rows, columns=None if rows else order).sort_values(order, ignore_index=True)
    predictions = (pd.concat(predictions, ignore_index=True).sort_values(order + ["true", "arch_id"], ignore_index=True)
                   if predictions else pd.DataFrame(columns=order + ["arch_id", "true", "predicted"]))
    skipped = pd.DataFrame(skipped, columns=["protocol", "predictor", "budget", "reason"])
    return results, predictions, skipped.drop_duplicates(["protocol", "predictor", "budget"], ignore_index=True)


def run_protocols(frame: pd.DataFrame, predictors: list[Predictor], budgets, protocols=PROTOCOLS,
                  repeats: int = 2, jobs: int = -1, reuse: bool = True, progress: bool = True,
                  source: str = "dataset") -> Outcome:
    """Every fit of the protocols, run; see Outcome."""
    for budget in budgets:
        check_budget(frame, budget, source)
    target(frame, source)
    frame = sort_by_accuracy(frame)
    copies = copies_of(predictors, budgets) if reuse else {}
    fits, notices = [], []
    for protocol in protocols:
        if protocol == "cv":
            fits += cv_fits(frame, predictors, budgets, repeats, reuse, copies)
            test_items = max(len(test) for _, test in cv_splits(frame["MaxAccuracy"].to_numpy(), 1))
            if test_items < CV_FEWEST_TEST_ITEMS:
                notices.append(f"Cross-validation on {len(frame)} architectures: test folds of {test_items} items; "
                               "at this size the intervals mean nothing.")
        else:
            fits += fixed_split_fits(frame, protocol, predictors, budgets, reuse, copies)
    results, predictions, skipped = run_fits(frame, fits, jobs, progress, source)
    order = ["protocol", "predictor", "budget", "seed", "fold"]
    results = _copied(results, copies, predictors).sort_values(order, ignore_index=True)
    predictions = _copied(predictions, copies, predictors).sort_values(order + ["true", "arch_id"], ignore_index=True)
    skipped = _copied(skipped, copies, predictors)
    return Outcome(results, predictions, skipped, notices)


def _corrected_scale(group: pd.DataFrame) -> float:
    """Nadeau and Bengio's variance correction for repeated resampling: the folds share training
    rows, so the fold results are not independent; 1/J becomes 1/J + n_test/n_train."""
    ratio = (group["test_items"] / group["train_items"]).mean()
    return np.sqrt(1.0 / len(group) + ratio)


SUMMARY_KEYS = ["protocol", "predictor", "family", "features", "budget"]


def summarise(results: pd.DataFrame) -> pd.DataFrame:
    """One row per protocol, predictor and budget.

    Fixed splits (paper, extrapolation): the seed with the median violations (ties as half;
    sorted by violations, then seed; the middle one). cv: the mean over folds and a 95 % interval
    (corrected resampled t), and `p_vs_best`, the p-value of a corrected paired t-test of Kendall
    tau against the predictor with the best mean tau at that budget (NaN for that one).
    near_constant: the predictions were (nearly) constant in at least half of the runs.
    """
    keys = SUMMARY_KEYS
    parts = []
    fixed = results[results["protocol"].isin(FIXED_SPLITS)]
    if len(fixed):
        ranked = fixed.sort_values(keys + ["violations", "seed"])
        middle = ranked.groupby(keys, sort=False).apply(lambda g: g.iloc[len(g) // 2], include_groups=False)
        runs = fixed.groupby(keys).size().rename("runs")
        flagged = fixed.groupby(keys)["near_constant"].mean().ge(0.5).rename("flagged")
        part = middle.drop(columns="near_constant").join(runs).join(flagged).reset_index()
        parts.append(part.rename(columns={"flagged": "near_constant"})[keys + ["runs", "seed", "near_constant"]
                                                                      + list(METRICS)])
    cv = results[results["protocol"] == "cv"]
    if len(cv):
        parts.append(_summarise_cv(cv, keys))
    summary = pd.concat(parts, ignore_index=True)
    summary["violations"] = summary["violations"].astype(float)
    summary["violations_strict"] = summary["violations_strict"].astype(float)
    summary["near_constant"] = summary["near_constant"].astype(bool)
    return summary


def by_tau(rows: pd.DataFrame) -> pd.DataFrame:
    """`rows` best first: higher Kendall tau, then (of equal ones) one that reads no epoch (a
    budget-free feature set), then by name."""
    order = rows.assign(_tau=-rows["kendall_tau"], _reads=~rows["features"].isin(BUDGET_FREE))
    return rows.loc[order.sort_values(["_tau", "_reads", "predictor"]).index]


def _summarise_cv(cv: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    rows = []
    for key, group in cv.groupby(keys, sort=False):
        row = dict(zip(keys, key), runs=len(group), seed=None, near_constant=group["near_constant"].mean() >= 0.5)
        half = stats.t.ppf(0.975, len(group) - 1) * _corrected_scale(group) if len(group) > 1 else np.nan
        for metric in METRICS:
            values = group[metric].astype(float)
            row[metric] = values.mean()
            spread = half * values.std(ddof=1)
            row[f"{metric}_low"], row[f"{metric}_high"] = np.clip(
                [values.mean() - spread, values.mean() + spread], *METRIC_RANGES[metric])
        rows.append(row)
    summary = pd.DataFrame(rows)
    summary["p_vs_best"] = np.nan
    for budget, at_budget in summary.groupby("budget"):
        candidates = at_budget[~at_budget["near_constant"]]
        if candidates.empty:
            continue
        best = by_tau(candidates)["predictor"].iloc[0]
        folds = cv[cv["budget"] == budget].pivot(index="fold", columns="predictor", values="kendall_tau")
        reference = cv[(cv["budget"] == budget) & (cv["predictor"] == best)]
        for index, predictor in at_budget["predictor"].items():
            if predictor == best:
                continue
            summary.loc[index, "p_vs_best"] = paired_p_value(folds[best], folds[predictor], reference)
    return summary


def paired_p_value(a: pd.Series, b: pd.Series, reference: pd.DataFrame) -> float:
    """Corrected paired t-test (Nadeau-Bengio) of a - b over the shared folds."""
    diff = (a - b).dropna()
    if len(diff) < 2:
        return np.nan
    spread = diff.std(ddof=1) * _corrected_scale(reference)
    t_stat = diff.mean() / spread if spread > 0 else (np.inf if diff.mean() else 0.0)
    return float(2 * stats.t.sf(abs(t_stat), len(diff) - 1))
