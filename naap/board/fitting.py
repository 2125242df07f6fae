"""Running the protocols' fits: each one estimator fit on its rows, in worker processes (loky,
joblib's executor; one worker for --jobs 1, so that a predictor that ends its process cannot end
naap's), seeded, on one BLAS thread, and stopped cleanly (workers killed) on an interrupt.

What a predictor is handed carries nothing but the features: the index is reset to 0..n-1 and
the test rows are shuffled (a permutation seeded with the fit's seed), the predictions mapped
back after.
"""
from __future__ import annotations

import contextlib
import os
import random
import re
import signal
import threading
import time
from concurrent.futures import FIRST_COMPLETED, wait
from dataclasses import dataclass

import numpy as np
import pandas as pd
from joblib import cpu_count
from joblib.externals.loky import get_reusable_executor
from joblib.externals.loky.process_executor import BrokenProcessPool
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from naap.board import metrics
from naap.board.features import build_features, recorded_epochs, target
from naap._signals import raise_interrupt
from naap.board.predictors import Predictor, predict_members, raised
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
        except BaseException as exc:  # a predictor's own failure (a plug-in's, say), whatever it raises: one line
            raise NaapError(f"predictor '{fitted.name}' failed {where}: {raised(exc)}") from None
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


# Killed workers leave semaphores and folders behind, which loky's resource tracker (a process
# of its own, started with the first pool) removes after naap has exited, with a UserWarning per
# item on the user's terminal: noise after the one line naap prints. Its warnings start thus.
TRACKER_WARNINGS = "ignore:resource_tracker:UserWarning"


@contextlib.contextmanager
def _workers_ended_on_interrupt(executor):
    """While the fits run: SIGTERM and SIGHUP (a closed terminal), where nothing else handles them,
    interrupt like Ctrl-C; on any interruption or error the worker processes are killed (a hanging
    fit included), not left behind."""
    main = threading.current_thread() is threading.main_thread()
    install = [s for s in (signal.SIGTERM, signal.SIGHUP) if main and signal.getsignal(s) == signal.SIG_DFL]
    for s in install:
        signal.signal(s, raise_interrupt)
    try:
        yield
    except BaseException:
        # this executor, not get_reusable_executor(): called with another size, that one waits
        # for the running fits to finish (forever, for a hanging one) before it resizes
        executor.shutdown(wait=True, kill_workers=True)  # SIGKILL: the wait is short
        raise
    finally:
        for s in install:
            signal.signal(s, signal.SIG_DFL)


def workers(jobs: int, fits: int) -> int:
    """The worker processes for `jobs` (-1: one per core): never more than the fits or the cores."""
    cores = cpu_count()
    return max(1, min(cores if jobs < 0 else jobs, cores, fits))


def _died(exc: BaseException, in_flight: list[Fit], count: int) -> NaapError:
    """One line for a worker that ended without a result (os._exit, a crash, the kernel's OOM
    killer). The fit that ended it is one of those in flight (`count` + 1 at most, in the order
    they were submitted); with one worker, the first of them, the one it was running."""
    codes = re.search(r"exit codes of the workers are \{([^}]*)\}", str(exc))
    suspects = list(dict.fromkeys(fit.predictors[-1].name for fit in in_flight[:1 if count == 1 else None]))
    return NaapError(f"a worker process ended without a result ({f'exit code {codes[1]}; ' if codes else ''}"
                     f"os._exit, a crash or out of memory) while fitting predictor "
                     f"{' or '.join(repr(name) for name in suspects)}; nothing was written")


def run_fits(frame: pd.DataFrame, fits: list[Fit], jobs: int = -1, progress: bool = True,
             source: str = "dataset") -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Run the fits in worker processes: `jobs` of them (-1: one per core), at most one per fit
    and per core; 1 = one after another, in one worker."""
    y = target(frame, source).to_numpy()
    arch_ids = frame["ModelId"].to_numpy()
    horizon = recorded_epochs(frame)
    matrices = {key: build_features(frame, *key, source=source)
                for key in {(fit.predictors[-1].features, fit.budget) for fit in fits}}

    def task(fit: Fit):
        X = matrices[(fit.predictors[-1].features, fit.budget)]
        return (fit, X.iloc[fit.train], y[fit.train], X.iloc[fit.test], y[fit.test], arch_ids[fit.test], horizon)

    ordered = sorted(fits, key=_cost, reverse=True)
    count = workers(jobs, len(ordered))
    rows, predictions, skipped = [], [], []
    if TRACKER_WARNINGS not in os.environ.get("PYTHONWARNINGS", ""):  # before the workers start
        os.environ["PYTHONWARNINGS"] = ",".join(filter(None, [os.environ.get("PYTHONWARNINGS"), TRACKER_WARNINGS]))
    executor = get_reusable_executor(max_workers=count)
    with tqdm(total=len(ordered), desc="fits", unit="fit", disable=not progress) as bar, \
            _workers_ended_on_interrupt(executor):
        queue, in_flight = iter(enumerate(ordered)), {}

        def submit_next():
            # at most one fit queued beside each worker's (as joblib dispatches): a shutdown on an
            # interrupt then finds no long queue inside loky to race with
            for i, fit in queue:
                in_flight[executor.submit(run_fit, *task(fit))] = i
                return

        for _ in range(count + 1):
            submit_next()
        try:
            while in_flight:
                for future in wait(in_flight, return_when=FIRST_COMPLETED).done:
                    fit_rows, fit_predictions, fit_skipped = future.result()
                    del in_flight[future]
                    rows += fit_rows
                    predictions += fit_predictions
                    skipped += fit_skipped
                    bar.update()
                    submit_next()
        except BrokenProcessPool as exc:
            raise _died(exc, [ordered[i] for i in sorted(in_flight.values())], count) from None
    order = ["protocol", "predictor", "budget", "seed", "fold"]
    results = pd.DataFrame(rows, columns=None if rows else order).sort_values(order, ignore_index=True)
    predictions = (pd.concat(predictions, ignore_index=True).sort_values(order + ["true", "arch_id"], ignore_index=True)
                   if predictions else pd.DataFrame(columns=order + ["arch_id", "true", "predicted"]))
    skipped = pd.DataFrame(skipped, columns=["protocol", "predictor", "budget", "reason"])
    return results, predictions, skipped.drop_duplicates(["protocol", "predictor", "budget"], ignore_index=True)
