"""The hostile-input corpus: bad recipes, corrupt or hostile dataset folders and malformed
releases, all generated here. Each case must end with exit code 2 and exactly one line on
stderr, `naap: error: FILE: FIELD...`, no traceback, and nothing created or changed under the
test's folder (the outputs it names included). Most cases run in-process through
naap.cli.main; a few run as real subprocesses to prove no traceback escapes."""
import copy
import errno
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from naap.bench.tables import ARCHITECTURES_SCHEMA, EPOCHS_SCHEMA, load_tables
from naap.cli import main
from tests.conftest import REPO

DATA = REPO / "data" / "naap440"
RECIPE = REPO / "recipes" / "naap440.yaml"
BASE_TEXT = RECIPE.read_text()
BASE = yaml.safe_load(BASE_TEXT)
SEED = 20220819


def snapshot(root: Path) -> dict:
    """Every path under root with a hash of its bytes: what a refused command must leave as it was."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(root.rglob("*"))}


def refused(capsys, argv) -> str:
    """Run naap in-process; it must exit 2 with one `naap: error:` line. Returns that line."""
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("naap: error: ") and "Traceback" not in err, err
    return lines[0]


def naap_process(*args, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "naap", *map(str, args)], cwd=cwd, capture_output=True, text=True)


# --- bad recipes ------------------------------------------------------------------

def edited(*changes) -> str:
    """The NAAP-440 recipe with (path, value) changes, as YAML text."""
    raw = copy.deepcopy(BASE)
    for path, value in changes:
        node = raw
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return yaml.dump(raw, Dumper=NoAliasDumper, sort_keys=False)


class NoAliasDumper(yaml.SafeDumper):
    """Writes a repeated object out again instead of as an alias (which recipes refuse)."""

    def ignore_aliases(self, data):
        return True


LAUGHS = "".join(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}' if i else 'lol'] * 10)}]\n" for i in range(9))
BASE_LINES = BASE_TEXT.splitlines()


def line_of(text: str) -> int:
    """The number of the base recipe's line `text`."""
    return BASE_LINES.index(text) + 1


