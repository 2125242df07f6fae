"""The protocols' splits as one Parquet file (`naap folds`), for predictors fitted outside naap:
in R, Julia, JAX, on a GPU elsewhere. Their predictions come back through
`naap leaderboard --predictions` (naap.board.external).

One row per protocol, budget, seed, fold and architecture, in one table so that a user filters it
and has a training set: `role` (train or test), `target` (MaxAccuracy) on training rows only,
never on test rows, and every feature column a built-in feature set reads at that budget
(naap.board.features; null where the budget does not allow it, e.g. e5Accuracy at budget 3). A
column read by several sets has one value (the sets agree; tested). The file's provenance metadata
lists the columns of each feature set at each budget (`feature_sets`).

Within a split the training rows come first, in the order the built-in predictors receive them
(ascending target, ties by arch_id: a random forest's bootstrap depends on it), then the test rows
by arch_id (an order that says nothing about their targets).
"""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa

from naap._io import read_provenance, write_parquet
from naap.bench.tables import PROXIES, load_proxies, load_tables
from naap.board import features
from naap.board.protocols import CV_SEED, PAPER_SEEDS, cv_splits, sort_by_accuracy, split_rows
from naap.errors import NaapError

WRITER = "naap folds"  # the provenance's `written_by`: naap overwrites only a file saying this
KEY_FIELDS = [pa.field("protocol", pa.string(), nullable=False), pa.field("budget", pa.int16(), nullable=False),
              pa.field("seed", pa.int64(), nullable=False), pa.field("fold", pa.int32(), nullable=True),
              pa.field("arch_id", pa.int32(), nullable=False)]
KEYS = [field.name for field in KEY_FIELDS]


class Split(NamedTuple):
    """One training/test split scored under one seed: positions in sort_by_accuracy(frame)."""
    protocol: str
    seed: int
    fold: int | None
    train: np.ndarray
    test: np.ndarray


def splits(frame: pd.DataFrame, protocols, repeats: int) -> list[Split]:
    """Every split the protocols score (naap.board.protocols): a fixed split once per seed, each cv fold
    with its seed CV_SEED + fold. `frame` is sorted by accuracy (sort_by_accuracy). These are the
    rows of protocols.fixed_split_fits and cv_fits (tests/board/test_folds.py's round trip holds them equal)."""
    listed = []
    for protocol in protocols:
        if protocol == "cv":
            if len(frame) < 4:
                raise NaapError(f"the cv protocol needs at least 4 architectures; this dataset has {len(frame)}")
            listed += [Split("cv", CV_SEED + fold, fold, np.sort(train), np.sort(test))
                       for fold, (train, test) in enumerate(cv_splits(frame["MaxAccuracy"].to_numpy(), repeats))]
        else:
            train, test = split_rows(frame, protocol)
            listed += [Split(protocol, seed, None, train, test) for seed in PAPER_SEEDS]
    return listed


def split_table(frame: pd.DataFrame, chosen: list[Split], budgets) -> pd.DataFrame:
    """KEYS, `role` and `position` (in `frame`) of every row of every split at every budget, in
    the file's order: training rows in frame order, then the test rows by arch_id."""
    arch_ids = frame["ModelId"].to_numpy()
    parts = []
    for budget in budgets:
        for split in chosen:
            test = split.test[np.argsort(arch_ids[split.test], kind="stable")]
            positions = np.concatenate([split.train, test])
            parts.append(pd.DataFrame({"protocol": split.protocol, "budget": budget, "seed": split.seed,
                                       "fold": split.fold, "arch_id": arch_ids[positions],
                                       "role": ["train"] * len(split.train) + ["test"] * len(test),
                                       "position": positions}))
    table = pd.concat(parts, ignore_index=True)
    table["fold"] = table["fold"].astype("Int32")
    return table


def feature_columns(frame: pd.DataFrame, budget: int, source: str) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """Every column a feature set reads at `budget` (one copy of a column read by several), and
    the columns of each set. The proxy sets only where the frame has the proxies."""
    has_proxies = all(name in frame.columns for name in PROXIES)
    columns, sets = {}, {}
    for name in features.FEATURE_SETS:
        if name in features.PROXY_SETS and not has_proxies:
            continue
        matrix = features.build_features(frame, name, budget, source)
        sets[name] = list(matrix.columns)
        for column in matrix.columns:
            columns.setdefault(column, matrix[column])
    return pd.DataFrame(columns), sets


def board_frame(data_dir: Path) -> tuple[pd.DataFrame, list[int]]:
    """The leaderboard's frame of a dataset folder (its proxies joined where it has them), sorted by
    accuracy, and the ModelIds left out (no finished epoch), as `naap leaderboard` builds it."""
    source = str(data_dir)
    proxies = load_proxies(data_dir)
    frame = features.wide_frame(load_tables(data_dir), None if proxies is None else proxies[0], source)
    frame, excluded = features.complete_curves(frame)
    if len(frame) < 2:
        raise NaapError(f"{source}: {len(frame)} architecture(s) with a finished epoch: no split to write")
    features.target(frame, source)
    return sort_by_accuracy(frame), excluded


def check_out(out: Path) -> None:
    """--out is a new .parquet file, or one `naap folds` wrote (its provenance says so)."""
    if out.suffix != ".parquet":
        raise NaapError(f"--out {out}: must end in .parquet")
    if out.is_dir():
        raise NaapError(f"--out {out}: is a directory")
    if out.exists():
        try:
            written_by = read_provenance(out).get("written_by")
        except NaapError:
            written_by = None
        if written_by != WRITER:
            raise NaapError(f"--out {out}: exists and was not written by `naap folds`; give a new file")


def write_folds(data_dir: Path, out: Path, budgets, protocols, repeats: int) -> pd.DataFrame:
    """Write the folds file of `data_dir` into `out` (see the module's docstring); returns its rows."""
    check_out(out)
    source = str(data_dir)
    frame, excluded = board_frame(data_dir)
    for budget in budgets:
        features.check_budget(frame, budget, source)
    table = split_table(frame, splits(frame, protocols, repeats), budgets)
    target = features.target(frame, source).to_numpy()
    table["target"] = np.where(table["role"] == "train", target[table["position"].to_numpy()], np.nan)
    parts, feature_sets = [], {}
    for budget in budgets:
        matrix, sets = feature_columns(frame, budget, source)
        rows = table["budget"] == budget
        parts.append(matrix.iloc[table.loc[rows, "position"]].reset_index(drop=True))
        for name, columns in sets.items():
            feature_sets.setdefault(name, {})[str(budget)] = columns
    names = list(dict.fromkeys(c for part in parts[::-1] for c in part.columns))  # the largest budget's order
    matrix = pd.concat(parts, ignore_index=True).reindex(columns=names)
    rows = pd.concat([table.drop(columns="position"), matrix], axis=1)
    schema = pa.schema(KEY_FIELDS + [pa.field("role", pa.string(), nullable=False),
                                     pa.field("target", pa.float64(), nullable=True)]
                       + [pa.field(name, pa.float64(), nullable=True) for name in names])
    provenance = {"written_by": WRITER, "dataset": source,
                  "dataset_provenance": read_provenance(data_dir / "architectures.parquet"),
                  "protocols": list(protocols), "budgets": list(budgets), "cv_repeats": repeats,
                  "excluded_architectures": excluded, "feature_sets": feature_sets}
    write_parquet(rows, out, schema, provenance)
    return rows
