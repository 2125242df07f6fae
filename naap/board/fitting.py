"""Running the protocols' fits: each one estimator fit on its rows, in parallel worker processes
(joblib), seeded, on one BLAS thread, and stopped cleanly (workers killed) on an interrupt.

What a predictor is handed carries nothing but the features: the index is reset to 0..n-1 and
the test rows are shuffled (a permutation seeded with the fit's seed), the predictions mapped
back after.
"""
from __future__ import annotations

import contextlib
import os
import random
import signal
import threading
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from joblib.externals.loky import get_reusable_executor
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from naap.board import metrics
from naap.board.features import build_features, recorded_epochs, target
from naap.board.predictors import Predictor, predict_members
from naap.errors import NaapError


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