# id: (the recipe file's content, what the one line must say after "FILE: ")
BAD_RECIPES = {
    "stride-200": (edited((("search_space", "positions", 0, "stride"), [200])),
                   "search_space.positions[0].stride[0]: must be from 1 to 32"),
    "stride-0": (edited((("search_space", "positions", 2, "stride"), [0, 1])),
                 "search_space.positions[2].stride[0]: must be from 1 to 32"),
    "kernel-even": (edited((("search_space", "positions", 0, "kernel_size"), [4])),
                    "search_space.positions[0].kernel_size[0]: must be an odd kernel size from 1 to 31"),
    "kernel-wider-than-the-image": (edited((("search_space", "positions", 1, "kernel_size"), [33])),
                                    "search_space.positions[1].kernel_size[0]: must be an odd kernel size"),
    "width-beyond-int16": (edited((("search_space", "positions", 1, "width"), [16, 40000])),
                           "search_space.positions[1].width[1]: must be from 1 to 32,767"),
    "width-zero": (edited((("search_space", "positions", 1, "width"), [0])),
                   "search_space.positions[1].width[0]: must be from 1"),
    "too-many-positions": (edited((("search_space", "positions"), BASE["search_space"]["positions"] * 17)),
                           "search_space.positions: 68 positions, at most 64"),
    "too-many-options": (edited((("search_space", "positions", 0, "width"), list(range(1, 12000)))),
                         "search_space.positions[0]: 11,999 layer options"),
    "max-stride2-above-positions": (edited((("search_space", "max_stride2_layers"), 9)),
                                    "search_space.max_stride2_layers: must be from 0 to 4"),
    "sample-count-beyond-limit": (edited((("search_space", "generator"), {"mode": "sample", "count": 10 ** 7,
                                                                           "seed": 1})),
                                  "search_space.generator.count: must be from 1 to 1,000,000"),
    "seed-beyond-int64": (edited((("training", "seeds"), [2 ** 63])), "training.seeds[0]: must be from 0 to"),
    "seed-negative": (edited((("training", "seeds"), [-1])), "training.seeds[0]: must be from 0 to"),
    "epochs-beyond-int16": (edited((("training", "epochs"), 40000)), "training.epochs: must be from 1 to 32,767"),
    "lr-inf": (edited((("training", "optimizer", "lr"), float("inf"))),
               "training.optimizer.lr: must be a finite number, got inf"),
    "lr-huge-integer": (edited((("training", "optimizer", "lr"), 10 ** 400)), "training.optimizer.lr: must be float"),
    "lr-as-text": (edited((("training", "optimizer", "lr"), "0.1")),
                   "training.optimizer.lr: must be float, got '0.1' (text, not a number"),
    "weight-decay-inf": (edited((("training", "optimizer", "weight_decay"), float("inf"))),
                         "training.optimizer.weight_decay: must be a finite number"),
    "weight-decay-1e-4-is-text": (BASE_TEXT.replace("weight_decay: 1.0e-4", "weight_decay: 1e-4"),
                                  "training.optimizer.weight_decay: must be float, got '1e-4'"),
    "momentum-nan": (edited((("training", "optimizer", "momentum"), float("nan"))),
                     "training.optimizer.momentum: must be a finite number, got nan"),
    "normalize-mean-nan": (edited((("training", "normalize", "mean"), float("nan"))),
                           "training.normalize.mean: must be a finite number"),
    "normalize-std-inf": (edited((("training", "normalize", "std"), float("inf"))),
                          "training.normalize.std: must be a finite number"),
    "lr-underflows-to-zero": (edited((("training", "lr_schedule", "factor"), 1e-300)),
                              "training.lr_schedule.factor: the learning rate underflows to 0 at epoch 3"),
    "train-size-10**12": (edited((("dataset", "train_size"), 10 ** 12)),
                          "dataset.train_size: must be from 1 to 50,000 (the images cifar10 has)"),
    "test-size-beyond-fashion-mnist": (edited((("dataset", "name"), "fashion-mnist"),
                                              (("dataset", "test_size"), 10001)),
                                       "dataset.test_size: must be from 1 to 10,000 (the images fashion-mnist has)"),
    "synthetic-beyond-its-cap": (edited((("dataset", "name"), "synthetic"), (("dataset", "train_size"), 100001)),
                                 "dataset.train_size: must be from 1 to 100,000"),
    "batch-larger-than-the-training-set": (edited((("dataset", "train_size"), 1000),
                                                  (("training", "batch_size"), 1001)),
                                           "training.batch_size: must be from 1 to 1,000 (the training images)"),
    "root-with-a-nul-byte": (edited((("dataset", "root"), "data/\0cifar10")),
                             "dataset.root: must not hold control characters"),
    "description-a-date": (BASE_TEXT.replace("description: 440", "description: 2022-09-14 440", 1)
                           .replace("description: 2022-09-14 440 small CNNs, 90 epochs each on CIFAR-10 (Hakim, "
                                    "arXiv 2209.06626)", "description: 2022-09-14"),
                           "description: must be str, got datetime.date(2022, 9, 14)"),
    "description-huge": (edited((("description",), "x" * 5000)), "description: must be at most 2000 characters"),
    "description-a-list": (edited((("description",), ["a", "b"])), "description: must be str"),
    "name-two-lines": (edited((("name",), "one\ntwo")), "name: must not hold control characters"),
    "trainings-per-device-a-billion": (edited((("runner", "trainings_per_device"), 10 ** 9)),
                                       "runner.trainings_per_device: must be from 1 to 64"),
    "unknown-key-deep": (edited((("training", "optimizer", "betas"), [0.9, 0.99])),
                         "training.optimizer.betas: unknown key"),
    "duplicate-key": (BASE_TEXT + "training: {}\n", f"line {len(BASE_LINES) + 1}: duplicate key 'training'"),
    "duplicate-key-nested": (BASE_TEXT.replace("  epochs: 90\n", "  epochs: 90\n  epochs: 3\n"),
                             f"line {line_of('  epochs: 90') + 1}: duplicate key 'epochs'"),
    "alias-bomb": (LAUGHS + BASE_TEXT, "line 2: YAML alias *l0 (aliases are not allowed in a recipe)"),
    "merge-key": (BASE_TEXT.replace("split:\n", "split:\n  <<: {test_items: 3}\n"),
                  f"line {line_of('split:') + 1}: YAML merge key '<<'"),
    "not-yaml": ("name: [unclosed\n", "line 2: not valid YAML"),
    "a-5000-digit-integer": (BASE_TEXT.replace("seeds: [20220819]", "seeds: [" + "1" * 5000 + "]"),
                             f"line {line_of('  seeds: [20220819]')}: not valid YAML (Exceeds the limit"),
    "an-impossible-date": (BASE_TEXT.replace("name: naap440", "name: 2022-02-31"),
                           "line 2: not valid YAML (day is out of range for month)"),
    "nested-too-deeply": ("[" * 3000 + "]" * 3000, "not a recipe (nested too deeply)"),
    "empty": ("", "empty; a recipe is a mapping"),
    "a-list": ("- 1\n- 2\n", "a recipe is a mapping of name, search_space, dataset, training, split; got list"),
    "not-utf8": (b"name: \xff\xfe\n", "not UTF-8 text (byte 6)"),
    "larger-than-1-MiB": ("#" * (1 << 20) + "\n" + BASE_TEXT,
                          f"{(1 << 20) + 1 + len(BASE_TEXT.encode()):,} bytes, more than the 1 MiB naap reads of it"),
    # 12 positions alike, all of them required: 24 first layers, then 24 + 3 (residual) options each
    "a-huge-space": (edited((("search_space", "positions"), [{"kernel_size": [1, 3, 5], "width": [8, 16, 24, 32],
                                                              "stride": [1, 2], "residual": [False, True]}] * 12),
                            (("search_space", "min_layers"), 12), (("search_space", "max_stride2_layers"), 12)),
                     f"search_space: {24 * 27 ** 11 / 1e17:.1f}e17 schemes; naap lists or trains at most 1,000,000"),
}


