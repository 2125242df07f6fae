"""Files on disk, the way every part of naap writes and reads them: atomic writes, Parquet tables
checked against an explicit schema, and the provenance JSON in each table's metadata."""
from __future__ import annotations

import errno
import json
import os
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from naap.errors import NaapError, first_line

PROVENANCE_KEY = b"naap.provenance"
MAX_FOOTER_BYTES = 16 << 20  # a Parquet footer (schema and metadata) naap reads; its own are a few kB


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
            refuse_first(path, frame, pd.Series(nan), field.name, "{key} has nan (must be a number)")
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


def refuse_first(path: Path, frame: pd.DataFrame, bad: pd.Series, column: str, what: str) -> None:
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
