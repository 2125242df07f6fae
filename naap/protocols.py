"""The evaluation protocols: `paper` (SPEC section 6) and `cv` (repeated stratified k-fold).

Both turn into a list of `Fit`s, one estimator fit each, run in parallel by joblib. Work is
reused only where the numbers are the same as separate fits (tests/test_predictors.py and
tests/test_protocols.py prove it):
- the members of one ensemble (Random Forest N=25..200, boosting stages) come from one fit of
  the largest under the same seed;
- a deterministic predictor is fitted once and its result stands for every seed.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from scipy import stats
from sklearn.model_selection import RepeatedStratifiedKFold
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from naap import metrics
from naap.errors import NaapError
from naap.features import build_features, check_budget, recorded_epochs, target
from naap.predictors import Predictor, predict_members

PROTOCOLS = ("paper", "cv")
PAPER_SEEDS = tuple(range(20220905, 20220910))
CV_SEED = 20220905
CV_TEST_ITEMS = 40
METRICS = ("mae", "violations", "monotonicity", "kendall_tau", "spearman")
# Intervals are cut to what a metric can be (few, small folds give wide t-intervals).
METRIC_RANGES = {"mae": (0.0, np.inf), "violations": (0.0, np.inf), "monotonicity": (0.0, 1.0),
                 "kendall_tau": (-1.0, 1.0), "spearman": (-1.0, 1.0)}


@dataclass(frozen=True)
class Fit:
    """One estimator fit. `predictors` are read off it (the fitted one last, the others its first
    members); `seeds` are the seeds its rows stand for (all five for a deterministic predictor)."""
    protocol: str
    budget: int
    seed: int
    fold: int | None
    predictors: tuple[Predictor, ...]
    seeds: tuple[int, ...]
    train: np.ndarray
    test: np.ndarray


def sort_by_accuracy(frame: pd.DataFrame) -> pd.DataFrame:
    """SPEC section 6 sorts by MaxAccuracy; ties go by ModelId so the order is the same everywhere."""
    return frame.sort_values(["MaxAccuracy", "ModelId"], kind="stable", ignore_index=True)


def _groups(predictors: list[Predictor], reuse: bool) -> list[tuple[Predictor, ...]]:
    if not reuse:
        return [(p,) for p in predictors]
    groups: dict[tuple, list[Predictor]] = {}
    for p in predictors:
        key = ("ensemble", p.ensemble, p.features) if p.ensemble else ("single", p.name)
        groups.setdefault(key, []).append(p)
    return [tuple(sorted(group, key=lambda p: p.members)) for group in groups.values()]


def paper_fits(frame: pd.DataFrame, predictors: list[Predictor], budgets, reuse: bool = True) -> list[Fit]:
    """The published split (IsTest), five seeds per predictor and budget."""
    is_test = frame["IsTest"].to_numpy() == 1
    train, test = np.flatnonzero(~is_test), np.flatnonzero(is_test)
    if len(test) < 2 or len(train) < 2:
        raise NaapError(f"the paper protocol needs a split (IsTest) with at least two test and two training rows; "
                        f"this dataset has {len(test)} test and {len(train)} training rows")
    fits = []
    for budget in budgets:
        for group in _groups(predictors, reuse):
            if reuse and all(p.deterministic for p in group):
                fits.append(Fit("paper", budget, PAPER_SEEDS[0], None, group, PAPER_SEEDS, train, test))
            else:
                fits += [Fit("paper", budget, seed, None, group, (seed,), train, test) for seed in PAPER_SEEDS]
    return fits


def cv_splits(y: np.ndarray, repeats: int, test_items: int = CV_TEST_ITEMS, seed: int = CV_SEED):
    """Repeated k-fold over all rows with test folds of about `test_items`, stratified by accuracy:
    the rows are cut into consecutive accuracy bins of k items and each fold takes one per bin."""
    folds = max(2, round(len(y) / test_items))
    rank = stats.rankdata(y, method="ordinal") - 1  # 0..n-1, ties in the order given
    strata = np.minimum(rank // folds, len(y) // folds - 1)  # a short last bin joins the one before
    splitter = RepeatedStratifiedKFold(n_splits=folds, n_repeats=repeats, random_state=seed)
    return list(splitter.split(np.zeros(len(y)), strata))


def cv_fits(frame: pd.DataFrame, predictors: list[Predictor], budgets, repeats: int = 2,
            reuse: bool = True) -> list[Fit]:
    """Every fold of every repeat, one seed per fold (CV_SEED + fold number)."""
    splits = cv_splits(frame["MaxAccuracy"].to_numpy(), repeats)
    return [Fit("cv", budget, CV_SEED + fold, fold, group, (CV_SEED + fold,), np.sort(train), np.sort(test))
            for budget in budgets for group in _groups(predictors, reuse)
            for fold, (train, test) in enumerate(splits)]


def _configured(model, horizon: int):
    """Estimators with a `horizon` parameter learn the dataset's number of recorded epochs."""
    names = [name for name in model.get_params() if name == "horizon" or name.endswith("__horizon")]
    return model.set_params(**dict.fromkeys(names, horizon)) if names else model


