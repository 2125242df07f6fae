"""The Parquet layout of a dataset directory: explicit schemas, atomic writes, validated reads.

    DIR/architectures.parquet   one row per architecture
    DIR/epochs.parquet          one row per architecture, seed and epoch (1-based)
    DIR/DATASET.md              a short human-readable card

Provenance (source, recipe, versions, ...) is JSON under the Parquet metadata key
`naap.provenance` of both files.
"""
from __future__ import annotations

import errno
import json
import os
import tempfile
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from naap.errors import NaapError, first_line
from naap.counts import count_macs, count_params
from naap.resources import NAAP440, shipped
from naap.space import Scheme, scheme_features, scheme_hash, scheme_to_dicts

PROVENANCE_KEY = b"naap.provenance"
MAX_FOOTER_BYTES = 16 << 20  # a Parquet footer (schema and metadata) naap reads; its own are a few kB
FEATURE_COLUMNS = ("num_layers", "num_stages", "first_layer_width", "last_layer_width",
                   "num_skip_connections", "num_partial_rf_layers")

LAYER_TYPE = pa.struct([
    pa.field("kernel_size", pa.int8(), nullable=False),
    pa.field("width", pa.int16(), nullable=False),
    pa.field("stride", pa.int8(), nullable=False),
    pa.field("residual", pa.bool_(), nullable=False),
])

ARCHITECTURES_SCHEMA = pa.schema(
    [pa.field("arch_id", pa.int32(), nullable=False),
     pa.field("arch_hash", pa.string(), nullable=False),
     pa.field("layers", pa.list_(pa.field("item", LAYER_TYPE, nullable=False)), nullable=False)]
    + [pa.field(name, pa.int16(), nullable=False) for name in FEATURE_COLUMNS]
    + [pa.field("num_params", pa.int64(), nullable=False),
       pa.field("num_macs", pa.int64(), nullable=False),
       pa.field("is_test", pa.bool_(), nullable=False),
       pa.field("max_accuracy", pa.float64(), nullable=False),
       pa.field("diverged", pa.bool_(), nullable=False)]
)

EPOCHS_SCHEMA = pa.schema([
    pa.field("arch_id", pa.int32(), nullable=False),
    pa.field("seed", pa.int64(), nullable=False),
    pa.field("epoch", pa.int16(), nullable=False),
    pa.field("lr", pa.float64(), nullable=False),
    pa.field("train_loss_mean", pa.float64(), nullable=False),
    pa.field("train_loss_median", pa.float64(), nullable=False),
    pa.field("test_accuracy", pa.float64(), nullable=False),
    pa.field("test_loss", pa.float64(), nullable=True),
    pa.field("train_accuracy", pa.float64(), nullable=True),
    pa.field("epoch_seconds", pa.float64(), nullable=True),
])


class Tables(NamedTuple):
    architectures: pd.DataFrame
    epochs: pd.DataFrame


def describe_architectures(schemes: list[Scheme], arch_ids: list[int] | None = None,
                           in_channels: int = 3, input_size: int = 32, num_classes: int = 10) -> pd.DataFrame:
    """The scheme columns of architectures.parquet (all but is_test, max_accuracy, diverged)."""
    arch_ids = arch_ids or list(range(1, len(schemes) + 1))
    return pd.DataFrame([
        {"arch_id": arch_id, "arch_hash": scheme_hash(s), "layers": scheme_to_dicts(s), **scheme_features(s),
         "num_params": count_params(s, in_channels, num_classes),
         "num_macs": count_macs(s, in_channels, input_size, num_classes)}
        for arch_id, s in zip(arch_ids, schemes)
    ])


def write_parquet(frame: pd.DataFrame, path: str | Path, schema: pa.Schema, provenance: dict | None = None) -> None:
    """Write `frame` with `schema` atomically: a temporary file in the same folder, then a rename."""
    path = Path(path)
    try:
        table = pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False)
    except (KeyError, pa.ArrowException, ValueError, TypeError) as exc:
        raise NaapError(f"{path}: data does not fit the schema: {exc}") from None
    if provenance is not None:
        table = table.replace_schema_metadata({PROVENANCE_KEY: json.dumps(provenance, sort_keys=True).encode()})
    atomic_write(path, lambda tmp: pq.write_table(table, tmp, compression="zstd"))


def atomic_write(path: str | Path, write) -> None:
    """Call `write(tmp_path)`, fsync, and rename over `path`: readers never see half a file.

    A failing write (a full disk, a read-only folder, `path` a directory) leaves `path` as it
    was, removes the temporary file and raises one NaapError naming `path`."""
    path = Path(path)
    tmp = None
    try:
        if path.is_dir():
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as exc:
        raise NaapError(f"{path}: cannot write it ({exc.strerror or exc})") from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


