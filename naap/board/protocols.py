"""The evaluation protocols.

- `paper` (docs/benchmark.md, Evaluation protocol): the published split (IsTest), five seeds, the median seed reported.
- `cv`: repeated k-fold over all architectures, test folds of about 40 stratified by accuracy.
- `extrapolation-size`: train on the 90 % smallest architectures by NumMACs, test on the largest
  10 %; `extrapolation-accuracy`: train on the 90 % least accurate, test on the top 10 % (in the
  spirit of NAAP-440e: what a search needs, and where predictors fail). One split each, ties
  broken by ModelId, five seeds and the median seed as in `paper`.

The training rows keep the order the paper's protocol gives them (ascending target, a function
of the training targets the predictor receives anyway; random forests draw their bootstrap
samples by row, so this order reproduces the paper's numbers).

All protocols turn into a list of `Fit`s, one estimator fit each, run by naap.board.fitting;
naap.board.summary summarises their rows. Fits are shared (`share_fits`) only where the numbers
are the same as separate fits (the tests prove it):
- the members of one ensemble (Random Forest N=25..200, boosting stages) come from one fit of
  the largest under the same seed;
- a deterministic predictor is fitted once and its result stands for every seed;
- a predictor reading a budget-free feature set (naap.board.features.BUDGET_FREE) is fitted once and
  its result stands for every budget;
- two predictors made by the same factory, reading the same matrix (features.same_matrix: e.g.
  arch-curve at budget 0 is arch), are fitted once and the results copied to the second.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.model_selection import RepeatedStratifiedKFold

from naap.board.features import BUDGET_FREE, check_budget, same_matrix, target
from naap.board.fitting import Fit, run_fits
from naap.board.predictors import Predictor
from naap.errors import NaapError

EXTRAPOLATION = ("extrapolation-size", "extrapolation-accuracy")
PROTOCOLS = ("paper", "cv") + EXTRAPOLATION
FIXED_SPLITS = ("paper",) + EXTRAPOLATION  # one split, five seeds, the median seed reported
PAPER_SEEDS = tuple(range(20220905, 20220910))
CV_SEED = 20220905
CV_TEST_ITEMS = 40
CV_FEWEST_TEST_ITEMS = 10  # below this, cv folds are too small for their intervals to mean anything
EXTRAPOLATION_FRACTION = 0.1


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


def _groups(predictors: list[Predictor], share_fits: bool) -> list[tuple[Predictor, ...]]:
    if not share_fits:
        return [(p,) for p in predictors]
    groups: dict[tuple, list[Predictor]] = {}
    for p in predictors:
        key = ("ensemble", p.ensemble, p.features) if p.ensemble else ("single", p.name)
        groups.setdefault(key, []).append(p)
    return [tuple(sorted(group, key=lambda p: p.members)) for group in groups.values()]


def _by_budget(group: tuple[Predictor, ...], budgets, share_fits: bool, copies=frozenset()) -> list[tuple[int, tuple[int, ...]]]:
    """(budget whose features are read, budgets the fit stands for); budgets in `copies` are left out."""
    budgets = [b for b in budgets if (group[-1].name, b) not in copies]
    if not budgets:
        return []
    if share_fits and group[-1].features in BUDGET_FREE:
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
                     share_fits: bool = True, copies=frozenset()) -> list[Fit]:
    """One split, five seeds per predictor and budget."""
    train, test = split_rows(frame, protocol)
    fits = []
    for group in _groups(predictors, share_fits):
        for budget, stands_for in _by_budget(group, budgets, share_fits, copies):
            if share_fits and all(p.deterministic for p in group):
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
            share_fits: bool = True, copies=frozenset()) -> list[Fit]:
    """Every fold of every repeat, one seed per fold (CV_SEED + fold number)."""
    if len(frame) < 4:
        raise NaapError(f"the cv protocol needs at least 4 architectures; this dataset has {len(frame)}")
    splits = cv_splits(frame["MaxAccuracy"].to_numpy(), repeats)
    return [Fit("cv", budget, CV_SEED + fold, fold, group, (CV_SEED + fold,), np.sort(train), np.sort(test), stands_for)
            for group in _groups(predictors, share_fits) for budget, stands_for in _by_budget(group, budgets, share_fits, copies)
            for fold, (train, test) in enumerate(splits)]


def run_protocols(frame: pd.DataFrame, predictors: list[Predictor], budgets, protocols=PROTOCOLS,
                  repeats: int = 2, jobs: int = -1, share_fits: bool = True, progress: bool = True,
                  source: str = "dataset") -> Outcome:
    """Every fit of the protocols, run; see Outcome."""
    for budget in budgets:
        check_budget(frame, budget, source)
    target(frame, source)
    frame = sort_by_accuracy(frame)
    copies = copies_of(predictors, budgets) if share_fits else {}
    fits, notices = [], []
    for protocol in protocols:
        if protocol == "cv":
            fits += cv_fits(frame, predictors, budgets, repeats, share_fits, copies)
            test_items = max(len(test) for _, test in cv_splits(frame["MaxAccuracy"].to_numpy(), 1))
            if test_items < CV_FEWEST_TEST_ITEMS:
                notices.append(f"Cross-validation on {len(frame)} architectures: test folds of {test_items} items; "
                               "at this size the intervals mean nothing.")
        else:
            fits += fixed_split_fits(frame, protocol, predictors, budgets, share_fits, copies)
    results, predictions, skipped = run_fits(frame, fits, jobs, progress, source)
    order = ["protocol", "predictor", "budget", "seed", "fold"]
    results = _copied(results, copies, predictors).sort_values(order, ignore_index=True)
    predictions = _copied(predictions, copies, predictors).sort_values(order + ["true", "arch_id"], ignore_index=True)
    skipped = _copied(skipped, copies, predictors)
    return Outcome(results, predictions, skipped, notices)

