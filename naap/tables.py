"""The Parquet layout of a dataset directory: explicit schemas, atomic writes, validated reads.

    DIR/architectures.parquet   one row per architecture
    DIR/epochs.parquet          one row per architecture, seed and epoch (1-based)
    DIR/DATASET.md              a short human-readable card

Provenance (source, recipe, versions, ...) is JSON under the Parquet metadata key
`naap.provenance` of both files.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from naap.errors import NaapError
from naap.counts import count_macs, count_params
from naap.space import Scheme, scheme_features, scheme_hash, scheme_to_dicts

PROVENANCE_KEY = b"naap.provenance"
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
    """Call `write(tmp_path)`, fsync, and rename over `path`: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
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


def write_dataset(tables: Tables, out_dir: str | Path, provenance: dict, card: str) -> None:
    """Write a dataset directory: both tables (each with the provenance in its metadata) and
    DATASET.md, `card` followed by how to load the tables. Every file is written atomically."""
    out_dir = Path(out_dir)
    write_parquet(tables.architectures, out_dir / "architectures.parquet", ARCHITECTURES_SCHEMA, provenance)
    write_parquet(tables.epochs, out_dir / "epochs.parquet", EPOCHS_SCHEMA, provenance)
    atomic_write(out_dir / "DATASET.md", lambda tmp: Path(tmp).write_text(f"{card.rstrip()}\n\n{HOW_TO_LOAD}"))


def read_parquet(path: str | Path, schema: pa.Schema) -> pd.DataFrame:
    """Read and check a table against `schema`; any problem is one NaapError naming file and column."""
    path = Path(path)
    if not path.exists():
        raise NaapError(f"{path}: file not found")
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise NaapError(f"{path}: not a readable Parquet file ({exc})") from None
    for field in schema:
        if field.name not in table.column_names:
            raise NaapError(f"{path}: missing column '{field.name}'")
        column = table.column(field.name)
        if not column.type.equals(field.type):
            raise NaapError(f"{path}: column '{field.name}' has type {column.type}, expected {field.type}")
        if not field.nullable and column.null_count:
            raise NaapError(f"{path}: column '{field.name}' has {column.null_count} missing values")
    return table.select(schema.names).to_pandas()


def read_provenance(path: str | Path) -> dict:
    metadata = pq.read_schema(path).metadata or {}
    return json.loads(metadata.get(PROVENANCE_KEY, b"{}"))


def load_tables(data_dir: str | Path = "data/naap440") -> Tables:
    """The two tables of a dataset directory as pandas frames, checked against the schemas."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise NaapError(f"{data_dir}: dataset directory not found")
    architectures = read_parquet(data_dir / "architectures.parquet", ARCHITECTURES_SCHEMA)
    epochs = read_parquet(data_dir / "epochs.parquet", EPOCHS_SCHEMA)
    unknown = set(epochs["arch_id"]) - set(architectures["arch_id"])
    if unknown:
        raise NaapError(f"{data_dir / 'epochs.parquet'}: arch_id {min(unknown)} is not in architectures.parquet")
    return Tables(architectures, epochs)


WIDE_SCHEME_COLUMNS = {"arch_id": "ModelId", "is_test": "IsTest", "num_params": "NumParams",
                       "num_macs": "NumMACs", "num_layers": "NumLayers", "num_stages": "NumStages",
                       "first_layer_width": "FirstLayerWidth", "last_layer_width": "LastLayerWidth",
                       "max_accuracy": "MaxAccuracy"}
WIDE_EPOCH_COLUMNS = {"train_loss_mean": "LossMean", "train_loss_median": "LossMedian",
                      "test_accuracy": "Accuracy"}


def to_wide(tables: Tables, seed: int | None = None) -> pd.DataFrame:
    """The published CSV's layout: one row per architecture, e{i}LossMean/LossMedian/Accuracy per epoch.

    With several seeds, `seed` picks one (default: the smallest)."""
    epochs = tables.epochs
    if epochs.empty:
        raise NaapError("epochs.parquet: no epoch rows: every run diverged before finishing an epoch")
    seed = int(epochs["seed"].min()) if seed is None else seed
    epochs = epochs[epochs["seed"] == seed]
    if epochs.empty:
        raise NaapError(f"no epochs recorded for seed {seed}")
    wide = epochs.pivot(index="arch_id", columns="epoch", values=list(WIDE_EPOCH_COLUMNS))
    epoch_numbers = sorted(epochs["epoch"].unique())
    wide.columns = [f"e{e}{WIDE_EPOCH_COLUMNS[name]}" for name, e in wide.columns]
    ordered = [f"e{e}{suffix}" for e in epoch_numbers for suffix in WIDE_EPOCH_COLUMNS.values()]
    scheme = tables.architectures[list(WIDE_SCHEME_COLUMNS)].rename(columns=WIDE_SCHEME_COLUMNS)
    scheme["IsTest"] = scheme["IsTest"].astype(np.int64)
    return scheme.merge(wide[ordered], left_on="ModelId", right_index=True, how="left").sort_values("ModelId",
                                                                                                     ignore_index=True)


def load_wide(data_dir: str | Path = "data/naap440", seed: int | None = None) -> pd.DataFrame:
    """The wide frame of the published CSV (same columns, same values) from a dataset directory."""
    return to_wide(load_tables(data_dir), seed)
