"""Feature sets with a budget: what a predictor may see after k epochs of training.

The input (`wide_frame`) is the published CSV's wide layout (tables.to_wide, one row per
architecture, columns e{i}LossMean / e{i}LossMedian / e{i}Accuracy) plus e{i}LearningRate, the
scheme columns NumSkipConnections and NumPartialRFLayers, the per-layer encoding of
naap.board.encodings (L{i}Kernel, L{i}Width, L{i}Stride, L{i}Residual, ReceptiveField) and, where the
dataset has DIR/proxies.parquet, the zero-cost proxies. A budget of k epochs reads only epochs
1..k, and must be below the number of epochs recorded (the last epoch's curve is the target's).
NumParams and NumMACs enter as natural logarithms.

- `paper`: the paper's features (docs/benchmark.md). Budget 0 is "Scheme" (NumParams, NumStages); budget k is
  "Scheme + Quantitative k epochs" (six scheme columns, then LossMean, LossMedian, Accuracy per epoch).
- `curve`: every scheme column, the curves of test accuracy and mean training loss, their first and
  second differences (as LcSVR uses them) and summary statistics of the curve so far.
- `accuracy`: every scheme column and the test accuracy of each epoch (for curve extrapolation).
- `arch`: the per-layer encoding, ReceptiveField, NumSkipConnections, NumPartialRFLayers,
  NumParams, NumMACs, NumLayers, NumStages. The same at every budget.
- `arch-curve`: `arch`, and from budget 1 on a short curve summary (CURVE_SUMMARY).
- `proxies`: the six zero-cost proxies (synflow, snip and grad_norm as logarithms). Budget-free.
- `arch-proxies`: `arch` and `proxies`. Budget-free.

Diverged runs (a rebuilt dataset): a run that diverged stops recording epochs; its curve is
carried forward from its last finished epoch (`complete_curves`), and an architecture whose run
finished no epoch at all has no curve and is left out (with a count). The target is the
dataset's max_accuracy as it stands (for a rebuild: the best finished epoch, averaged over seeds).
"""
from __future__ import annotations

import itertools
import re

import numpy as np
import pandas as pd

from naap.bench.tables import PROXIES, Tables, main_seed, to_wide
from naap.board.curves import extrapolate_curves
from naap.board.encodings import encode_layers, layer_columns
from naap.errors import NaapError

PAPER_SCHEME_COLUMNS = ("NumParams", "NumStages")
SCHEME_COLUMNS = ("NumParams", "NumMACs", "NumLayers", "NumStages", "FirstLayerWidth", "LastLayerWidth")
EXTRA_SCHEME_COLUMNS = ("NumSkipConnections", "NumPartialRFLayers")
EPOCH_COLUMNS = ("LossMean", "LossMedian", "Accuracy")
ARCH_DERIVED_COLUMNS = ("ReceptiveField", "NumSkipConnections", "NumPartialRFLayers", "NumParams", "NumMACs",
                        "NumLayers", "NumStages")
CURVE_SUMMARY = ("BestAccuracy", "LogLastLossMean", "CycleAccuracyGain", "CycleLossDrop", "Pow3Extrapolation")
LOG_COLUMNS = ("NumParams", "NumMACs")
TARGET = "MaxAccuracy"
_EPOCH_ACCURACY = re.compile(r"e(\d+)Accuracy")
_EPOCH_COLUMN = re.compile(r"e(\d+)(LossMean|LossMedian|Accuracy|LearningRate)")

LOG_PROXIES = ("synflow", "snip", "grad_norm")  # positive, spanning orders of magnitude


def wide_frame(tables: Tables, proxies: pd.DataFrame | None = None, source: str = "dataset") -> pd.DataFrame:
    """The leaderboard's input, in ModelId order: to_wide's columns (the main seed's curves),
    e{i}LearningRate, NumSkipConnections, NumPartialRFLayers, the layer encoding and the proxies."""
    architectures, epochs = tables
    if epochs.empty:
        raise NaapError(f"{source}: epochs.parquet: no epoch rows: every run diverged before finishing an epoch "
                        f"({len(architectures)} architectures), nothing to rank")
    extra = architectures[["arch_id", "num_skip_connections", "num_partial_rf_layers"]].rename(
        columns={"arch_id": "ModelId", "num_skip_connections": "NumSkipConnections",
                 "num_partial_rf_layers": "NumPartialRFLayers"})
    extra = pd.concat([extra, encode_layers(architectures["layers"])], axis=1)
    if proxies is not None:
        extra = extra.merge(proxies.rename(columns={"arch_id": "ModelId"}), on="ModelId", how="left")
    frame = to_wide(tables)
    rates = epochs[epochs["seed"] == main_seed(epochs)].pivot(index="arch_id", columns="epoch", values="lr")
    rates.columns = [f"e{e}LearningRate" for e in rates.columns]
    return frame.merge(rates, left_on="ModelId", right_index=True, how="left").merge(extra, on="ModelId", how="left")


