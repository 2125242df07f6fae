"""Predictions made outside naap (`naap leaderboard --predictions NAME=FILE`), checked against the
board's own splits (naap.board.folds) before any fit, and scored as a built-in predictor is.

A file holds one row per test row of every split of the board: protocol, budget, seed, fold (null
for the fixed-split protocols), arch_id and predicted. Any integer type does for the keys and any
floating type for `predicted` (R writes int32, pandas int64, and floats where a column has nulls),
whole numbers in floating columns too. A file that misses a test row, adds a
row, predicts a training row, repeats a key, holds a non-finite prediction or has another set of
columns is refused in one line naming the file and the first offending row.

Scoring goes through naap.board.fitting.run_fit, the path of every built-in predictor: the stand-in
estimator `Recorded` "fits" nothing and predicts the file's values, handed to it as its one feature
column, so the rows of results.parquet, predictions.parquet and the summary are made by the same
code (fit_seconds is the time of that empty fit).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from sklearn.base import BaseEstimator, RegressorMixin

from naap._io import read_provenance
from naap.board import features
from naap.board.fitting import Fit, run_fit
from naap.board.folds import KEYS, Split, split_table, splits
from naap.board.predictors import EXTERNAL as FAMILY, Predictor
from naap.board.protocols import Outcome, sort_by_accuracy
from naap.errors import NaapError, first_line

COLUMNS = KEYS + ["predicted"]
_NO_FOLD = -1  # fold of a fixed-split row, for matching keys (null in the files)


class Recorded(RegressorMixin, BaseEstimator):
    """Predicts the column `predicted` of what it is handed: predictions made elsewhere."""

    def fit(self, X, y):
        return self

    def predict(self, X):
        return X["predicted"].to_numpy()


def parse_spec(spec: str) -> tuple[str, Path]:
    """`NAME=FILE` -> (name, path): the name ends at the first '=' (a path may hold one, as in budget=3/)."""
    name, equals, file = spec.partition("=")
    if not equals or not name.strip() or not file:
        raise NaapError(f"--predictions {spec!r}: expected NAME=FILE, e.g. my-gnn=predictions.parquet")
    return name.strip(), Path(file)


def predictor(name: str, path: Path) -> Predictor:
    return Predictor(name, FAMILY, Recorded, features=FAMILY, deterministic=True, min_train_rows=1,
                     description=f"predictions made outside naap, read from {path.name}")


def _key(row) -> str:
    fold = "none" if row["fold"] == _NO_FOLD else row["fold"]
    return (f"protocol {row['protocol']!r}, budget {row['budget']}, seed {row['seed']}, fold {fold}, "
            f"arch_id {row['arch_id']}")


def _refuse_first(path: Path, rows: pd.DataFrame, bad, what: str) -> None:
    """One NaapError naming the first row (in key order) where `bad` holds."""
    if np.any(bad):
        first = rows[np.asarray(bad)].sort_values(KEYS).iloc[0]
        raise NaapError(f"{path}: row {_key(first)}: {what}")


def read_predictions(path: Path) -> pd.DataFrame:
    """The file's rows, its columns and types checked; fold null -> _NO_FOLD."""
    if not path.is_file():
        raise NaapError(f"{path}: file not found")
    read_provenance(path)  # refuses an unreadable file, or a footer larger than naap reads, before reading it
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise NaapError(f"{path}: not a readable Parquet file ({first_line(exc)})") from None
    missing = [c for c in COLUMNS if c not in table.column_names]
    extra = [c for c in table.column_names if c not in COLUMNS]
    if missing or extra:
        wrong = f"missing column {missing[0]!r}" if missing else f"column {extra[0]!r} is not one of"
        raise NaapError(f"{path}: {wrong} ({', '.join(COLUMNS)} expected)" if missing
                        else f"{path}: {wrong} {', '.join(COLUMNS)}")
    for name in COLUMNS:
        kind = table.schema.field(name).type
        if pa.types.is_dictionary(kind):  # an R factor
            kind = kind.value_type
        if name == "protocol":
            fits, need = pa.types.is_string(kind) or pa.types.is_large_string(kind), "text"
        elif name == "predicted":
            fits, need = pa.types.is_floating(kind), "floating-point"
        else:  # pandas reads an integer column with nulls (fold) as floats, and writes them back so
            fits, need = pa.types.is_integer(kind) or pa.types.is_floating(kind), "integer"
        if not fits:
            raise NaapError(f"{path}: column {name!r} has type {kind}, expected {need}")
        if name not in ("fold", "predicted") and table.column(name).null_count:  # a null prediction is a NaN
            raise NaapError(f"{path}: column {name!r} has {table.column(name).null_count} missing values")
    rows = table.select(COLUMNS).to_pandas()
    rows["protocol"] = rows["protocol"].astype(str)
    rows["fold"] = rows["fold"].astype(float).fillna(_NO_FOLD)
    for name in ("budget", "seed", "fold", "arch_id"):
        values = rows[name].to_numpy(dtype=float)
        whole = np.isfinite(values) & (values == np.round(values))
        if not whole.all():
            raise NaapError(f"{path}: column {name!r}: {float(values[~whole][0]):g} is not a whole number")
        rows[name] = rows[name].astype("int64")
    rows["predicted"] = rows["predicted"].astype(float)
    return rows