def write_recipe(folder: Path, content) -> Path:
    path = folder / "bad.yaml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


@pytest.mark.parametrize("content,message", BAD_RECIPES.values(), ids=BAD_RECIPES.keys())
def test_a_bad_recipe_is_refused_before_anything_is_made(tmp_path, monkeypatch, capsys, content, message):
    monkeypatch.chdir(tmp_path)  # a relative dataset root would land here, and be seen
    recipe = write_recipe(tmp_path, content)
    before = snapshot(tmp_path)
    for argv in (["schemes", recipe], ["dataset", recipe, "--out", tmp_path / "out", "--estimate"]):
        line = refused(capsys, argv)
        assert line.startswith(f"naap: error: {recipe}: {message}"), line
        assert snapshot(tmp_path) == before


@pytest.mark.parametrize("kind", ["a-directory", "a-fifo"])
def test_a_recipe_path_that_is_not_a_file_is_one_line(tmp_path, capsys, kind):
    path = tmp_path / "recipe.yaml"
    if kind == "a-directory":
        path.mkdir()
    else:
        os.mkfifo(path)  # opening it would wait for a writer for ever
    before = snapshot(tmp_path)
    line = refused(capsys, ["schemes", path])
    assert line == f"naap: error: {path}: " + ("is a directory, not a recipe file" if kind == "a-directory"
                                                else "a FIFO, not a regular file; naap reads only regular files")
    assert snapshot(tmp_path) == before