def complete_curves(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[int]]:
    """Carry each curve forward from its last finished epoch (a run that diverged stops
    recording), and leave out the architectures without a finished epoch. Returns the frame and
    the ModelIds left out."""
    by_kind: dict[str, list[tuple[int, str]]] = {}
    for name in frame.columns:
        if m := _EPOCH_COLUMN.fullmatch(str(name)):
            by_kind.setdefault(m.group(2), []).append((int(m.group(1)), name))
    frame = frame.copy()
    for kind, columns in by_kind.items():
        ordered = [name for _, name in sorted(columns)]
        frame[ordered] = frame[ordered].ffill(axis=1)
    no_epoch = frame["e1Accuracy"].isna() if "e1Accuracy" in frame.columns else pd.Series(False, frame.index)
    return frame[~no_epoch].reset_index(drop=True), frame.loc[no_epoch, "ModelId"].astype(int).tolist()


def _accuracy_epochs(columns) -> dict[int, str]:
    """epoch: name of each e{epoch}Accuracy column among `columns`."""
    return {int(m.group(1)): name for name in map(str, columns) if (m := _EPOCH_ACCURACY.fullmatch(name))}


def recorded_epochs(frame: pd.DataFrame) -> int:
    """The number of consecutive epochs 1..n with an accuracy column."""
    present = _accuracy_epochs(frame.columns)
    return next(n for n in itertools.count() if n + 1 not in present)


def check_budget(frame: pd.DataFrame, budget: int, source: str = "dataset") -> None:
    """A budget is 0 to recorded epochs - 1: at the last epoch the curve holds the target."""
    available = recorded_epochs(frame)
    if budget < 0 or budget >= available:
        columns = f"columns e1Accuracy..e{available}Accuracy" if available else "no column e1Accuracy"
        raise NaapError(f"{source}: budget of {budget} epochs: must be at least 0 and below the {available} epochs "
                        f"recorded ({columns}; the last epoch's curve holds the target MaxAccuracy)")


def _select(frame: pd.DataFrame, columns, source: str, logs=LOG_COLUMNS) -> pd.DataFrame:
    """`columns` of `frame` as floats, those among `logs` as natural logarithms; a missing column
    or value, or a non-positive one to take the logarithm of, is a NaapError naming `source`, the
    column and the ModelId."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise NaapError(f"{source}: missing column '{missing[0]}'")
    selected = frame[list(columns)].astype(float)
    incomplete = ~np.isfinite(selected.to_numpy()).all(axis=1)
    if incomplete.any():
        row = selected.index[incomplete][0]
        column = selected.columns[~np.isfinite(selected.loc[row].to_numpy())][0]
        raise NaapError(f"{source}: ModelId {_model_of(frame, row)} has no finite value in column '{column}'")
    for name in logs:
        if name in selected.columns:
            if (selected[name] <= 0).any():
                row = selected.index[selected[name] <= 0][0]
                raise NaapError(f"{source}: ModelId {_model_of(frame, row)}: column '{name}' must be positive "
                                f"to take its logarithm, got {selected.loc[row, name]:g}")
            selected[name] = np.log(selected[name])
    return selected


def _model_of(frame: pd.DataFrame, row) -> object:
    """The ModelId of `frame`'s row labelled `row` (the label itself where there is no ModelId)."""
    return frame.loc[row, "ModelId"] if "ModelId" in frame.columns else row


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


def arch_features(frame: pd.DataFrame, budget: int = 0, source: str = "dataset") -> pd.DataFrame:
    depth = len([c for c in frame.columns if re.fullmatch(r"L\d+Kernel", str(c))])
    return _select(frame, tuple(layer_columns(depth)) + ARCH_DERIVED_COLUMNS, source)