def run_fit(fit: Fit, X_train, y_train, X_test, y_test, arch_ids, horizon: int):
    """Seed NumPy's global RNG and Python's random, fit, predict: (metric rows, prediction rows).

    BLAS runs on one thread, in a worker or not: a multi-threaded sum can round differently, and
    exact ties (k-NN distances on two features) would then break differently."""
    fitted = fit.predictors[-1]
    model = _configured(fitted.make(), horizon)
    where = f"({fit.protocol} protocol, budget {fit.budget}, seed {fit.seed})"
    with threadpool_limits(1):
        np.random.seed(fit.seed)
        random.seed(fit.seed)
        start = time.perf_counter()
        try:
            model.fit(X_train, y_train)
            seconds = time.perf_counter() - start
            if len(fit.predictors) > 1:
                by_members = predict_members(model, X_test, [p.members for p in fit.predictors])
                predicted = {p.name: by_members[p.members] for p in fit.predictors}
            else:
                predicted = {fitted.name: np.asarray(model.predict(X_test), dtype=float).ravel()}
        except Exception as exc:  # a predictor's own failure (a plug-in's, say): one line naming it
            raise NaapError(f"predictor '{fitted.name}' failed {where}: {type(exc).__name__}: {exc}") from None
    rows, predictions = [], []
    for p in fit.predictors:
        if predicted[p.name].shape != y_test.shape:
            raise NaapError(f"predictor '{p.name}' gave {predicted[p.name].size} predictions for "
                            f"{len(y_test)} test rows {where}")
        if not np.isfinite(predicted[p.name]).all():
            raise NaapError(f"predictor '{p.name}' predicted a non-finite value {where}")
        scores = metrics.score(y_test, predicted[p.name])
        for seed in fit.seeds:
            key = {"protocol": fit.protocol, "predictor": p.name, "budget": fit.budget, "seed": seed,
                   "fold": fit.fold}
            rows.append({**key, "family": p.family, "features": p.features, **scores,
                         "train_items": len(y_train), "test_items": len(y_test), "fit_seconds": seconds})
            predictions.append(pd.DataFrame({**key, "arch_id": arch_ids, "true": y_test,
                                             "predicted": predicted[p.name]}))
    return rows, predictions


def _cost(fit: Fit) -> float:
    """A rough relative cost, to start the long fits first."""
    return max(fit.predictors[-1].members, 10) * (fit.budget + 2)


