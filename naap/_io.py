"""Files on disk, the way every part of naap writes and reads them: atomic writes, Parquet tables
checked against an explicit schema, and the provenance JSON in each table's metadata."""
from __future__ import annotations

import errno
import json
import os
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from naap.errors import NaapError, first_line

PROVENANCE_KEY = b"naap.provenance"
MAX_FOOTER_BYTES = 16 << 20  # a Parquet footer (schema and metadata) naap reads; its own are a few kB
# The columns naap reads of one table, uncompressed, as its footer declares them: NAAP-440's
# epochs.parquet declares about 3 MB; 2 GiB hold some 30 million epoch rows.
MAX_TABLE_BYTES = 2 << 30
# A text value naap reads (an arch_hash has 16 characters): text is read dictionary-encoded, so a
# long value repeated on every row is refused before it is repeated in memory.
MAX_TEXT_BYTES = 256


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


@contextmanager
def open_regular(path: str | Path, max_bytes: int | None = None, what: str = "file") -> Iterator[BinaryIO]:
    """`path` opened for binary reading, only if it is a regular file (of at most `max_bytes`):
    a FIFO, a device or a folder is one NaapError, never a read that blocks or never ends. The
    file is opened without blocking and checked on its descriptor, so it cannot change between
    the check and the read. `what` names the file in "not found"."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise NaapError(f"{path}: {what} not found") from None
    except OSError as exc:
        raise NaapError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    try:
        mode, size = os.fstat(fd).st_mode, os.fstat(fd).st_size
        if not stat.S_ISREG(mode):
            kind = "a folder" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else "a device or socket"
            raise NaapError(f"{path}: {kind}, not a regular file; naap reads only regular files")
        if max_bytes is not None and size > max_bytes:
            raise NaapError(f"{path}: {size:,} bytes, more than the {max_bytes >> 20} MiB naap reads of it")
        os.set_blocking(fd, True)
        f = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with f:
        yield f


def _check_footer(path: Path, f: BinaryIO) -> None:
    """Refuse a Parquet file whose footer (schema and metadata) is larger than naap reads:
    its length is the 4 bytes before the closing magic (anything else is pyarrow's to judge)."""
    if f.seek(0, os.SEEK_END) >= 12:
        f.seek(-8, os.SEEK_END)
        tail = f.read(8)
        size = int.from_bytes(tail[:4], "little")
        if tail[4:] == b"PAR1" and size > MAX_FOOTER_BYTES:
            raise NaapError(f"{path}: {size:,} bytes of Parquet metadata, more than the "
                            f"{MAX_FOOTER_BYTES >> 20} MiB naap reads")
    f.seek(0)


def _unreadable(path: Path, exc: BaseException) -> NaapError:
    if isinstance(exc, UnicodeDecodeError):  # a column name or metadata key that is not UTF-8
        return NaapError(f"{path}: not a readable Parquet file (a name in its schema is not UTF-8)")
    return NaapError(f"{path}: not a readable Parquet file ({first_line(exc)})")


PARQUET_ERRORS = (pa.ArrowException, OSError, UnicodeDecodeError, ValueError)


def _check_columns(path: Path, parquet: pq.ParquetFile, schema: pa.Schema) -> None:
    """The footer's columns against `schema`, before any data is read: each present once, of
    its type, and the size of those naap reads within MAX_TABLE_BYTES: the uncompressed bytes the
    footer declares, plus each declared value at 8 bytes (MAX_TEXT_BYTES for text), so that
    run-length or dictionary encoding cannot hide what the values take once decoded."""
    found = parquet.schema_arrow
    for field in schema:
        where = found.get_all_field_indices(field.name)
        if not where:
            raise NaapError(f"{path}: missing column '{field.name}'")
        if len(where) > 1:
            raise NaapError(f"{path}: column '{field.name}' appears {len(where)} times (must be once)")
        got = found.field(where[0]).type
        got = got.value_type if pa.types.is_dictionary(got) and field.name in _text(schema) else got
        if not got.equals(field.type):
            raise NaapError(f"{path}: column '{field.name}' has type {got}, expected {field.type}")
    width = {field.name: MAX_TEXT_BYTES if field.name in _text(schema) else 8 for field in schema}
    metadata, declared = parquet.metadata, 0
    for group in range(metadata.num_row_groups):
        row_group = metadata.row_group(group)
        for i in range(row_group.num_columns):
            chunk = row_group.column(i)
            name = chunk.path_in_schema.split(".")[0]
            if name in width:
                declared += max(chunk.total_uncompressed_size, 0) + max(chunk.num_values, 0) * width[name]
    if declared > MAX_TABLE_BYTES:
        raise NaapError(f"{path}: its footer declares {declared:,} bytes in the columns naap reads, "
                        f"more than the {MAX_TABLE_BYTES >> 20:,} MiB naap reads of one table")


def _text(schema: pa.Schema) -> list[str]:
    return [field.name for field in schema if pa.types.is_string(field.type)]


def _decode_text(path: Path, table: pa.Table, schema: pa.Schema) -> pa.Table:
    """The text columns, read dictionary-encoded, decoded once no value is over MAX_TEXT_BYTES."""
    for name in _text(schema):
        column = table.column(name)
        longest = max((pc.max(pc.binary_length(chunk.dictionary)).as_py() or 0 for chunk in column.chunks), default=0)
        if longest > MAX_TEXT_BYTES:
            raise NaapError(f"{path}: column '{name}': a value of {longest:,} bytes, more than the "
                            f"{MAX_TEXT_BYTES} naap reads")
        table = table.set_column(table.schema.get_field_index(name), name, column.cast(pa.string()))
    return table


def read_parquet(path: str | Path, schema: pa.Schema) -> pd.DataFrame:
    """Read and check a table against `schema`; any problem is one NaapError naming file and column.
    Only a regular file is read, only the schema's columns, and only after the footer is checked."""
    path = Path(path)
    with open_regular(path) as f:
        try:
            _check_footer(path, f)
            parquet = pq.ParquetFile(f, read_dictionary=_text(schema))
            _check_columns(path, parquet, schema)
            table = _decode_text(path, parquet.read(columns=schema.names), schema)
        except NaapError:
            raise
        except PARQUET_ERRORS as exc:
            raise _unreadable(path, exc) from None
    for field in schema:
        column = table.column(field.name)
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
    with open_regular(path) as f:
        try:
            _check_footer(path, f)
            metadata = pq.read_schema(f).metadata or {}
        except NaapError:
            raise
        except PARQUET_ERRORS as exc:
            raise _unreadable(path, exc) from None
    try:
        provenance = json.loads(metadata.get(PROVENANCE_KEY, b"{}"))
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