def check_predictions(path: Path, rows: pd.DataFrame, board: pd.DataFrame) -> pd.DataFrame:
    """Refuse what does not match `board` (split_table's rows, fold null -> _NO_FOLD); returns the
    predictions joined to their test rows."""
    _refuse_first(path, rows, ~np.isfinite(rows["predicted"].to_numpy()), "predicted is not a finite number")
    _refuse_first(path, rows, rows.duplicated(KEYS, keep=False), "appears more than once")
    joined = rows.merge(board, on=KEYS, how="left", validate="one_to_one")
    _refuse_first(path, joined, joined["role"].isna(), "not a row of this board (its protocols, budgets and "
                  "cv repeats must be those `naap folds` was given)")
    _refuse_first(path, joined, joined["role"] == "train", "a training row of its split: predict the test rows only")
    tests = board[board["role"] == "test"].merge(rows[KEYS], on=KEYS, how="left", indicator=True)
    _refuse_first(path, tests, tests["_merge"] == "left_only", "a test row with no prediction")
    return joined


def _scored(spec: str, frame: pd.DataFrame, budgets, chosen: list[Split], board: pd.DataFrame, taken: set[str],
            source: str) -> tuple[Predictor, pd.DataFrame, pd.DataFrame]:
    """One --predictions NAME=FILE read, checked and scored: its predictor, results and predictions rows."""
    name, path = parse_spec(spec)
    if name in taken:
        raise NaapError(f"--predictions {spec!r}: the name {name!r} is taken by another predictor")
    taken.add(name)
    joined = check_predictions(path, read_predictions(path), board)
    made = predictor(name, path)
    y = features.target(frame, source).to_numpy()
    arch_ids = frame["ModelId"].to_numpy()
    horizon = features.recorded_epochs(frame)
    by_key = {(s.protocol, s.seed, _NO_FOLD if s.fold is None else s.fold): s for s in chosen}
    rows, predictions = [], []
    for (protocol, budget, seed, fold), mine in joined.groupby(["protocol", "budget", "seed", "fold"]):
        split = by_key[(protocol, seed, fold)]
        values = np.full(len(frame), np.nan)
        values[mine["position"].to_numpy()] = mine["predicted"].to_numpy()
        X = pd.DataFrame({"predicted": values})
        fit = Fit(protocol, int(budget), int(seed), split.fold, (made,), (int(seed),), split.train, split.test,
                  (int(budget),))
        fit_rows, fit_predictions, _ = run_fit(fit, X.iloc[split.train], y[split.train], X.iloc[split.test],
                                               y[split.test], arch_ids[split.test], horizon)
        rows += fit_rows
        predictions += fit_predictions
    return made, pd.DataFrame(rows), pd.concat(predictions, ignore_index=True)


def rank(specs: list[str], frame: pd.DataFrame, budgets, protocols, repeats: int, taken: set[str],
         source: str = "dataset") -> tuple[list[Predictor], pd.DataFrame, pd.DataFrame]:
    """Every --predictions NAME=FILE of `specs` read, checked against the board's splits of
    `frame` and scored (cheap: nothing is fitted); their predictors, results and predictions rows."""
    if not specs:
        return [], pd.DataFrame(), pd.DataFrame()
    for budget in budgets:
        features.check_budget(frame, budget, source)
    frame, taken = sort_by_accuracy(frame), set(taken)
    chosen = splits(frame, protocols, repeats)
    board = split_table(frame, chosen, budgets)
    board["fold"] = board["fold"].fillna(_NO_FOLD).astype("int64")
    made, results, predictions = zip(*(_scored(spec, frame, budgets, chosen, board, taken,
                                               source) for spec in specs))
    return list(made), pd.concat(results, ignore_index=True), pd.concat(predictions, ignore_index=True)


def with_external(outcome: Outcome, results: pd.DataFrame, predictions: pd.DataFrame) -> Outcome:
    """The protocols' outcome with the external rows added, in its order."""
    if results.empty:
        return outcome
    order = ["protocol", "predictor", "budget", "seed", "fold"]
    # with no built-in predictor the outcome's frames are empty: the file's rows alone keep their dtypes
    joined = [pd.concat([ours, theirs], ignore_index=True) if len(ours) else theirs
              for ours, theirs in ((outcome.results, results), (outcome.predictions, predictions))]
    return outcome._replace(results=joined[0].sort_values(order, ignore_index=True),
                            predictions=joined[1].sort_values(order + ["true", "arch_id"], ignore_index=True))