HOW_TO_LOAD = """Load it with pandas alone:

```python
import pandas as pd
architectures = pd.read_parquet("architectures.parquet")
epochs = pd.read_parquet("epochs.parquet")   # arch_id, seed, epoch, lr, train_loss_mean, ...
```

or with naap: `naap.load_tables(DIR)`, `naap.load_wide(DIR)` (the published CSV layout).
Full provenance is JSON under the Parquet metadata key `naap.provenance`.
"""


DATASET_FILES = ("architectures.parquet", "epochs.parquet", "DATASET.md")


def write_dataset(tables: Tables, out_dir: str | Path, provenance: dict, card: str) -> None:
    """Write a dataset directory: both tables (each with the provenance in its metadata) and
    DATASET.md, `card` followed by how to load the tables. Every file is written atomically."""
    out_dir = Path(out_dir)
    write_parquet(tables.architectures, out_dir / DATASET_FILES[0], ARCHITECTURES_SCHEMA, provenance)
    write_parquet(tables.epochs, out_dir / DATASET_FILES[1], EPOCHS_SCHEMA, provenance)
    atomic_write(out_dir / DATASET_FILES[2], lambda tmp: Path(tmp).write_text(f"{card.rstrip()}\n\n{HOW_TO_LOAD}"))


def _check_footer(path: Path) -> None:
    """Refuse a Parquet file whose footer (schema and metadata) is larger than naap reads:
    its length is the 4 bytes before the closing magic (anything else is pyarrow's to judge)."""
    with open(path, "rb") as f:
        if f.seek(0, os.SEEK_END) >= 12:
            f.seek(-8, os.SEEK_END)
            tail = f.read(8)
            size = int.from_bytes(tail[:4], "little")
            if tail[4:] == b"PAR1" and size > MAX_FOOTER_BYTES:
                raise NaapError(f"{path}: {size:,} bytes of Parquet metadata, more than the "
                                f"{MAX_FOOTER_BYTES >> 20} MiB naap reads")


def read_parquet(path: str | Path, schema: pa.Schema) -> pd.DataFrame:
    """Read and check a table against `schema`; any problem is one NaapError naming file and column."""
    path = Path(path)
    if not path.exists():
        raise NaapError(f"{path}: file not found")
    try:
        _check_footer(path)
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise NaapError(f"{path}: not a readable Parquet file ({first_line(exc)})") from None
    for field in schema:
        if field.name not in table.column_names:
            raise NaapError(f"{path}: missing column '{field.name}'")
        column = table.column(field.name)
        if not column.type.equals(field.type):
            raise NaapError(f"{path}: column '{field.name}' has type {column.type}, expected {field.type}")
        if not field.nullable and column.null_count:
            raise NaapError(f"{path}: column '{field.name}' has {column.null_count} missing values")
    frame = table.select(schema.names).to_pandas()
    for field in schema:
        if pa.types.is_floating(field.type):  # NaN, unlike a null, is a value: never a valid one
            nan = pc.fill_null(pc.is_nan(table.column(field.name)), False).to_numpy(zero_copy_only=False)
            _refuse_first(path, frame, pd.Series(nan), field.name, "{key} has nan (must be a number)")
    return frame


def read_provenance(path: str | Path) -> dict:
    """The provenance JSON object of a table ({} where there is none)."""
    path = Path(path)
    try:
        _check_footer(path)
        metadata = pq.read_schema(path).metadata or {}
        provenance = json.loads(metadata.get(PROVENANCE_KEY, b"{}"))
    except (pa.ArrowException, OSError) as exc:
        raise NaapError(f"{path}: not a readable Parquet file ({first_line(exc)})") from None
    except (ValueError, RecursionError):
        raise NaapError(f"{path}: metadata '{PROVENANCE_KEY.decode()}': not valid JSON") from None
    if not isinstance(provenance, dict):
        raise NaapError(f"{path}: metadata '{PROVENANCE_KEY.decode()}': not a JSON object")
    return provenance


def load_tables(data_dir: str | Path | None = None) -> Tables:
    """The two tables of a dataset directory (default: the shipped NAAP-440) as pandas frames,
    checked against the schemas and the invariants of check_tables."""
    data_dir = shipped(NAAP440) if data_dir is None else Path(data_dir)
    if not data_dir.is_dir():
        raise NaapError(f"{data_dir}: dataset directory not found")
    tables = Tables(read_parquet(data_dir / "architectures.parquet", ARCHITECTURES_SCHEMA),
                    read_parquet(data_dir / "epochs.parquet", EPOCHS_SCHEMA))
    check_tables(tables, data_dir / "architectures.parquet", data_dir / "epochs.parquet")
    return tables


# --- the invariants of the tables ---------------------------------------------