def test_the_unedited_recipe_passes_the_same_way(tmp_path, monkeypatch, capsys):
    """The harness refuses only what is bad: the recipe, written as the corpus writes them, lists 440 schemes."""
    monkeypatch.chdir(tmp_path)
    assert main(["schemes", str(write_recipe(tmp_path, edited()))]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 440


# --- corrupt or hostile dataset folders ------------------------------------------------

def rewrite(folder: Path, name: str, change, schema=None) -> None:
    """Apply `change` to a table of `folder` and write it back (with `schema`, default the layout's)."""
    schema = schema or (ARCHITECTURES_SCHEMA if name == "architectures.parquet" else EPOCHS_SCHEMA)
    frame = change(pd.read_parquet(folder / name))
    pq.write_table(pa.Table.from_pandas(frame, schema=schema, preserve_index=False), folder / name)


def set_value(column, value, **where):
    def change(frame):
        rows = np.logical_and.reduce([frame[k] == v for k, v in where.items()])
        frame.loc[rows, column] = value
        return frame
    return change


def nan_at(path: Path, column: str, **where) -> None:
    """A NaN value (not a null: pandas would write NaN as null) at the rows `where` picks."""
    table = pq.read_table(path)
    rows = np.logical_and.reduce([table.column(k).to_numpy() == v for k, v in where.items()])
    values = table.column(column).to_numpy().copy()
    values[rows] = np.nan
    i = table.schema.get_field_index(column)
    pq.write_table(table.set_column(i, table.schema.field(i), pa.array(values)), path)


def nullable(schema: pa.Schema, column: str) -> pa.Schema:
    return schema.set(schema.get_field_index(column), schema.field(column).with_nullable(True))


def garbage(folder, name):
    (folder / name).write_bytes(b"not a parquet file at all")


def truncated(folder, name):
    data = (folder / name).read_bytes()
    (folder / name).write_bytes(data[: len(data) // 2])


def huge_metadata(folder, name):
    table = pq.read_table(folder / name)
    pq.write_table(table.replace_schema_metadata({b"blob": b"0" * (17 << 20)}), folder / name, compression="zstd")


def a_directory(folder, name):
    (folder / name).unlink()
    (folder / name).mkdir()
    (folder / name / "part-0.parquet").write_bytes((DATA / name).read_bytes())


def drop_rows(keep):
    return lambda frame: frame[keep(frame)]


A, E = "architectures.parquet", "epochs.parquet"
BEST = pd.read_parquet(DATA / E).groupby("arch_id")["test_accuracy"].max()  # one seed: max_accuracy
PUBLISHED = pd.read_parquet(DATA / A).set_index("arch_id")  # the release's counts, made from its schemes


def swap_hashes(frame):
    frame.loc[frame.arch_id == 1, "arch_hash"], frame.loc[frame.arch_id == 2, "arch_hash"] = \
        PUBLISHED.arch_hash[2], PUBLISHED.arch_hash[1]
    return frame


def set_layers(arch_id, layers):
    def change(frame):
        frame["layers"] = [layers if i == arch_id else list(l) for i, l in zip(frame.arch_id, frame.layers)]
        return frame
    return change


STRIDE_0 = [{"kernel_size": 3, "width": 8, "stride": 0, "residual": False}]
# id: (file, how to damage it, what the one line says after "DIR/")
BAD_FOLDERS = {
    "num-params-negative": (A, lambda d, n: rewrite(d, n, set_value("num_params", -3, arch_id=7)),
                            "architectures.parquet: column 'num_params': arch_id 7 has -3 (must be > 0)"),
    "num-macs-zero": (A, lambda d, n: rewrite(d, n, set_value("num_macs", 0, arch_id=12)),
                      "architectures.parquet: column 'num_macs': arch_id 12 has 0 (must be > 0)"),
    "max-accuracy-above-1": (A, lambda d, n: rewrite(d, n, set_value("max_accuracy", 1.5, arch_id=3)),
                             "architectures.parquet: column 'max_accuracy': arch_id 3 has 1.5 (must be in [0, 1])"),
    "max-accuracy-not-the-epochs-best": (A, lambda d, n: rewrite(d, n, set_value("max_accuracy", 0.6, arch_id=5)),
                                         "architectures.parquet: column 'max_accuracy': arch_id 5 has 0.6, "
                                         f"its epochs give {float(BEST[5])!r} (the mean over seeds of each run's best"),
    "diverged-above-its-best-epoch": (A, lambda d, n: rewrite(d, n, lambda f: set_value("max_accuracy", 0.9, arch_id=5)(
        set_value("diverged", True, arch_id=5)(f))),
        f"architectures.parquet: column 'max_accuracy': arch_id 5 has 0.9, more than its best epoch, "
        f"{float(BEST[5])!r} (it diverged)"),
    "duplicate-architecture": (A, lambda d, n: rewrite(d, n, lambda f: pd.concat([f, f[f.arch_id == 9]])),
                               "architectures.parquet: column 'arch_id': arch_id 9 appears more than once"),
    "arch-hash-swapped": (A, lambda d, n: rewrite(d, n, swap_hashes),
                          f"architectures.parquet: column 'arch_hash': arch_id 1 has {PUBLISHED.arch_hash[2]!r}, "
                          f"its layers give {PUBLISHED.arch_hash[1]!r}"),
    "num-layers-negative": (A, lambda d, n: rewrite(d, n, set_value("num_layers", -7, arch_id=5)),
                            f"architectures.parquet: column 'num_layers': arch_id 5 has -7, "
                            f"its layers give {PUBLISHED.num_layers[5]}"),
    "num-params-one": (A, lambda d, n: rewrite(d, n, set_value("num_params", 1, arch_id=5)),
                       f"architectures.parquet: column 'num_params': arch_id 5 has 1, "
                       f"its layers give {PUBLISHED.num_params[5]}"),
    "num-macs-of-another": (A, lambda d, n: rewrite(d, n, set_value("num_macs", int(PUBLISHED.num_macs[6]), arch_id=5)),
                            f"architectures.parquet: column 'num_macs': arch_id 5 has {PUBLISHED.num_macs[6]}, "
                            f"its layers give {PUBLISHED.num_macs[5]}"),
    "a-layer-of-stride-0": (A, lambda d, n: rewrite(d, n, set_layers(4, STRIDE_0)),
                            "architectures.parquet: column 'layers': arch_id 4 has {'kernel_size': 3, 'width': 8, "
                            "'stride': 0, 'residual': False} (each layer's kernel_size, width and stride must be >= 1)"),
    "no-layers": (A, lambda d, n: rewrite(d, n, set_layers(4, [])),
                  "architectures.parquet: column 'layers': arch_id 4 has no layers"),
    "no-architectures": (A, lambda d, n: rewrite(d, n, lambda f: f.iloc[:0]),
                         "architectures.parquet: no architectures"),
    "accuracy-inf": (E, lambda d, n: rewrite(d, n, set_value("test_accuracy", np.inf, arch_id=4, epoch=2)),
                     f"epochs.parquet: column 'test_accuracy': arch_id 4 seed {SEED} epoch 2 has inf "
                     f"(must be in [0, 1])"),
    "accuracy-nan": (E, lambda d, n: nan_at(d / n, "test_accuracy", arch_id=4, epoch=3),
                     f"epochs.parquet: column 'test_accuracy': arch_id 4 seed {SEED} epoch 3 has nan "
                     f"(must be a number)"),
    "accuracy-negative": (E, lambda d, n: rewrite(d, n, set_value("test_accuracy", -5.0, arch_id=8, epoch=1)),
                          f"epochs.parquet: column 'test_accuracy': arch_id 8 seed {SEED} epoch 1 has -5.0"),
    "loss-negative": (E, lambda d, n: rewrite(d, n, set_value("train_loss_mean", -1.0, arch_id=2, epoch=9)),
                      f"epochs.parquet: column 'train_loss_mean': arch_id 2 seed {SEED} epoch 9 has -1.0 "
                      f"(must be finite and >= 0)"),
    "loss-inf": (E, lambda d, n: rewrite(d, n, set_value("train_loss_median", np.inf, arch_id=2, epoch=9)),
                 "epochs.parquet: column 'train_loss_median': arch_id 2"),
    "test-loss-negative": (E, lambda d, n: rewrite(d, n, set_value("test_loss", -2.0, arch_id=6, epoch=4)),
                           f"epochs.parquet: column 'test_loss': arch_id 6 seed {SEED} epoch 4 has -2.0"),
    "lr-zero": (E, lambda d, n: rewrite(d, n, set_value("lr", 0.0, arch_id=10, epoch=5)),
                f"epochs.parquet: column 'lr': arch_id 10 seed {SEED} epoch 5 has 0.0 (must be finite and > 0)"),
    "epochs-0-based": (E, lambda d, n: rewrite(d, n, lambda f: f.assign(epoch=f.epoch - 1)),
                       f"epochs.parquet: column 'epoch': arch_id 1 seed {SEED} has epochs 0 to 89 in 90 rows "
                       "(must run 1, 2, ..., n without gaps)"),
    "epoch-gap": (E, lambda d, n: rewrite(d, n, drop_rows(lambda f: (f.arch_id != 8) | (f.epoch != 50))),
                  f"epochs.parquet: column 'epoch': arch_id 8 seed {SEED} has epochs 1 to 90 in 89 rows"),
    "duplicate-epoch-row": (E, lambda d, n: rewrite(d, n, lambda f: pd.concat([f, f.iloc[[95]]])),
                            f"epochs.parquet: column 'epoch': arch_id 2 seed {SEED} epoch 6 appears more than once"),
    "empty-epochs": (E, lambda d, n: rewrite(d, n, lambda f: f.iloc[:0]),
                     "epochs.parquet: no epoch rows, yet architectures.parquet marks 440 architecture(s) "
                     "as not diverged"),
    "unknown-architecture": (E, lambda d, n: rewrite(d, n, lambda f: pd.concat([f, f.iloc[:90].assign(arch_id=441)])),
                             "epochs.parquet: column 'arch_id': arch_id 441 seed"),
    "a-run-missing": (E, lambda d, n: rewrite(d, n, drop_rows(lambda f: f.arch_id != 6)),
                      f"epochs.parquet: column 'seed': arch_id 6 has no run of seed {SEED}, "
                      f"and architectures.parquet does not mark it diverged"),
    "a-run-cut-short": (E, lambda d, n: rewrite(d, n, drop_rows(lambda f: (f.arch_id != 6) | (f.epoch <= 45))),
                        f"epochs.parquet: column 'epoch': arch_id 6 seed {SEED} has 45 epoch rows, other runs 90"),
    "a-null-in-a-required-column": (E, lambda d, n: rewrite(d, n, set_value("test_accuracy", None, arch_id=3, epoch=3),
                                                             nullable(EPOCHS_SCHEMA, "test_accuracy")),
                                    "epochs.parquet: column 'test_accuracy' has 1 missing values"),
    "wrong-column-type": (A, lambda d, n: rewrite(d, n, lambda f: f.astype({"num_params": float}),
                                                 ARCHITECTURES_SCHEMA.set(ARCHITECTURES_SCHEMA.get_field_index(
                                                     "num_params"), pa.field("num_params", pa.float64()))),
                          "architectures.parquet: column 'num_params' has type double, expected int64"),
    "missing-column": (A, lambda d, n: pq.write_table(pq.read_table(d / n).drop(["num_macs"]), d / n),
                       "architectures.parquet: missing column 'num_macs'"),
    "garbage": (E, garbage, "epochs.parquet: not a readable Parquet file"),
    "truncated": (A, truncated, "architectures.parquet: not a readable Parquet file"),
    "enormous-metadata": (A, huge_metadata, "bytes of Parquet metadata, more than the 16 MiB naap reads"),
    "a-directory-not-a-file": (A, a_directory, "architectures.parquet: a folder, not a regular file"),
    "a-file-missing": (E, lambda d, n: (d / n).unlink(), "epochs.parquet: file not found"),
}


def damaged_copy(tmp_path: Path, name: str, damage) -> Path:
    folder = tmp_path / "dataset"
    shutil.copytree(DATA, folder)
    damage(folder, name)
    return folder


@pytest.mark.parametrize("name,damage,message", BAD_FOLDERS.values(), ids=BAD_FOLDERS.keys())
def test_a_damaged_dataset_folder_is_refused_on_load(tmp_path, capsys, name, damage, message):
    folder = damaged_copy(tmp_path, name, damage)
    before = snapshot(tmp_path)
    for argv in (["info", folder], ["export-csv", folder, tmp_path / "out" / "x.csv"],
                 ["leaderboard", folder, "--out", tmp_path / "board", "--quiet"]):
        line = refused(capsys, argv)
        assert line.startswith(f"naap: error: {folder}/{name}: ") and message in line, line
        assert snapshot(tmp_path) == before


@pytest.mark.parametrize("blob,message", [
    (b"{not json", "metadata 'naap.provenance': not valid JSON"),
    (b"[1, 2]", "metadata 'naap.provenance': not a JSON object"),
], ids=["not-json", "not-an-object"])
def test_info_names_a_damaged_provenance(tmp_path, capsys, blob, message):
    folder = damaged_copy(tmp_path, A, lambda d, n: pq.write_table(
        pq.read_table(d / n).replace_schema_metadata({b"naap.provenance": blob}), d / n))
    before = snapshot(tmp_path)
    assert refused(capsys, ["info", folder]) == f"naap: error: {folder}/architectures.parquet: {message}"
    assert snapshot(tmp_path) == before


def diverged_copy(tmp_path: Path, every_run: bool) -> Path:
    """NAAP-440 as if runs had diverged: every run in its first epoch, or arch 1 in its first
    and arch 2 in its third (two epochs kept; max_accuracy their best)."""
    def epochs(f):
        return f.iloc[:0] if every_run else f[(f.arch_id > 2) | ((f.arch_id == 2) & (f.epoch <= 2))]

    def architectures(f):
        f["diverged"] = True if every_run else f.arch_id <= 2
        f.loc[f.arch_id == 1, "max_accuracy"] = 0.0
        f.loc[f.arch_id == 2, "max_accuracy"] = best_two
        return f.assign(max_accuracy=0.0) if every_run else f

    full = pd.read_parquet(DATA / E)
    best_two = full[(full.arch_id == 2) & (full.epoch <= 2)].test_accuracy.max()
    folder = tmp_path / "diverged"
    shutil.copytree(DATA, folder)
    rewrite(folder, E, epochs)
    rewrite(folder, A, architectures)
    return folder


@pytest.mark.parametrize("every_run", [False, True], ids=["two-diverged", "all-diverged-in-epoch-1"])
def test_a_dataset_with_diverged_runs_loads_and_exports(tmp_path, capsys, every_run):
    folder = diverged_copy(tmp_path, every_run)
    tables = load_tables(folder)
    assert tables.architectures["diverged"].sum() == (440 if every_run else 2)
    assert main(["info", str(folder)]) == 0
    summary = capsys.readouterr().out
    assert ("every run diverged in its first epoch, 0 epoch rows" if every_run else "2-90 epochs per run") in summary
    assert f"{440 if every_run else 2} diverged" in summary
    assert main(["export-csv", str(folder), str(tmp_path / "x.csv")]) == 0, capsys.readouterr().err
    wide = pd.read_csv(tmp_path / "x.csv")
    published = pd.read_parquet(DATA / A)
    assert wide["ModelId"].tolist() == published["arch_id"].tolist()
    if every_run:
        assert list(wide.columns) == ["ModelId", "IsTest", "NumParams", "NumMACs", "NumLayers", "NumStages",
                                      "FirstLayerWidth", "LastLayerWidth", "MaxAccuracy"]
    else:  # the epochs a diverged run did not finish are empty, the others as they were
        assert wide.loc[0, "e1Accuracy":].isna().all() and wide.loc[1, "e3LossMean":].isna().all()
        published = pd.read_parquet(DATA / E).query("arch_id == 2 and epoch == 2")
        assert wide.loc[1, "e2Accuracy"] == published.test_accuracy.item()
        assert wide.loc[2:, "e1LossMean":].notna().all().all()


def test_export_of_a_seed_the_dataset_lacks_is_one_line(tmp_path, capsys):
    line = refused(capsys, ["export-csv", DATA, tmp_path / "x.csv", "--seed", 7])
    assert line == f"naap: error: seed 7: the dataset has no epochs of it (its seeds: {SEED})"
    assert not (tmp_path / "x.csv").exists()


# --- writes that fail -------------------------------------------------------------

def test_export_to_a_directory_is_one_line_and_leaves_it_alone(tmp_path, capsys):
    target = tmp_path / "a-folder.csv"  # a .csv name: the one export-csv takes
    target.mkdir()
    (target / "theirs.txt").write_text("keep me")
    before = snapshot(tmp_path)
    assert refused(capsys, ["export-csv", DATA, target]) == f"naap: error: {target}: cannot write it (Is a directory)"
    assert snapshot(tmp_path) == before


def test_export_into_a_path_under_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "file.txt").write_text("x")
    before = snapshot(tmp_path)
    line = refused(capsys, ["export-csv", DATA, tmp_path / "file.txt" / "x.csv"])
    assert line.startswith(f"naap: error: {tmp_path}/file.txt/x.csv: cannot write it (")
    assert snapshot(tmp_path) == before


@pytest.mark.skipif(not Path("/sys").is_dir(), reason="needs /sys, which no one may create files in")
def test_export_to_an_unwritable_folder_is_one_line(capsys):
    assert refused(capsys, ["export-csv", DATA, "/sys/naap-x.csv"]) == \
        "naap: error: /sys/naap-x.csv: cannot write it (Permission denied)"
    assert not Path("/sys/naap-x.csv").exists()


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EDQUOT],
                         ids=["ENOSPC", "EROFS", "EACCES", "EDQUOT"])
