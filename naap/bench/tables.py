"""The Parquet layout of a dataset directory: explicit schemas, atomic writes, validated reads.

    DIR/architectures.parquet   one row per architecture
    DIR/epochs.parquet          one row per architecture, seed and epoch (1-based)
    DIR/DATASET.md              a short human-readable card

Provenance (source, recipe, versions, ...) is JSON under the Parquet metadata key
`naap.provenance` of both files.
"""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa

from naap._io import atomic_write, read_parquet, read_provenance, refuse_first, write_parquet
from naap.bench.counts import count_macs, count_params
from naap.bench.space import Scheme, scheme_features, scheme_from_dicts, scheme_hash, scheme_to_dicts
from naap.errors import NaapError
from naap.resources import NAAP440, shipped

IMPORTED = "imported release"  # the provenance kind of a table that naap.rebuild.release.import_release wrote
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


# DIR/proxies.parquet: one row per architecture, the zero-cost proxies at initialisation.
PROXIES = ("synflow", "snip", "grad_norm", "jacob_cov", "naswot", "zen")


PROXIES_FILE = "proxies.parquet"


PROXIES_SCHEMA = pa.schema([pa.field("arch_id", pa.int32(), nullable=False)]
                           + [pa.field(name, pa.float64(), nullable=False) for name in PROXIES])


def load_proxies(data_dir: str | Path) -> tuple[pd.DataFrame, dict] | None:
    """DIR/proxies.parquet (`naap proxies`) and its provenance, or None where there is none."""
    path = Path(data_dir) / PROXIES_FILE
    if not path.exists():
        return None
    table = read_parquet(path, PROXIES_SCHEMA)
    refuse_first(path, table, table["arch_id"].duplicated(keep=False), "arch_id",
                 "{key} appears more than once (must be unique)")
    values = table[list(PROXIES)].to_numpy()
    if not np.isfinite(values).all():
        row, column = np.argwhere(~np.isfinite(values))[0]
        raise NaapError(f"{path}: {PROXIES[column]}: arch_id {table['arch_id'].iloc[row]} is not finite")
    return table, read_provenance(path)


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


def load_tables(data_dir: str | Path | None = None) -> Tables:
    """The two tables of a dataset directory (default: the shipped NAAP-440) as pandas frames,
    checked against the schemas and the invariants of check_tables."""
    data_dir = shipped(NAAP440) if data_dir is None else Path(data_dir)
    if data_dir.exists() and not data_dir.is_dir():
        hint = "; a recipe is read by `naap schemes` and `naap dataset`" if data_dir.suffix in (".yaml", ".yml") else ""
        raise NaapError(f"{data_dir}: is a file, not a dataset directory (a folder with architectures.parquet "
                        f"and epochs.parquet){hint}")
    if not data_dir.is_dir():
        raise NaapError(f"{data_dir}: dataset directory not found")
    tables = Tables(read_parquet(data_dir / "architectures.parquet", ARCHITECTURES_SCHEMA),
                    read_parquet(data_dir / "epochs.parquet", EPOCHS_SCHEMA))
    shape = recorded_shape(data_dir / "architectures.parquet", read_provenance(data_dir / "architectures.parquet"))
    check_tables(tables, data_dir / "architectures.parquet", data_dir / "epochs.parquet", shape)
    return tables


SHAPE_KEYS = ("in_channels", "input_size", "num_classes")
DEFAULT_SHAPE = (3, 32, 10)  # CIFAR-10's, the published release's: the counts' defaults


def recorded_shape(path: Path, provenance: dict) -> tuple[int, int, int]:
    """(in_channels, input_size, num_classes) of the images the counts are for: the provenance's
    `dataset` (a rebuild records it), else CIFAR-10's. Each size `dataset` holds must be a whole
    number >= 1, or it is one NaapError naming the field."""
    dataset = provenance.get("dataset")
    if dataset is None:
        return DEFAULT_SHAPE
    if not isinstance(dataset, dict):
        raise NaapError(f"{path}: provenance field 'dataset': must be an object, got {type(dataset).__name__}")
    for key in (*SHAPE_KEYS, "train_size", "test_size"):
        value = dataset.get(key, 1)
        if type(value) is not int or not 0 < value < 1 << 31:
            raise NaapError(f"{path}: provenance field 'dataset.{key}': must be a whole number >= 1, "
                            f"got {value!r:.60}")
    return tuple(dataset.get(key, default) for key, default in zip(SHAPE_KEYS, DEFAULT_SHAPE))


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