# What every value of a column must be (a missing value of a nullable column is not checked);
# NaN fails every test.
_POSITIVE = (lambda x: x > 0, "must be > 0")
_FRACTION = (lambda x: (x >= 0) & (x <= 1), "must be in [0, 1]")
_NON_NEGATIVE = (lambda x: np.isfinite(x) & (x >= 0), "must be finite and >= 0")
VALUE_RULES = {
    "num_params": _POSITIVE, "num_macs": _POSITIVE, "max_accuracy": _FRACTION,
    "lr": (lambda x: np.isfinite(x) & (x > 0), "must be finite and > 0"),
    "train_loss_mean": _NON_NEGATIVE, "train_loss_median": _NON_NEGATIVE, "test_loss": _NON_NEGATIVE,
    "test_accuracy": _FRACTION, "train_accuracy": _FRACTION, "epoch_seconds": _NON_NEGATIVE,
}
MAX_ACCURACY_TOLERANCE = 1e-9


def _refuse_first(path: Path, frame: pd.DataFrame, bad: pd.Series, column: str, what: str) -> None:
    """One NaapError at the first row, in key order, where `bad` holds: `what` is formatted
    with the row's key ({key}) and value ({value})."""
    if not bad.any():
        return
    keys = [k for k in ("arch_id", "seed", "epoch") if k in frame]
    rows = frame[bad.to_numpy()].sort_values(keys)
    key = " ".join(f"{k} {rows[k].iloc[0]}" for k in keys)
    value = rows[column].iloc[0]
    value = value.item() if hasattr(value, "item") else value
    raise NaapError(f"{path}: column '{column}': {what.format(key=key, value=repr(value))}")


def _check_values(path: Path, frame: pd.DataFrame) -> None:
    """VALUE_RULES on every present value (read_parquet has refused NaN, so a NaN here is a null)."""
    for column, (test, rule) in VALUE_RULES.items():
        if column in frame:
            values = frame[column].astype("float64")
            _refuse_first(path, frame, values.notna() & ~test(values), column,
                          f"{{key}} has {{value}} ({rule})")


def check_tables(tables: Tables, architectures_path: Path, epochs_path: Path) -> None:
    """Refuse tables that break the layout's invariants, naming the file, the column and the
    first offending key: arch_id unique; every epochs arch_id an architecture; (arch_id, seed,
    epoch) unique; each run's epochs 1..n; counts > 0, accuracies in [0, 1], losses and
    seconds finite and >= 0, lr finite and > 0; every run that did not diverge has the same
    number of epochs as the others, and the main seed (main_seed) has a run of every architecture
    that did not diverge; max_accuracy is the mean over the seeds
    of each run's best test_accuracy (a diverged architecture: at most its best epoch, 0
    without one). An architecture without epoch rows is allowed only when it diverged."""
    a, e = tables.architectures, tables.epochs
    if a.empty:
        raise NaapError(f"{architectures_path}: no architectures")
    _refuse_first(architectures_path, a, a["arch_id"].duplicated(keep=False), "arch_id",
                  "{key} appears more than once (must be unique)")
    _check_values(architectures_path, a)
    diverged = a.set_index("arch_id")["diverged"]
    if e.empty and not diverged.all():
        raise NaapError(f"{epochs_path}: no epoch rows, yet architectures.parquet marks "
                        f"{int((~diverged).sum())} architecture(s) as not diverged")
    _refuse_first(epochs_path, e, ~e["arch_id"].isin(a["arch_id"]), "arch_id",
                  "{key} is not in architectures.parquet")
    _refuse_first(epochs_path, e, e.duplicated(["arch_id", "seed", "epoch"], keep=False), "epoch",
                  "{key} appears more than once (must be unique)")
    runs = e.groupby(["arch_id", "seed"])["epoch"].agg(["min", "max", "size"])
    gaps = runs[(runs["min"] != 1) | (runs["max"] != runs["size"])]
    if len(gaps):
        (arch_id, seed), run = gaps.index[0], gaps.iloc[0]
        raise NaapError(f"{epochs_path}: column 'epoch': arch_id {arch_id} seed {seed} has epochs {run['min']} to "
                        f"{run['max']} in {run['size']} rows (must run 1, 2, ..., n without gaps)")
    _check_values(epochs_path, e)
    _check_runs(tables, architectures_path, epochs_path, runs["size"])


