"""The hostile corpus of issue 17, data side: what reads and writes dataset folders, and the
generic command line. Each refused case ends with exit code 2 and one line naming the file and
the field, no traceback, the folder as it was; cases that could hang (FIFOs) run as real
processes under a 20 s timeout, and memory is measured in a fresh process (getrusage)."""
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import naap
from naap import _io
from naap._io import read_parquet, read_provenance, write_parquet
from naap._signals import HungUp, handled_signals, interrupt_exit_code, raise_interrupt
from naap.bench.tables import EPOCHS_SCHEMA, PROXIES, PROXIES_FILE, load_proxies
from naap.cli import main
from naap.errors import NaapError
from tests.conftest import REPO
from tests.runs import ENV, SMOKE
from tests.system.test_hostile import DATA, diverged_copy, refused, snapshot

HANG_SECONDS = 20
A, E = "architectures.parquet", "epochs.parquet"


def naap_run(*args, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m naap ARGS` as a real process; a hang fails the test after HANG_SECONDS."""
    return subprocess.run([sys.executable, "-m", "naap", *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          env={**ENV, "PYTHONPATH": str(REPO), **(env or {})}, timeout=HANG_SECONDS)


def one_line_error(process: subprocess.CompletedProcess) -> str:
    err = process.stderr.strip()
    assert process.returncode == 2 and err.splitlines() == [err] and err.startswith("naap: error: "), process.stderr
    assert "Traceback" not in err
    return err


def copy_of_data(tmp_path: Path) -> Path:
    folder = tmp_path / "dataset"
    shutil.copytree(DATA, folder)
    return folder


def with_provenance(path: Path, provenance) -> None:
    """Rewrite a table with `provenance` (any JSON value) as its naap.provenance."""
    table = pq.read_table(path)
    pq.write_table(table.replace_schema_metadata({b"naap.provenance": json.dumps(provenance).encode()}), path)


# --- only regular files are opened ----------------------------------------------------------

def fifo(path: Path) -> None:
    path.unlink(missing_ok=True)
    os.mkfifo(path)


@pytest.mark.parametrize("name,commands", [
    (A, ["info", "export-csv", "plot", "leaderboard"]),
    (E, ["info", "export-csv", "plot", "leaderboard"]),
    (PROXIES_FILE, ["leaderboard"]),
])
def test_a_fifo_as_a_table_is_refused_at_once_by_every_command(tmp_path, name, commands):
    folder = copy_of_data(tmp_path)
    fifo(folder / name)
    before = snapshot(tmp_path)
    argv = {"info": ["info", folder], "export-csv": ["export-csv", folder, tmp_path / "x.csv"],
            "plot": ["plot", folder, "--arch", "1", "--out", tmp_path / "x.png"],
            "leaderboard": ["leaderboard", folder, "--out", tmp_path / "board", "--quiet"]}
    for command in commands:
        err = one_line_error(naap_run(*argv[command], cwd=tmp_path))
        assert err == f"naap: error: {folder / name}: a FIFO, not a regular file; naap reads only regular files"
        assert snapshot(tmp_path) == before


@pytest.mark.parametrize("name", ["naap440.csv", "generated_schemes.json"])
def test_a_fifo_in_a_release_is_refused_at_once(release_dir, tmp_path, name):
    release = tmp_path / "release"
    shutil.copytree(release_dir, release)
    fifo(release / name)
    err = one_line_error(naap_run("import-release", release, "--out", tmp_path / "out", cwd=tmp_path))
    assert err == f"naap: error: {release / name}: a FIFO, not a regular file; naap reads only regular files"
    assert not (tmp_path / "out").exists()


# --- bounded reads ---------------------------------------------------------------------------

def peak_megabytes_of(*args, cwd: Path) -> tuple[subprocess.CompletedProcess, float]:
    """Run `naap ARGS` from a fresh Python whose only child it is: the child's peak resident memory."""
    probe = ("import resource, subprocess, sys; p = subprocess.run([sys.executable, '-m', 'naap', *sys.argv[1:]], "
             "capture_output=True, text=True); print(p.returncode); print(p.stdout + p.stderr, file=sys.stderr); "
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    process = subprocess.run([sys.executable, "-c", probe, *map(str, args)], cwd=cwd, capture_output=True, text=True,
                             env={**ENV, "PYTHONPATH": str(REPO)}, timeout=60)
    code, kilobytes = process.stdout.split()
    return subprocess.CompletedProcess(args, int(code), stdout="", stderr=process.stderr), int(kilobytes) / 1024


def test_an_extra_gigabyte_column_is_never_read(tmp_path):
    """A 20 kB architectures.parquet with an extra 1 GiB zstd column (a few kB on disk): naap info
    reads only the schema's columns; it took 2.4 GB of memory when every column was read."""
    folder = copy_of_data(tmp_path)
    table = pq.read_table(folder / A)
    row = b"\0" * ((1 << 30) // len(table))
    pq.write_table(table.append_column("blob", pa.array([row] * len(table), pa.binary())), folder / A,
                   compression="zstd")
    del table
    assert (folder / A).stat().st_size < 1 << 20
    plain, plain_peak = peak_megabytes_of("info", DATA, cwd=tmp_path)
    padded, padded_peak = peak_megabytes_of("info", folder, cwd=tmp_path)
    assert plain.returncode == padded.returncode == 0, padded.stderr
    assert padded_peak < plain_peak + 100, (plain_peak, padded_peak)  # not the column's 1,024 MB


def test_a_table_that_declares_more_than_the_bound_is_refused_before_its_data_are_read(tmp_path, capsys,
                                                                                         monkeypatch):
    # architectures.parquet declares about 0.2 MB, epochs.parquet (39,600 rows of 10 columns) over 3 MB
    monkeypatch.setattr(_io, "MAX_TABLE_BYTES", 1 << 20)
    reads, read = [], pq.ParquetFile.read
    monkeypatch.setattr(pq.ParquetFile, "read", lambda self, *a, **k: reads.append(self.metadata.num_rows)
                        or read(self, *a, **k))
    line = refused(capsys, ["info", DATA])
    assert line.startswith(f"naap: error: {DATA / E}: its footer declares ") and "naap reads of one table" in line
    assert reads == [440]  # architectures.parquet's rows were read, none of epochs.parquet's


def test_values_that_encode_small_count_as_decoded(tmp_path, monkeypatch):
    """200,000 equal rows: run-length and dictionary encoding keep them to a few kB, decoded
    they take 11 MB; the bound counts them decoded."""
    rows = 200_000
    table = pa.table({"arch_id": pa.array([1] * rows, pa.int32()),
                      **{name: pa.array([0.5] * rows) for name in PROXIES}})
    pq.write_table(table, tmp_path / PROXIES_FILE)
    encoded = sum(pq.ParquetFile(tmp_path / PROXIES_FILE).metadata.row_group(0).column(i).total_uncompressed_size
                  for i in range(len(table.schema)))
    monkeypatch.setattr(_io, "MAX_TABLE_BYTES", 4 << 20)
    assert encoded < 4 << 20 < rows * 8 * len(table.schema)
    with pytest.raises(NaapError, match="proxies.parquet: its footer declares .* more than"):
        load_proxies(tmp_path)


def test_a_long_text_value_is_refused_before_it_is_decoded_on_every_row(tmp_path, capsys):
    folder = copy_of_data(tmp_path)
    table = pq.read_table(folder / A)
    i = table.schema.get_field_index("arch_hash")
    pq.write_table(table.set_column(i, "arch_hash", pa.array(["a" * 1000] * len(table))), folder / A)
    assert refused(capsys, ["info", folder]) == (f"naap: error: {folder / A}: column 'arch_hash': a value of "
                                                 f"1,000 bytes, more than the 256 naap reads")


def non_utf8_column_name(folder: Path) -> None:
    table = pq.read_table(folder / A)
    pq.write_table(table.append_column("x\u00e9", pa.array([1] * len(table))), folder / A, store_schema=False)
    data = (folder / A).read_bytes()
    (folder / A).write_bytes(data.replace("x\u00e9".encode(), b"x\xff\xfe"))


def duplicate_column(folder: Path) -> None:
    table = pq.read_table(folder / A)
    pq.write_table(table.append_column("arch_id", table.column("arch_id")), folder / A)


@pytest.mark.parametrize("damage,message", [
    (non_utf8_column_name, "not a readable Parquet file (a name in its schema is not UTF-8)"),
    (duplicate_column, "column 'arch_id' appears 2 times (must be once)"),
], ids=["non-utf8-column-name", "a-column-twice"])
def test_a_malformed_footer_is_one_line(tmp_path, capsys, damage, message):
    folder = copy_of_data(tmp_path)
    damage(folder)
    before = snapshot(tmp_path)
    for argv in (["info", folder], ["export-csv", folder, tmp_path / "x.csv"]):
        assert refused(capsys, argv) == f"naap: error: {folder / A}: {message}"
    assert snapshot(tmp_path) == before


# --- invariants ------------------------------------------------------------------------------

def test_duplicated_proxies_are_refused(tmp_path, capsys):
    """100 duplicated arch_ids were ranked as 540 rows, duplicates on both sides of the split."""
    folder = copy_of_data(tmp_path)
    proxies = pd.read_parquet(folder / PROXIES_FILE)
    doubled = pd.concat([proxies, proxies.iloc[:100]], ignore_index=True)
    pq.write_table(pa.Table.from_pandas(doubled, preserve_index=False), folder / PROXIES_FILE)
    with pytest.raises(NaapError, match=r"proxies.parquet: column 'arch_id': arch_id 1 appears more than once"):
        load_proxies(folder)
    before = snapshot(tmp_path)
    line = refused(capsys, ["leaderboard", folder, "--out", tmp_path / "board", "--quiet"])
    assert line == f"naap: error: {folder / PROXIES_FILE}: column 'arch_id': arch_id 1 appears more than once " \
                   f"(must be unique)"
    assert snapshot(tmp_path) == before


# --- provenance and datasets the docs call valid -------------------------------------------

def test_a_dataset_whose_every_run_diverged_loads_and_plot_says_there_is_nothing_to_draw(tmp_path, capsys):
    folder = diverged_copy(tmp_path, every_run=True)
    bench = naap.load(folder)
    assert len(bench) == 440 and bench.num_epochs == 0 and bench.query().empty
    line = refused(capsys, ["plot", folder, "--arch", "1", "--out", tmp_path / "x.png"])
    assert line.startswith("naap: error: --arch: no epoch rows to draw")
    assert not (tmp_path / "x.png").exists()


def test_a_provenance_recipe_that_is_a_string_is_not_a_name(tmp_path, capsys):
    folder = copy_of_data(tmp_path)
    with_provenance(folder / A, {"recipe": "naap440"})
    assert naap.load(folder).name == folder.name
    assert main(["info", str(folder)]) == 0 and "recipe ?" in capsys.readouterr().out


@pytest.mark.parametrize("dataset,field", [
    ("cifar10", "'dataset': must be an object, got str"),
    ({"train_size": "50000", "test_size": 10000}, "'dataset.train_size': must be a whole number >= 1, got '50000'"),
    ({"in_channels": -3}, "'dataset.in_channels': must be a whole number >= 1, got -3"),
], ids=["a-string", "a-size-as-text", "negative-channels"])
def test_a_malformed_provenance_dataset_is_one_line(tmp_path, capsys, dataset, field):
    folder = copy_of_data(tmp_path)
    with_provenance(folder / A, {"kind": "rebuilt", "dataset": dataset})
    with pytest.raises(NaapError, match="provenance field"):
        naap.load(folder).cost()
    assert refused(capsys, ["info", folder]) == f"naap: error: {folder / A}: provenance field {field}"


# --- merge and --reuse check rows ------------------------------------------------------------

@pytest.fixture
def sharded(smoke_run, tmp_path) -> Path:
    """The smoke run's folder as its shards leave it: every part in, no merged tables yet."""
    folder = tmp_path / "sharded"
    shutil.copytree(smoke_run, folder)
    for name in (A, E, "DATASET.md", PROXIES_FILE):
        (folder / name).unlink(missing_ok=True)
    return folder


def parts(folder: Path) -> list[Path]:
    return sorted((folder / "parts").glob("*.parquet"))


def edit_part(path: Path, rows=None, record=None) -> None:
    """Rewrite a part with its rows and record changed by `rows(frame)` and `record(dict)`."""
    frame, about = read_parquet(path, EPOCHS_SCHEMA), read_provenance(path)
    frame = rows(frame) if rows else frame
    if record:
        record(about)
    write_parquet(frame, path, EPOCHS_SCHEMA, provenance=about)


def set_field(key, value):
    return lambda record: record.update({key: value}) if value is not None else record.pop(key)


def extra_epoch(rows):
    return pd.concat([rows, rows.iloc[[-1]].assign(epoch=rows.epoch.max() + 1)], ignore_index=True)


# id: (damage to the first part, or to the folder, and what the line says after "PART: ")
BAD_PARTS = {
    "another-part-copied-over-it": (lambda f, p: shutil.copyfile(parts(f)[1], p), "its record is {"),
    "accuracy-7": (lambda f, p: edit_part(p, rows=lambda r: r.assign(test_accuracy=7.0)),
                   "column 'test_accuracy': arch_id"),
    "an-extra-epoch": (lambda f, p: edit_part(p, rows=extra_epoch),
                       "epochs: 3 rows, not a finished run of 2 epochs"),
    "no-rows": (lambda f, p: edit_part(p, rows=lambda r: r.iloc[:0]), "epochs: 0 rows, not a finished run of 2"),
    "another-architecture's-rows": (lambda f, p: edit_part(p, rows=lambda r: r.assign(arch_id=r.arch_id + 1)),
                                    "column 'arch_id': arch_id"),
    "record-without-started": (lambda f, p: edit_part(p, record=set_field("started", None)),
                               "record field 'started': missing"),
    "record-epochs-as-text": (lambda f, p: edit_part(p, record=set_field("epochs", "2")),
                              "record field 'epochs': wrong type, got '2'"),
    "record-diverged-yet-complete": (lambda f, p: edit_part(p, record=set_field("diverged", True)),
                                     "epochs: 2 rows, not a finished run of 2 epochs"),
    "record-versions-a-list": (lambda f, p: edit_part(p, record=set_field("versions", ["torch"])),
                               "record field 'versions': wrong type"),
    "recipe-edited-to-3-epochs-after-the-run": (
        lambda f, p: (f / "recipe.yaml").write_text((f / "recipe.yaml").read_text().replace("epochs: 2", "epochs: 3")),
        "epochs: 2 rows, not a finished run of 3 epochs"),
}


@pytest.mark.parametrize("damage,message", BAD_PARTS.values(), ids=BAD_PARTS.keys())
def test_a_merge_checks_every_part_and_writes_nothing(sharded, capsys, damage, message):
    first = parts(sharded)[0]
    damage(sharded, first)
    before = snapshot(sharded)
    line = refused(capsys, ["merge", sharded])
    assert line.startswith(f"naap: error: {first}: ") and message in line, line
    assert snapshot(sharded) == before
    assert refused(capsys, ["merge", sharded]) == line  # not "complete, nothing to do"


def test_the_undamaged_parts_merge_into_tables_the_loader_takes(sharded, smoke_run, capsys):
    assert main(["merge", str(sharded)]) == 0, capsys.readouterr().err
    merged = naap.load(sharded)
    assert merged.epochs.equals(naap.load(smoke_run).epochs)
    assert "2 epochs per run" in (sharded / "DATASET.md").read_text()


def test_a_fifo_as_a_part_is_refused_at_once(sharded, tmp_path):
    first = parts(sharded)[0]
    fifo(first)
    err = one_line_error(naap_run("merge", sharded, cwd=tmp_path))
    assert err == f"naap: error: {first}: a FIFO, not a regular file; naap reads only regular files"
    assert not (sharded / A).exists()


def test_reuse_refuses_another_architectures_rows_under_the_right_name(smoke_run, tmp_path, capsys, monkeypatch):
    other = tmp_path / "other"
    shutil.copytree(smoke_run, other)
    first = parts(other)[0]
    edit_part(first, rows=lambda r: r.assign(arch_id=r.arch_id + 1))
    monkeypatch.chdir(smoke_run.parent)  # where the smoke recipe's synthetic images are
    line = refused(capsys, ["dataset", SMOKE, "--out", tmp_path / "out", "--reuse", other])
    assert line.startswith(f"naap: error: {first}: column 'arch_id': arch_id "), line
    assert not (tmp_path / "out").exists()


# --- the command line ------------------------------------------------------------------------

def test_a_digit_that_is_not_a_number_is_an_unknown_architecture(tmp_path, capsys):
    line = refused(capsys, ["plot", "--arch", "\u00b2", "--out", tmp_path / "x.png"])
    assert line.startswith("naap: error: --arch: '\u00b2': ")


@pytest.mark.parametrize("command", ["info", "export-csv", "plot", "merge"])
def test_a_path_over_path_max_is_one_line(tmp_path, capsys, command):
    long = tmp_path / ("a" * 5000)
    argv = {"info": ["info", long], "export-csv": ["export-csv", long, tmp_path / "x.csv"],
            "plot": ["plot", long, "--arch", "1", "--out", tmp_path / "x.png"], "merge": ["merge", long]}[command]
    assert refused(capsys, argv) == f"naap: error: {long}: File name too long"


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "0", "1e999", "two"])
def test_max_hours_must_be_a_finite_positive_number(capsys, value):
    code = main(["dataset", str(SMOKE), "--max-hours", value])
    err = capsys.readouterr().err
    assert code == 2 and len(err.splitlines()) == 1 and "argument --max-hours: must be a" in err, err


@pytest.mark.parametrize("target,message", [
    (E, "a file of the dataset {folder} that export-csv reads; choose another file"),
    ("recipe.yaml", "must be a .csv file"),
    ("x.txt", "must be a .csv file"),
], ids=["its-own-table", "a-recipe", "not-csv"])
def test_export_csv_refuses_its_inputs_and_non_csv_names(tmp_path, capsys, target, message):
    folder = copy_of_data(tmp_path)
    (folder / "recipe.yaml").write_text("name: x\n")
    if target == E:  # the table itself, reached through a .csv name linking to it
        (folder / "epochs.csv").symlink_to(folder / E)
        target = "epochs.csv"
    before = snapshot(tmp_path)
    line = refused(capsys, ["export-csv", folder, folder / target])
    assert line.startswith(f"naap: error: {folder / target}: {message.format(folder=folder)}"), line
    assert snapshot(tmp_path) == before


def test_an_out_holding_only_dotfiles_is_not_empty(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "project"
    (out / ".git").mkdir(parents=True)
    (out / ".env").write_text("SECRET=1\n")
    before = snapshot(tmp_path)
    line = refused(capsys, ["dataset", SMOKE, "--out", out])
    assert line == f"naap: error: {out}: not empty (it holds '.env') and not made by `naap dataset` " \
                   f"(no recipe.yaml); choose another --out"
    assert snapshot(tmp_path) == before


def test_output_is_utf8_whatever_the_locale(tmp_path):
    folder = copy_of_data(tmp_path)
    about = read_provenance(folder / A)
    about["recipe"]["name"] = "\u03c4-naap"
    with_provenance(folder / A, about)
    process = subprocess.run([sys.executable, "-m", "naap", "info", str(folder)], capture_output=True, cwd=tmp_path,
                             env={**ENV, "PYTHONPATH": str(REPO), "PYTHONIOENCODING": "ascii", "LC_ALL": "C"},
                             timeout=HANG_SECONDS)
    assert process.returncode == 0, process.stderr
    assert "recipe \u03c4-naap;" in process.stdout.decode("utf-8")


def test_sighup_is_handled_as_sigterm_and_ignored_under_nohup():
    """Unit level (the end-to-end stop is in tests/system/test_stopping.py): naap's handlers
    take SIGHUP as they take SIGTERM, unless the process ignores it."""
    with pytest.raises(HungUp) as interrupt:
        raise_interrupt(signal.SIGHUP, None)
    assert interrupt_exit_code(interrupt.value) == 128 + signal.SIGHUP
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        assert signal.SIGHUP not in handled_signals()
    finally:
        signal.signal(signal.SIGHUP, previous)
    assert signal.SIGHUP in handled_signals() or previous == signal.SIG_IGN


def test_every_rebuilt_provenance_records_the_cpu(smoke_run):
    """CPU capability and BLAS (settings.cpu_record) in the merged tables' and the proxies' provenance."""
    for name in (A, PROXIES_FILE):
        about = read_provenance(smoke_run / name)
        hardware = [s.get("hardware") for s in about["settings"]] if name == A else [about["hardware"]]
        assert hardware and all(h and "capability" in json.dumps(h) and "blas" in json.dumps(h) for h in hardware), about