def run_fits(frame: pd.DataFrame, fits: list[Fit], jobs: int = -1, progress: bool = True,
             source: str = "dataset") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run the fits (in parallel over `jobs` processes; 1 = one after another in this process)."""
    y = target(frame, source).to_numpy()
    arch_ids = frame["ModelId"].to_numpy()
    horizon = recorded_epochs(frame)
    matrices = {key: build_features(frame, *key, source=source)
                for key in {(p.features, fit.budget) for fit in fits for p in fit.predictors}}

    def task(fit: Fit):
        X = matrices[(fit.predictors[-1].features, fit.budget)]
        return (fit, X.iloc[fit.train], y[fit.train], X.iloc[fit.test], y[fit.test], arch_ids[fit.test], horizon)

    ordered = sorted(fits, key=_cost, reverse=True)
    bar = tqdm(total=len(ordered), desc="fits", unit="fit", disable=not progress)
    if jobs == 1:
        outputs = (run_fit(*task(fit)) for fit in ordered)
    else:
        outputs = Parallel(n_jobs=jobs, return_as="generator_unordered")(
            delayed(run_fit)(*task(fit)) for fit in ordered)
    rows, predictions = [], []
    for fit_rows, fit_predictions in outputs:
        rows += fit_rows
        predictions += fit_predictions
        bar.update()
    bar.close()
    order = ["protocol", "predictor", "budget", "seed", "fold"]
    results = pd.DataFrame(rows).sort_values(order, ignore_index=True)
    return results, pd.concat(predictions, ignore_index=True).sort_values(order + ["true", "arch_id"],
                                                                          ignore_index=True)


def run_protocols(frame: pd.DataFrame, predictors: list[Predictor], budgets, protocols=PROTOCOLS,
                  repeats: int = 2, jobs: int = -1, reuse: bool = True, progress: bool = True,
                  source: str = "dataset") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Results (one row per protocol, predictor, budget, seed/fold) and the test predictions."""
    for budget in budgets:
        check_budget(frame, budget, source)
    frame = sort_by_accuracy(frame)
    fits = []
    if "paper" in protocols:
        fits += paper_fits(frame, predictors, budgets, reuse)
    if "cv" in protocols:
        fits += cv_fits(frame, predictors, budgets, repeats, reuse)
    return run_fits(frame, fits, jobs, progress, source)


def _corrected_scale(group: pd.DataFrame) -> float:
    """Nadeau and Bengio's variance correction for repeated resampling: the folds share training
    rows, so the fold results are not independent; 1/J becomes 1/J + n_test/n_train."""
    ratio = (group["test_items"] / group["train_items"]).mean()
    return np.sqrt(1.0 / len(group) + ratio)


def summarise(results: pd.DataFrame) -> pd.DataFrame:
    """One row per protocol, predictor and budget.

    paper: the seed with the median violations (sorted by violations, then seed; the middle one).
    cv: the mean over folds and a 95 % interval (corrected resampled t), and `p_vs_best`, the
    p-value of a corrected paired t-test of Kendall tau against the predictor with the best mean
    tau at that budget (NaN for that one).
    """
    keys = ["protocol", "predictor", "family", "features", "budget"]
    parts = []
    paper = results[results["protocol"] == "paper"]
    if len(paper):
        ranked = paper.sort_values(keys + ["violations", "seed"])
        middle = ranked.groupby(keys, sort=False).apply(lambda g: g.iloc[len(g) // 2], include_groups=False)
        runs = paper.groupby(keys).size().rename("runs")
        parts.append(middle.join(runs).reset_index()[keys + ["runs", "seed"] + list(METRICS)])
    cv = results[results["protocol"] == "cv"]
    if len(cv):
        parts.append(_summarise_cv(cv, keys))
    summary = pd.concat(parts, ignore_index=True)
    summary["violations"] = summary["violations"].astype(float)
    return summary


def _summarise_cv(cv: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    rows = []
    for key, group in cv.groupby(keys, sort=False):
        row = dict(zip(keys, key), runs=len(group), seed=None)
        half = stats.t.ppf(0.975, len(group) - 1) * _corrected_scale(group)
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
        taus = at_budget["kendall_tau"].dropna()  # NaN: constant predictions
        if taus.empty:
            continue
        best = at_budget.loc[taus.idxmax(), "predictor"]
        folds = cv[cv["budget"] == budget].pivot(index="fold", columns="predictor", values="kendall_tau")
        reference = cv[(cv["budget"] == budget) & (cv["predictor"] == best)]
        for index, predictor in at_budget["predictor"].items():
            if predictor == best:
                continue
            diff = (folds[best] - folds[predictor]).dropna()
            spread = diff.std(ddof=1) * _corrected_scale(reference)
            t_stat = diff.mean() / spread if spread > 0 else (np.inf if diff.mean() else 0.0)
            summary.loc[index, "p_vs_best"] = 2 * stats.t.sf(abs(t_stat), len(diff) - 1)
    return summary