def _check_runs(tables: Tables, architectures_path: Path, epochs_path: Path, lengths: pd.Series) -> None:
    """Every run of an architecture that did not diverge is complete, every such architecture has
    a run of the main seed (a sample may have more seeds: training.extra_seeds), and
    max_accuracy agrees with the epochs."""
    a, e = tables.architectures.set_index("arch_id").sort_index(), tables.epochs
    steady = ~a["diverged"]
    expected = lengths[steady.reindex(lengths.index.get_level_values("arch_id")).to_numpy()]
    if len(expected):
        n = expected.max()
        short = expected[expected != n]
        if len(short):
            (arch_id, seed), got = short.index[0], short.iloc[0]
            raise NaapError(f"{epochs_path}: column 'epoch': arch_id {arch_id} seed {seed} has {got} epoch rows, "
                            f"other runs {n}, and architectures.parquet does not mark it diverged")
    if not e.empty:
        seed = main_seed(e)
        lacking = steady & ~a.index.isin(e.loc[e["seed"] == seed, "arch_id"])
        if lacking.any():
            raise NaapError(f"{epochs_path}: column 'seed': arch_id {lacking.idxmax()} has no run of seed {seed}, "
                            f"and architectures.parquet does not mark it diverged")
    best = run_maxima(e)
    mean_best = best.groupby(level="arch_id").mean().reindex(a.index, fill_value=0.0)
    high = best.groupby(level="arch_id").max().reindex(a.index, fill_value=0.0)
    got = a["max_accuracy"]
    for wrong, rule in (
            (((got - mean_best).abs() > MAX_ACCURACY_TOLERANCE) & steady,
             lambda i: f"its epochs give {float(mean_best[i])!r} "
                       f"(the mean over seeds of each run's best test_accuracy)"),
            ((got > high + MAX_ACCURACY_TOLERANCE) & a["diverged"],
             lambda i: f"more than its best epoch, {float(high[i])!r} (it diverged)")):
        if wrong.any():
            i = wrong[wrong].index[0]
            raise NaapError(f"{architectures_path}: column 'max_accuracy': arch_id {i} has {float(got[i])!r}, "
                            f"{rule(i)}")


WIDE_SCHEME_COLUMNS = {"arch_id": "ModelId", "is_test": "IsTest", "num_params": "NumParams",
                       "num_macs": "NumMACs", "num_layers": "NumLayers", "num_stages": "NumStages",
                       "first_layer_width": "FirstLayerWidth", "last_layer_width": "LastLayerWidth",
                       "max_accuracy": "MaxAccuracy"}
WIDE_EPOCH_COLUMNS = {"train_loss_mean": "LossMean", "train_loss_median": "LossMedian",
                      "test_accuracy": "Accuracy"}


def run_maxima(epochs: pd.DataFrame) -> pd.Series:
    """Each run's best test accuracy, indexed by (arch_id, seed): what max_accuracy averages."""
    return epochs.groupby(["arch_id", "seed"])["test_accuracy"].max()


def main_seed(epochs: pd.DataFrame) -> int:
    """The seed of the runs that stand for each architecture: the one with epoch rows of the most
    architectures, the smallest of those: the smallest of training.seeds where a rebuild also
    trained a sample of architectures with training.extra_seeds."""
    covered = epochs.groupby("seed")["arch_id"].nunique()
    return int(covered[covered == covered.max()].index.min())


def to_wide(tables: Tables, seed: int | None = None) -> pd.DataFrame:
    """The published CSV's layout: one row per architecture, e{i}LossMean/LossMedian/Accuracy per epoch.

    With several seeds, `seed` picks one (default: main_seed). A run that diverged leaves the
    epochs it did not finish empty; with no epoch rows at all, only the scheme columns remain."""
    epochs = tables.epochs
    seeds = sorted(epochs["seed"].unique().tolist())
    if seed is not None and seed not in seeds:
        raise NaapError(f"seed {seed}: the dataset has no epochs of it (its seeds: {', '.join(map(str, seeds))})")
    epochs = epochs[epochs["seed"] == (main_seed(epochs) if seed is None and seeds else seed)]
    wide = epochs.pivot(index="arch_id", columns="epoch", values=list(WIDE_EPOCH_COLUMNS))
    epoch_numbers = sorted(epochs["epoch"].unique())
    wide.columns = [f"e{e}{WIDE_EPOCH_COLUMNS[name]}" for name, e in wide.columns]
    ordered = [f"e{e}{suffix}" for e in epoch_numbers for suffix in WIDE_EPOCH_COLUMNS.values()]
    scheme = tables.architectures[list(WIDE_SCHEME_COLUMNS)].rename(columns=WIDE_SCHEME_COLUMNS)
    scheme["IsTest"] = scheme["IsTest"].astype(np.int64)
    return scheme.merge(wide[ordered], left_on="ModelId", right_index=True, how="left").sort_values("ModelId",
                                                                                                     ignore_index=True)


def load_wide(data_dir: str | Path | None = None, seed: int | None = None) -> pd.DataFrame:
    """The wide frame of the published CSV (same columns, same values) from a dataset directory."""
    return to_wide(load_tables(data_dir), seed)
