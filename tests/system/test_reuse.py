"""`naap dataset --reuse OTHER`: a recipe that adds seeds takes another folder's finished runs,
trains only the rest and gives the data of a run from scratch; OTHER is only read. A folder
whose runs are made otherwise, or a part that is not its job's run, is one line and exit 2
before anything is written."""
import shutil
from pathlib import Path

import pytest

from naap._io import read_parquet, read_provenance, write_parquet
from naap.bench.tables import EPOCHS_SCHEMA
from naap.cli import main
from naap.rebuild.recipe import load_recipe
from naap.rebuild.reuse import open_source
from tests.conftest import REPO
from tests.runs import SMOKE, assert_same_data, dataset, finish, naap, recipe_variant, snapshot


def made_from(folder: Path, recipe: Path) -> Path:
    """A folder holding only recipe.yaml: all --reuse reads before it looks at parts."""
    folder.mkdir()
    shutil.copyfile(recipe, folder / "recipe.yaml")
    return folder


@pytest.fixture(scope="module")
def more_seeds(workdir) -> Path:
    """smoke with 2 of its architectures trained with a third seed: 10 runs, 8 of them smoke_run's runs."""
    return recipe_variant(workdir, "smoke-seeds.yaml", recipe_name="smoke-seeds",
                          training__extra_seeds={"seeds": [5], "architectures": 2, "sample_seed": 0})


def test_reused_runs_are_copied_the_rest_trained_and_the_data_is_a_fresh_runs(workdir, smoke_run, more_seeds):
    before = snapshot(smoke_run)
    out = finish(naap(workdir, "dataset", more_seeds, "--out", "reused", "--reuse", "smoke"))
    assert "reusing 8 finished run(s) from smoke" in out
    trained = [line for line in out.splitlines() if "max accuracy" in line]
    assert len(trained) == 2 and all(" seed 5:" in line for line in trained)
    assert snapshot(smoke_run) == before
    for part in (smoke_run / "parts").glob("*.parquet"):
        assert (workdir / "reused" / "parts" / part.name).read_bytes() == part.read_bytes()
    assert_same_data(workdir / "reused", dataset(workdir, more_seeds, "fresh"))
    assert read_provenance(workdir / "reused" / "epochs.parquet")["seeds"] == [5, 20220819, 20220820]


def test_estimate_counts_only_the_runs_left_and_writes_nothing(workdir, smoke_run, more_seeds):
    out = finish(naap(workdir, "dataset", more_seeds, "--out", "estimated", "--reuse", "smoke", "--estimate"))
    assert "would reuse 8 finished run(s) from smoke" in out and out.count("2 trainings x 2 epochs") == 1
    assert not (workdir / "estimated").exists()


def test_a_recipe_trained_otherwise_is_refused(tmp_path, capsys):
    longer = made_from(tmp_path / "longer", recipe_variant(tmp_path, "longer.yaml", training__epochs=3))
    other_sample = made_from(tmp_path / "sample", recipe_variant(tmp_path, "sample.yaml", search_space__generator={
        "mode": "sample", "count": 4, "seed": 1}))
    moved = made_from(tmp_path / "moved", recipe_variant(tmp_path, "moved.yaml", dataset__root="elsewhere"))
    for other, differ in ((longer, "training differ"), (other_sample, "search_space differ"),
                          (moved, "dataset differ")):
        assert main(["dataset", str(SMOKE), "--out", str(tmp_path / "out"), "--reuse", str(other)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.splitlines() == [err] and f"{other / 'recipe.yaml'}: --reuse: " in err and differ in err
    assert not (tmp_path / "out").exists()


def test_cifar10_is_the_same_data_wherever_its_root(tmp_path):
    """Its files are md5-checked: a rebuild on another cluster may reuse NAAP-440's runs."""
    other = made_from(tmp_path / "naap440", recipe_variant(tmp_path, "naap440.yaml", REPO / "recipes" / "naap440.yaml",
                                                           dataset__root="/cluster/cifar10"))
    assert open_source(other, load_recipe(REPO / "recipes" / "naap440-seeds.yaml"), None).root == other


@pytest.mark.parametrize("case", ["missing", "a file", "no recipe.yaml", "the --out folder"])
def test_a_folder_that_cannot_be_reused_is_one_line(tmp_path, capsys, case):
    other = tmp_path / "other"
    out = tmp_path / "out"
    message = {"missing": "not a folder", "a file": "not a folder", "no recipe.yaml": "no recipe.yaml",
               "the --out folder": "the same folder as --out"}[case]
    if case == "a file":
        other.write_text("")
    elif case == "no recipe.yaml":
        other.mkdir()
    elif case == "the --out folder":
        other = made_from(out, SMOKE)
    assert main(["dataset", str(SMOKE), "--out", str(out), "--reuse", str(other)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [err] and err.startswith(f"naap: error: {other}: --reuse: ") and message in err
    assert not (out / "parts").exists()


@pytest.mark.parametrize("damage", ["another job's part", "a run cut short"])
def test_a_part_that_is_not_its_jobs_finished_run_is_refused_before_anything_is_written(
        workdir, smoke_run, tmp_path, capsys, damage):
    other = tmp_path / "other"
    shutil.copytree(smoke_run, other)
    first, second = sorted((other / "parts").glob("*.parquet"))[:2]
    if damage == "another job's part":
        shutil.copyfile(second, first)
        message = "its record is"
    else:
        rows, record = read_parquet(first, EPOCHS_SCHEMA), read_provenance(first)
        write_parquet(rows.iloc[:1], first, EPOCHS_SCHEMA, provenance=record)
        message = "epochs: 1 rows, not a finished run of 2 epochs"
    out = tmp_path / "out"
    assert main(["dataset", str(SMOKE), "--out", str(out), "--reuse", str(other)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [err] and err.startswith(f"naap: error: {first}: --reuse: ") and message in err
    assert not out.exists()