def curve_summary(frame: pd.DataFrame, budget: int, source: str = "dataset") -> pd.DataFrame:
    """CURVE_SUMMARY after `budget` (>= 1) epochs: the best accuracy so far, log of the last mean
    training loss, the accuracy gained and the loss lost over the last learning-rate cycle so far
    (a cycle starts where the learning rate goes up, and at epoch 1; from its first epoch to the
    budget's) and the pow3 extrapolation of the best-so-far accuracy to the last recorded epoch
    (naap.board.curves)."""
    accuracy = _select(frame, _epoch_columns(budget, ("Accuracy",)), source).to_numpy()
    loss = _select(frame, _epoch_columns(budget, ("LossMean",)), source).to_numpy()
    rate = _select(frame, _epoch_columns(budget, ("LearningRate",)), source).to_numpy()
    restarts = np.column_stack([np.ones(len(rate), bool), rate[:, 1:] > rate[:, :-1]])
    start = budget - 1 - np.argmax(restarts[:, ::-1], axis=1)  # the last restart, 0-based
    rows = np.arange(len(rate))
    if (loss[:, -1] <= 0).any():
        row = frame.index[np.flatnonzero(loss[:, -1] <= 0)[0]]
        raise NaapError(f"{source}: ModelId {_model_of(frame, row)}: e{budget}LossMean must be positive")
    return pd.DataFrame({"BestAccuracy": accuracy.max(axis=1), "LogLastLossMean": np.log(loss[:, -1]),
                         "CycleAccuracyGain": accuracy[:, -1] - accuracy[rows, start],
                         "CycleLossDrop": loss[rows, start] - loss[:, -1],
                         "Pow3Extrapolation": extrapolate_curves(accuracy, recorded_epochs(frame))[:, 0]},
                        index=frame.index)


def arch_curve_features(frame: pd.DataFrame, budget: int, source: str = "dataset") -> pd.DataFrame:
    arch = arch_features(frame, budget, source)
    return arch if budget == 0 else pd.concat([arch, curve_summary(frame, budget, source)], axis=1)


def proxy_features(frame: pd.DataFrame, budget: int = 0, source: str = "dataset") -> pd.DataFrame:
    if any(name not in frame.columns for name in PROXIES):
        raise NaapError(f"{source}: no zero-cost proxies (write them with `naap proxies {source} --data-free`)")
    return _select(frame, PROXIES, source, logs=LOG_PROXIES)


def arch_proxy_features(frame: pd.DataFrame, budget: int = 0, source: str = "dataset") -> pd.DataFrame:
    return pd.concat([arch_features(frame, budget, source), proxy_features(frame, budget, source)], axis=1)


FEATURE_SETS = {"paper": paper_features, "curve": curve_features, "accuracy": accuracy_features,
                "arch": arch_features, "arch-curve": arch_curve_features, "proxies": proxy_features,
                "arch-proxies": arch_proxy_features}
BUDGET_FREE = frozenset({"arch", "proxies", "arch-proxies"})  # the same columns at every budget
PROXY_SETS = ("proxies", "arch-proxies")  # the sets a dataset without DIR/proxies.parquet cannot give
_SAME_AT_BUDGET_0 = {"arch-curve": "arch", "accuracy": "curve"}  # no curve yet: the same columns


def same_matrix(name: str, budget: int) -> tuple[str, int]:
    """A (feature set, budget) whose matrix equals that of `name` at `budget` (tests check it):
    budget-free sets at any budget are the set at 0; at 0 arch-curve is arch and accuracy is curve."""
    if name in BUDGET_FREE:
        return name, 0
    return (_SAME_AT_BUDGET_0.get(name, name), 0) if budget == 0 else (name, budget)


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
    values = frame[TARGET].astype(float) if TARGET in frame.columns else None
    if values is None:
        raise NaapError(f"{source}: missing column '{TARGET}'")
    bad = ~np.isfinite(values.to_numpy())
    if bad.any():
        raise NaapError(f"{source}: architectures.parquet: max_accuracy (the target, {TARGET}): "
                        f"ModelId {_model_of(frame, values.index[bad][0])} has no finite value")
    return values