def test_a_full_or_read_only_disk_during_export_keeps_the_old_file(tmp_path, capsys, monkeypatch, code):
    target = tmp_path / "x.csv"
    target.write_text("the previous export")
    real_to_csv = pd.DataFrame.to_csv

    def half_then_fail(frame, path, **kwargs):
        real_to_csv(frame.iloc[:10], path, **kwargs)
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(pd.DataFrame, "to_csv", half_then_fail)
    line = refused(capsys, ["export-csv", DATA, target])
    assert line == f"naap: error: {target}: cannot write it ({os.strerror(code)})"
    assert [p.name for p in tmp_path.iterdir()] == ["x.csv"] and target.read_text() == "the previous export"


def test_a_full_disk_during_import_names_the_file(release_dir, tmp_path, capsys, monkeypatch):
    def no_space(table, where, **kwargs):
        Path(where).write_bytes(b"PAR1 half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pq, "write_table", no_space)
    line = refused(capsys, ["import-release", release_dir, "--out", tmp_path / "d", "--recipe", RECIPE])
    assert line == f"naap: error: {tmp_path}/d/architectures.parquet: cannot write it (No space left on device)"
    assert list((tmp_path / "d").iterdir()) == []


# --- malformed releases ------------------------------------------------------------

def json_edit(change):
    def damage(folder):
        path = folder / "generated_schemes.json"
        path.write_text(json.dumps(change(json.loads(path.read_text()))))
    return damage


def set_layer(field, value):
    def change(schemes):
        schemes[0][0][field] = value
        return schemes
    return change


def csv_edit(change):
    def damage(folder):
        path = folder / "naap440.csv"
        change(pd.read_csv(path)).to_csv(path, index=False)
    return damage


def csv_set(column, row, value):
    def change(wide):
        wide[column] = wide[column].astype(object if isinstance(value, str) else wide[column].dtype)
        wide.loc[row, column] = value
        return wide
    return change


def write_bytes(name, data):
    return lambda folder: (folder / name).write_bytes(data)


J, C = "generated_schemes.json", "naap440.csv"
# id: (how to damage the release folder, what the one line says after "RELEASE/")
BAD_RELEASES = {
    "json-bad-syntax": (lambda f: (f / J).write_text((f / J).read_text()[:-3]), f"{J}: not valid JSON"),
    "json-not-utf8": (write_bytes(J, b"[[\xff]]"), f"{J}: not valid JSON"),
    "json-nested-too-deeply": (write_bytes(J, b"[" * 100_000 + b"]" * 100_000), f"{J}: not valid JSON"),
    "json-not-a-list": (write_bytes(J, b'{"schemes": []}'), f"{J}: must be a list of schemes, got dict"),
    "scheme-not-a-list": (json_edit(lambda s: [5] + s[1:]), f"{J}: scheme 0: must be a non-empty list of layers"),
    "scheme-empty": (json_edit(lambda s: s[:3] + [[]] + s[4:]), f"{J}: scheme 3: must be a non-empty list of layers"),
    "layer-not-an-object": (json_edit(lambda s: [["k3"]] + s[1:]), f"{J}: scheme 0 layer 0: must be an object"),
    "kernel-as-text": (json_edit(set_layer("kernel_size", "3")),
                       f"{J}: scheme 0 layer 0: field 'kernel_size': must be an integer, got '3'"),
    "width-as-float": (json_edit(set_layer("width", 12.5)),
                       f"{J}: scheme 0 layer 0: field 'width': must be an integer, got 12.5"),
    "residual-as-text": (json_edit(set_layer("residual", "false")),
                         f"{J}: scheme 0 layer 0: field 'residual': must be true or false, got 'false'"),
    "stride-out-of-range": (json_edit(set_layer("stride", 200)),
                            f"{J}: scheme 0 layer 0: field 'stride': must be from 1 to 32 (the image size), got 200"),
    "width-out-of-range": (json_edit(set_layer("width", 40000)),
                           f"{J}: scheme 0 layer 0: field 'width': must be from 1"),
    "kernel-even": (json_edit(set_layer("kernel_size", 2)),
                    f"{J}: scheme 0 layer 0: field 'kernel_size': must be an odd"),
    "extra-field": (json_edit(set_layer("dilation", 2)), f"{J}: scheme 0 layer 0: unexpected field 'dilation'"),
    "csv-empty": (write_bytes(C, b""), f"{C}: not a readable CSV"),
    "csv-not-utf8": (write_bytes(C, b"ModelId,IsTest\n\xff\xfe,1\n"), f"{C}: not a readable CSV"),
    "csv-text-in-a-count": (csv_edit(csv_set("NumParams", 3, "many")),
                            f"{C}: column 'NumParams': must hold integers only"),
    "csv-is-test-2": (csv_edit(csv_set("IsTest", 4, 2)), f"{C}: column 'IsTest': ModelId 5 is not 0 or 1"),
    "csv-accuracy-above-1": (csv_edit(csv_set("e5Accuracy", 6, 1.5)),
                             f"{C}: column 'test_accuracy': arch_id 7 seed {SEED} epoch 5 has 1.5 (must be in [0, 1])"),
    "csv-loss-inf": (csv_edit(csv_set("e9LossMean", 2, np.inf)),
                     f"{C}: column 'train_loss_mean': arch_id 3 seed {SEED} epoch 9 has inf"),
    "csv-max-accuracy-not-the-best": (csv_edit(csv_set("MaxAccuracy", 9, 0.1)),
                                      f"{C}: column 'max_accuracy': arch_id 10 has 0.1, its epochs give"),
    "csv-epochs-0-based": (csv_edit(lambda w: w.rename(columns=lambda c: c.replace("e1L", "e0L").replace(
        "e1A", "e0A"))), f"{C}: column 'e0Accuracy': the epoch columns must be e1..eN"),
    "csv-an-epoch-column-missing": (csv_edit(lambda w: w.drop(columns="e7LossMean")),
                                    f"{C}: column 'e7LossMean': the epoch columns must be e1..eN"),
    "csv-duplicate-row": (csv_edit(lambda w: pd.concat([w, w.iloc[[5]]])), f"{C}: ModelId must run 1..440 in order"),
}


@pytest.mark.parametrize("damage,message", BAD_RELEASES.values(), ids=BAD_RELEASES.keys())
def test_a_malformed_release_is_refused_before_anything_is_written(release_dir, tmp_path, capsys, damage, message):
    release = tmp_path / "release"
    shutil.copytree(release_dir, release)
    damage(release)
    before = snapshot(tmp_path)
    line = refused(capsys, ["import-release", release, "--out", tmp_path / "out", "--recipe", RECIPE])
    assert line.startswith(f"naap: error: {release}/{message}"), line
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("existing", ["someone's-folder", "a-rebuilt-dataset", "a-file"])
def test_import_refuses_an_out_it_did_not_write(release_dir, tmp_path, capsys, existing):
    out = tmp_path / "out"
    if existing == "a-file":
        out.write_text("x")
    elif existing == "someone's-folder":
        out.mkdir()
        (out / "notes.txt").write_text("mine")
    else:
        shutil.copytree(DATA, out)
        rewrite(out, A, lambda f: f)  # the same rows, without naap's provenance: not an import
    before = snapshot(tmp_path)
    line = refused(capsys, ["import-release", release_dir, "--out", out, "--recipe", RECIPE])
    assert line.startswith(f"naap: error: {out}: --out: ")
    assert snapshot(tmp_path) == before


def test_import_may_write_again_over_its_own_import(release_dir, tmp_path):
    shutil.copytree(DATA, tmp_path / "out")
    assert main(["import-release", str(release_dir), "--out", str(tmp_path / "out"), "--recipe", str(RECIPE)]) == 0
    for name in (A, E):
        assert pq.read_table(tmp_path / "out" / name).equals(pq.read_table(DATA / name))


# --- real processes: nothing escapes as a traceback --------------------------------------

@pytest.mark.parametrize("case", ["schemes-stride-200", "dataset-seed-2**63", "schemes-a-huge-space",
                                  "info-truncated", "export-csv-to-a-directory", "import-release-bad-json"])
def test_no_traceback_escapes_a_real_process(release_dir, tmp_path, case):
    folder = tmp_path / "work"
    folder.mkdir()
    if case.startswith(("schemes", "dataset")):
        content, message = {"schemes-stride-200": BAD_RECIPES["stride-200"], "dataset-seed-2**63":
                            BAD_RECIPES["seed-beyond-int64"], "schemes-a-huge-space": BAD_RECIPES["a-huge-space"]}[case]
        recipe = write_recipe(folder, content)
        args = ["schemes", recipe] if case.startswith("schemes") else [
            "dataset", recipe, "--out", folder / "out", "--estimate"]
        expected = f"{recipe}: {message}"
    elif case == "info-truncated":
        data = damaged_copy(folder, A, truncated)
        args, expected = ["info", data], f"{data}/architectures.parquet: not a readable Parquet file"
    elif case == "export-csv-to-a-directory":
        (folder / "out.csv").mkdir()
        args, expected = ["export-csv", DATA, folder / "out.csv"], f"{folder / 'out.csv'}: cannot write it (Is a directory)"
    else:
        shutil.copytree(release_dir, folder / "release")
        (folder / "release" / J).write_text("[[{]]")
        args = ["import-release", folder / "release", "--out", folder / "out", "--recipe", RECIPE]
        expected = f"{folder}/release/{J}: not valid JSON"
    before = snapshot(tmp_path)
    out = naap_process(*args, cwd=folder)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert out.stderr.count("\n") == 1 and out.stderr.startswith(f"naap: error: {expected}"), out.stderr
    assert snapshot(tmp_path) == before
