"""The published NAAP-440 release (CSV + schemes JSON) to and from the Parquet layout."""
from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import pandas as pd

import naap
from naap._io import atomic_write, open_regular
from naap.bench.space import scheme_from_dicts
from naap.bench.tables import (
    IMPORTED,
    WIDE_EPOCH_COLUMNS,
    WIDE_SCHEME_COLUMNS,
    Tables,
    check_tables,
    describe_architectures,
    to_wide,
)
from naap.errors import NaapError, first_line
from naap.rebuild.recipe import MAX_EPOCHS, Recipe, layer_checks

CSV_NAME = "naap440.csv"
SCHEMES_NAME = "generated_schemes.json"
SOURCE = "NAAP-440 (T. Hakim, arXiv 2209.06626), published release, MIT licence"
EPOCH_COLUMN = re.compile(r"^e(\d{1,5})(LossMean|LossMedian|Accuracy)$")
LAYER_FIELDS = ("kernel_size", "width", "stride", "residual")
LICENCE_COPY = "LICENSE-NAAP440"  # the release's licence, kept beside the imported data as its MIT terms ask
MAX_RELEASE_BYTES = 256 << 20  # each of the release's files naap reads: the published CSV is about 1 MB


def _read_schemes(path: Path, input_size: int) -> list:
    """The schemes JSON: a list of schemes, each a non-empty list of layers with exactly the
    four fields, each value of its type and in the recipe's range (recipe.layer_checks)."""
    try:
        with open_regular(path, MAX_RELEASE_BYTES) as f:
            raw = json.loads(f.read().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise NaapError(f"{path}: not valid JSON ({first_line(exc)})") from None
    if not isinstance(raw, list):
        raise NaapError(f"{path}: must be a list of schemes, got {type(raw).__name__}")
    checks = layer_checks(input_size)
    schemes = []
    for i, layers in enumerate(raw):
        if not isinstance(layers, list) or not layers:
            raise NaapError(f"{path}: scheme {i}: must be a non-empty list of layers, got {layers!r:.60}")
        for j, layer in enumerate(layers):
            where = f"{path}: scheme {i} layer {j}"
            if not isinstance(layer, dict):
                raise NaapError(f"{where}: must be an object with {', '.join(LAYER_FIELDS)}, got {layer!r:.60}")
            for name in LAYER_FIELDS:
                if name not in layer:
                    raise NaapError(f"{where}: missing field '{name}'")
            for name in layer:
                if name not in LAYER_FIELDS:
                    raise NaapError(f"{where}: unexpected field {name!r:.60}")
            if not isinstance(layer["residual"], bool):
                raise NaapError(f"{where}: field 'residual': must be true or false, got {layer['residual']!r:.60}")
            for name, check in checks.items():
                value = layer[name]
                problem = (check(value) if isinstance(value, int) and not isinstance(value, bool)
                           else "must be an integer")
                if problem:
                    raise NaapError(f"{where}: field '{name}': {problem}, got {value!r:.60}")
        schemes.append(scheme_from_dicts(layers))
    return schemes


def _read_csv(path: Path) -> pd.DataFrame:
    """The published CSV: the scheme columns, integer but MaxAccuracy, IsTest 0 or 1, and the
    three epoch columns of every epoch 1..n, all numbers, none missing."""
    try:
        with open_regular(path, MAX_RELEASE_BYTES) as f:
            frame = pd.read_csv(f)
    except (OSError, ValueError, pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise NaapError(f"{path}: not a readable CSV ({first_line(exc)})") from None
    for column in WIDE_SCHEME_COLUMNS.values():
        if column not in frame.columns:
            raise NaapError(f"{path}: missing column '{column}'")
    for column in frame.columns:
        if column not in WIDE_SCHEME_COLUMNS.values() and not EPOCH_COLUMN.match(column):
            raise NaapError(f"{path}: unexpected column {column!r:.60}")
        if frame[column].isna().any():
            raise NaapError(f"{path}: column '{column}' has missing values")
        integer = column in WIDE_SCHEME_COLUMNS.values() and column != "MaxAccuracy"
        if not (pd.api.types.is_integer_dtype if integer else pd.api.types.is_numeric_dtype)(frame[column]) \
                or pd.api.types.is_bool_dtype(frame[column]):
            raise NaapError(f"{path}: column '{column}': must hold {'integers' if integer else 'numbers'} only")
    if not frame["IsTest"].isin([0, 1]).all():
        raise NaapError(f"{path}: column 'IsTest': ModelId {frame['ModelId'][~frame['IsTest'].isin([0, 1])].iloc[0]} "
                        f"is not 0 or 1")
    present = {c for c in frame.columns if EPOCH_COLUMN.match(c)}
    last = max((int(EPOCH_COLUMN.match(c)[1]) for c in present), default=0)
    wanted = {f"e{e}{suffix}" for e in range(1, min(last, MAX_EPOCHS) + 1) for suffix in WIDE_EPOCH_COLUMNS.values()}
    if not present or present != wanted:
        first = min(present ^ wanted, key=lambda c: (int(EPOCH_COLUMN.match(c)[1]), c), default="e1Accuracy")
        raise NaapError(f"{path}: column '{first}': the epoch columns must be e1..eN (N at most {MAX_EPOCHS}), "
                        f"each with {', '.join(WIDE_EPOCH_COLUMNS.values())}")
    return frame


def _sha256(path: Path) -> str:
    with open_regular(path, MAX_RELEASE_BYTES) as f:
        return hashlib.sha256(f.read()).hexdigest()


def import_release(release_dir: str | Path, recipe: Recipe) -> tuple[Tables, dict]:
    """Read the published CSV and schemes, check every count against the network builder,
    and return the tidy tables and their provenance. The published IsTest is kept as it is."""
    release_dir = Path(release_dir)
    csv_path, schemes_path = release_dir / CSV_NAME, release_dir / SCHEMES_NAME
    wide = _read_csv(csv_path)
    schemes = _read_schemes(schemes_path, recipe.dataset.shape[1])
    if not (release_dir / "LICENSE").is_file():
        raise NaapError(f"{release_dir / 'LICENSE'}: file not found (the release's licence travels with its data)")
    if list(wide["ModelId"]) != list(range(1, len(schemes) + 1)):
        raise NaapError(f"{csv_path}: ModelId must run 1..{len(schemes)} in order, "
                        f"one row per scheme of {schemes_path.name}")

    architectures = describe_architectures(schemes, list(wide["ModelId"]), *recipe.dataset.shape)
    for ours, theirs in WIDE_SCHEME_COLUMNS.items():
        if ours in architectures and ours != "arch_id":
            bad = architectures[ours].to_numpy() != wide[theirs].to_numpy()
            if bad.any():
                row = int(bad.argmax())
                raise NaapError(f"{csv_path}: ModelId {row + 1}: column '{theirs}' is {wide[theirs][row]}, "
                                f"the scheme gives {architectures[ours][row]}")
    architectures["is_test"] = wide["IsTest"].astype(bool).to_numpy()
    architectures["max_accuracy"] = wide["MaxAccuracy"].to_numpy()
    architectures["diverged"] = False

    seed = recipe.training.seeds[0]
    long = wide.melt(id_vars="ModelId", value_vars=[c for c in wide.columns if EPOCH_COLUMN.match(c)])
    parts = long["variable"].str.extract(EPOCH_COLUMN)
    long["epoch"], long["metric"] = parts[0].astype(int), parts[1]
    epochs = (long.pivot(index=["ModelId", "epoch"], columns="metric", values="value")
              .rename(columns={v: k for k, v in WIDE_EPOCH_COLUMNS.items()})
              .reset_index().rename(columns={"ModelId": "arch_id"}).rename_axis(columns=None))
    epochs.insert(1, "seed", seed)
    epochs["lr"] = epochs["epoch"].map(recipe.training.lr_at)
    for column in ("test_loss", "train_accuracy", "epoch_seconds"):
        epochs[column] = None

    provenance = {
        "source": SOURCE,
        "kind": IMPORTED,
        "files": {p.name: {"sha256": _sha256(p)} for p in (csv_path, schemes_path)},
        "recipe": {"name": recipe.name, "file": recipe.path.name, "contents": recipe.raw},
        "versions": {"naap": naap.__version__, "pandas": pd.__version__,
                     "pyarrow": __import__("pyarrow").__version__},
        "notes": "lr is the recipe's schedule; the release has no test_loss, train_accuracy or epoch_seconds.",
    }
    tables = Tables(architectures, epochs.sort_values(["arch_id", "seed", "epoch"], ignore_index=True))
    check_tables(tables, csv_path, csv_path, recipe.dataset.shape)
    return tables, provenance


def release_card(tables: Tables, provenance: dict) -> str:
    a, e = tables.architectures, tables.epochs
    return f"""# {provenance['recipe']['name']}

{provenance['source']}

- {len(a)} architectures ({int(a['is_test'].sum())} test items), {e['seed'].nunique()} seed(s),
  {int(e['epoch'].max())} epochs, {len(e)} epoch rows
- max accuracy {a['max_accuracy'].min():.4f} to {a['max_accuracy'].max():.4f};
  {a['num_params'].min()} to {a['num_params'].max()} parameters
- kind: {provenance['kind']}; naap {provenance['versions']['naap']}
- licence: the release's MIT licence (Copyright (c) 2022 talcs), its text in {LICENCE_COPY}
"""


def copy_licence(release_dir: str | Path, out_dir: str | Path) -> None:
    """The release's LICENSE (import_release checked it is there), copied beside the imported data
    as LICENSE-NAAP440."""
    atomic_write(Path(out_dir) / LICENCE_COPY, lambda tmp: shutil.copyfile(Path(release_dir) / "LICENSE", tmp))


def export_csv(tables: Tables, out_path: str | Path, seed: int | None = None) -> None:
    """Write the published CSV layout (CRLF line endings, as published)."""
    wide = to_wide(tables, seed)
    atomic_write(out_path, lambda tmp: wide.to_csv(tmp, index=False, lineterminator="\r\n"))
