"""Feature sets with a budget: what a predictor may see after k epochs of training.

The input is the published CSV's wide layout (tables.to_wide, one row per architecture, columns
e{i}LossMean / e{i}LossMedian / e{i}Accuracy) plus NumSkipConnections and NumPartialRFLayers.
A budget of k epochs reads only epochs 1..k. NumParams and NumMACs enter as natural logarithms.

- `paper`: SPEC section 6. Budget 0 is "Scheme" (NumParams, NumStages); budget k is
  "Scheme + Quantitative k epochs" (six scheme columns, then LossMean, LossMedian, Accuracy per epoch).
- `curve`: every scheme column, the curves of test accuracy and mean training loss, their first and
  second differences (as LcSVR uses them) and summary statistics of the curve so far.
- `accuracy`: every scheme column and the test accuracy of each epoch (for curve extrapolation).
"""
from __future__ import annotations

import itertools
import re

import numpy as np
import pandas as pd

from naap.errors import NaapError
from naap.tables import Tables, to_wide

PAPER_SCHEME_COLUMNS = ("NumParams", "NumStages")
SCHEME_COLUMNS = ("NumParams", "NumMACs", "NumLayers", "NumStages", "FirstLayerWidth", "LastLayerWidth")
EXTRA_SCHEME_COLUMNS = ("NumSkipConnections", "NumPartialRFLayers")
EPOCH_COLUMNS = ("LossMean", "LossMedian", "Accuracy")
LOG_COLUMNS = ("NumParams", "NumMACs")
TARGET = "MaxAccuracy"
_EPOCH_ACCURACY = re.compile(r"e(\d+)Accuracy")


def wide_frame(tables: Tables) -> pd.DataFrame:
    """The leaderboard's input: the wide layout with the two extra scheme columns, in ModelId order."""
    extra = tables.architectures[["arch_id", "num_skip_connections", "num_partial_rf_layers"]].rename(
        columns={"arch_id": "ModelId", "num_skip_connections": "NumSkipConnections",
                 "num_partial_rf_layers": "NumPartialRFLayers"})
    return to_wide(tables).merge(extra, on="ModelId", how="left")


def _accuracy_epochs(columns) -> dict[int, str]:
    """epoch: name of each e{epoch}Accuracy column among `columns`."""
    return {int(m.group(1)): name for name in map(str, columns) if (m := _EPOCH_ACCURACY.fullmatch(name))}


def recorded_epochs(frame: pd.DataFrame) -> int:
    """The number of consecutive epochs 1..n with an accuracy column."""
    present = _accuracy_epochs(frame.columns)
    return next(n for n in itertools.count() if n + 1 not in present)


def check_budget(frame: pd.DataFrame, budget: int, source: str = "dataset") -> None:
    available = recorded_epochs(frame)
    if budget < 0 or budget > available:
        columns = f"columns e1Accuracy..e{available}Accuracy" if available else "no column e1Accuracy"
        raise NaapError(f"{source}: budget of {budget} epochs is outside the {available} epochs recorded ({columns})")


def _select(frame: pd.DataFrame, columns, source: str) -> pd.DataFrame:
    """`columns` of `frame` as floats, NumParams and NumMACs as logarithms; a missing column or value
    is a NaapError naming `source`, the column and the ModelId."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise NaapError(f"{source}: missing column '{missing[0]}'")
    selected = frame[list(columns)].astype(float)
    incomplete = selected.isna().any(axis=1)
    if incomplete.any():
        row = selected.index[incomplete][0]
        column = selected.columns[selected.loc[row].isna()][0]
        model = frame.loc[row, "ModelId"] if "ModelId" in frame.columns else row
        raise NaapError(f"{source}: ModelId {model} has no value in column '{column}'")
    for name in LOG_COLUMNS:
        if name in selected.columns:
            selected[name] = np.log(selected[name])
    return selected


def _epoch_columns(budget: int, kinds=EPOCH_COLUMNS) -> list[str]:
    return [f"e{i}{kind}" for i in range(1, budget + 1) for kind in kinds]


def paper_features(frame: pd.DataFrame, budget: int, source: str = "dataset") -> pd.DataFrame:
    if budget == 0:
        return _select(frame, PAPER_SCHEME_COLUMNS, source)
    return _select(frame, SCHEME_COLUMNS + tuple(_epoch_columns(budget)), source)


def curve_features(frame: pd.DataFrame, budget: int, source: str = "dataset") -> pd.DataFrame:
    scheme = _select(frame, SCHEME_COLUMNS + EXTRA_SCHEME_COLUMNS, source)
    if budget == 0:
        return scheme
    accuracy = _select(frame, _epoch_columns(budget, ("Accuracy",)), source)
    loss = _select(frame, _epoch_columns(budget, ("LossMean",)), source)
    parts = [scheme, accuracy, loss]
    for order in (1, 2):
        if budget > order:
            for curve, kind in ((accuracy, "Accuracy"), (loss, "LossMean")):
                diff = np.diff(curve.to_numpy(), n=order, axis=1)
                names = [f"e{i}{kind}Diff{order}" for i in range(order + 1, budget + 1)]
                parts.append(pd.DataFrame(diff, index=frame.index, columns=names))
    acc, los = accuracy.to_numpy(), loss.to_numpy()
    parts.append(pd.DataFrame({"BestAccuracy": acc.max(axis=1), "MeanAccuracy": acc.mean(axis=1),
                               "LastAccuracy": acc[:, -1], "MinLossMean": los.min(axis=1),
                               "LastLossMean": los[:, -1]}, index=frame.index))
    return pd.concat(parts, axis=1)


def accuracy_features(frame: pd.DataFrame, budget: int, source: str = "dataset") -> pd.DataFrame:
    return _select(frame, SCHEME_COLUMNS + EXTRA_SCHEME_COLUMNS + tuple(_epoch_columns(budget, ("Accuracy",))), source)


FEATURE_SETS = {"paper": paper_features, "curve": curve_features, "accuracy": accuracy_features}


def build_features(frame: pd.DataFrame, name: str, budget: int, source: str = "dataset") -> pd.DataFrame:
    """The feature set `name` after `budget` epochs, one row per row of `frame` (same index)."""
    if name not in FEATURE_SETS:
        raise NaapError(f"unknown feature set '{name}' (known: {', '.join(FEATURE_SETS)})")
    check_budget(frame, budget, source)
    return FEATURE_SETS[name](frame, budget, source)


def accuracy_columns(columns) -> list[str]:
    """The e{i}Accuracy columns among `columns`, in epoch order."""
    return [name for _, name in sorted(_accuracy_epochs(columns).items())]


def target(frame: pd.DataFrame, source: str = "dataset") -> pd.Series:
    return _select(frame, (TARGET,), source)[TARGET]