def check_values(path: Path, frame: pd.DataFrame) -> None:
    """VALUE_RULES on every present value (read_parquet has refused NaN, so a NaN here is a null)."""
    for column, (test, rule) in VALUE_RULES.items():
        if column in frame:
            values = frame[column].astype("float64")
            refuse_first(path, frame, values.notna() & ~test(values), column,
                          f"{{key}} has {{value}} ({rule})")


def check_tables(tables: Tables, architectures_path: Path, epochs_path: Path,
                 shape: tuple[int, int, int] = DEFAULT_SHAPE) -> None:
    """Refuse tables that break the layout's invariants, naming the file, the column and the
    first offending key: arch_id unique; arch_hash, the features and the counts those of
    `layers` (for images of `shape`, recorded_shape); every epochs arch_id an architecture; (arch_id, seed,
    epoch) unique; each run's epochs 1..n; counts > 0, accuracies in [0, 1], losses and
    seconds finite and >= 0, lr finite and > 0; every run that did not diverge has the same
    number of epochs as the others, and the main seed (main_seed) has a run of every architecture
    that did not diverge; max_accuracy is the mean over the seeds
    of each run's best test_accuracy (a diverged architecture: at most its best epoch, 0
    without one). An architecture without epoch rows is allowed only when it diverged."""
    a, e = tables.architectures, tables.epochs
    if a.empty:
        raise NaapError(f"{architectures_path}: no architectures")
    refuse_first(architectures_path, a, a["arch_id"].duplicated(keep=False), "arch_id",
                  "{key} appears more than once (must be unique)")
    check_values(architectures_path, a)
    _check_layers(architectures_path, a, shape)
    diverged = a.set_index("arch_id")["diverged"]
    if e.empty and not diverged.all():
        raise NaapError(f"{epochs_path}: no epoch rows, yet architectures.parquet marks "
                        f"{int((~diverged).sum())} architecture(s) as not diverged")
    refuse_first(epochs_path, e, ~e["arch_id"].isin(a["arch_id"]), "arch_id",
                  "{key} is not in architectures.parquet")
    refuse_first(epochs_path, e, e.duplicated(["arch_id", "seed", "epoch"], keep=False), "epoch",
                  "{key} appears more than once (must be unique)")
    runs = e.groupby(["arch_id", "seed"])["epoch"].agg(["min", "max", "size"])
    gaps = runs[(runs["min"] != 1) | (runs["max"] != runs["size"])]
    if len(gaps):
        (arch_id, seed), run = gaps.index[0], gaps.iloc[0]
        raise NaapError(f"{epochs_path}: column 'epoch': arch_id {arch_id} seed {seed} has epochs {run['min']} to "
                        f"{run['max']} in {run['size']} rows (must run 1, 2, ..., n without gaps)")
    check_values(epochs_path, e)
    _check_runs(tables, architectures_path, epochs_path, runs["size"])


def _check_layers(path: Path, a: pd.DataFrame, shape: tuple[int, int, int]) -> None:
    """Each architecture's layers valid (at least one; kernel, width and stride >= 1), and its
    arch_hash, scheme features, num_params and num_macs the ones its layers give."""
    for row in a.sort_values("arch_id").itertuples(index=False):
        layers = list(row.layers)
        bad = next((layer for layer in layers if min(layer["kernel_size"], layer["width"], layer["stride"]) < 1),
                   None) if layers else "none"
        if bad is not None:
            found = "no layers" if bad == "none" else bad
            raise NaapError(f"{path}: column 'layers': arch_id {row.arch_id} has {found} "
                            f"(each layer's kernel_size, width and stride must be >= 1)")
        scheme = scheme_from_dicts(layers)
        derived = {"arch_hash": scheme_hash(scheme), **scheme_features(scheme),
                   "num_params": count_params(scheme, shape[0], shape[2]), "num_macs": count_macs(scheme, *shape)}
        for column, value in derived.items():
            if getattr(row, column) != value:
                raise NaapError(f"{path}: column '{column}': arch_id {row.arch_id} has {getattr(row, column)!r}, "
                                f"its layers give {value!r}")


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
