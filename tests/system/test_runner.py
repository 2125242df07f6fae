"""`naap dataset`: rank-independent results, crash safety, concurrent runs, divergence, clear errors.

Every run trains recipes/smoke.yaml (synthetic data, seconds on a CPU) in a scratch folder,
as a real process (python -m naap, or torchrun with gloo) in the user's environment (tests/runs.py).
"""
import os
import random
import shutil
import signal
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from naap._io import read_provenance
from naap.bench.space import scheme_from_dicts
from naap.bench.split import split_is_test
from naap.bench.tables import load_proxies, load_tables, to_wide
from naap.cli import main
from naap.errors import NaapError
from naap.rebuild import proxies
from naap.rebuild.cluster import Cluster
from naap.rebuild.cost import cost
from naap.rebuild.datasets import load_dataset
from naap.rebuild.jobs import make_plan
from naap.rebuild.recipe import load_recipe
from naap.rebuild.workspace import Workspace
from tests.conftest import REPO
from tests.runs import SMOKE, assert_same_data, dataset, finish, naap, recipe_variant


def part_files(out: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (out / "parts").glob("*.parquet")}


def test_single_run_writes_the_layout_of_data_naap440(smoke_run):
    recipe = load_recipe(SMOKE)
    tables = load_tables(smoke_run)
    a, e = tables.architectures, tables.epochs
    assert a["arch_id"].tolist() == [1, 2, 3, 4] and not a["diverged"].any()
    assert len(e) == 4 * 2 * 2 and not e.duplicated(["arch_id", "seed", "epoch"]).any()
    assert e["lr"].tolist() == [recipe.training.lr_at(i) for i in e["epoch"]]
    best = e.groupby(["arch_id", "seed"])["test_accuracy"].max().groupby("arch_id").mean()
    by_arch = a.set_index("arch_id")
    pd.testing.assert_series_equal(by_arch["max_accuracy"], best, check_names=False, check_index_type=False)
    assert by_arch["is_test"].tolist() == split_is_test(by_arch["max_accuracy"], 1).tolist()
    assert by_arch["is_test"].sum() == 1
    provenance = read_provenance(smoke_run / "epochs.parquet")
    assert provenance["recipe"]["contents"] == recipe.raw and provenance["world_sizes"] == [1]
    assert set(provenance["versions"]) >= {"naap", "torch", "torchvision"}
    # One single-threaded training per core at once (this process's cores), recorded with the settings.
    assert provenance["threads_per_training"] == [1] and provenance["strategies"] == ["shard"]
    assert provenance["trainings_per_device"] == [len(os.sched_getaffinity(0))]
    assert [s["cpu_threads_per_training"] for s in provenance["settings"]] == [1]
    assert provenance["limit"] is None and provenance["shards"] == []
    assert (smoke_run / "DATASET.md").read_text().startswith("# smoke")
    assert sorted(p.name for p in smoke_run.iterdir()) == [
        "DATASET.md", "architectures.parquet", "epochs.parquet", "parts", "proxies.parquet", "recipe.yaml"]


def test_the_proxies_of_a_rebuild_are_those_of_its_networks_on_the_recipes_first_training_images(smoke_run):
    recipe = load_recipe(SMOKE)
    stored, about = load_proxies(smoke_run)
    data = load_dataset(recipe.dataset, recipe.training)
    images, labels = data.train_x[:proxies.BATCH_SIZE], data.train_y[:proxies.BATCH_SIZE]
    main = min(recipe.training.seeds)
    for arch_id, layers in load_tables(smoke_run).architectures[["arch_id", "layers"]].itertuples(index=False):
        expected = proxies.compute_proxies(scheme_from_dicts(layers), images, labels, seed=main)
        assert stored.set_index("arch_id").loc[arch_id].to_dict() == expected
    assert not about["data_free"] and about["seed"] == main and "training images of recipe smoke" in about["data"]


def test_two_ranks_with_two_threads_each_give_the_same_data_as_one_process(workdir, smoke_run):
    finish(naap(workdir, "dataset", SMOKE, "--out", "ranks2", "--trainings-per-device", "2", ranks=2))
    assert_same_data(smoke_run, workdir / "ranks2")
    records = [read_provenance(p) for p in (workdir / "ranks2" / "parts").glob("*.parquet")]
    assert {r["rank"] for r in records} == {0, 1} and {r["world_size"] for r in records} == {2}


def test_sigkill_at_any_moment_then_the_same_command_resumes_to_identical_data(workdir, smoke_run):
    out = workdir / "killed"
    run = naap(workdir, "dataset", SMOKE, "--out", out, start_new_session=True)
    while not any((out / folder).glob("*") for folder in ("checkpoints", "parts")):
        assert run.poll() is None, run.communicate()
        time.sleep(0.005)
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    assert not (out / "epochs.parquet").exists(), "killed too late: the run had already finished"
    before = part_files(out)
    interrupted = {p.stem for p in (out / "checkpoints").glob("*.pt")} - {Path(p).stem for p in before}

    finish(naap(workdir, "dataset", SMOKE, "--out", out))
    assert_same_data(smoke_run, out)
    assert {k: v for k, v in part_files(out).items() if k in before} == before  # finished jobs untouched
    for name in interrupted:  # jobs killed mid-way went on from their last checkpoint
        assert read_provenance(out / "parts" / f"{name}.parquet")["resumed_epochs"] >= 1
    assert not (out / "checkpoints").exists() and not (out / "locks").exists()


def test_two_runs_on_one_directory_share_the_work_and_write_correct_data(workdir, smoke_run):
    runs = [naap(workdir, "dataset", SMOKE, "--out", "shared") for _ in range(2)]
    logs = [finish(run) for run in runs]
    assert_same_data(smoke_run, workdir / "shared")
    trained = [line for log in logs for line in log.splitlines() if line.startswith("[rank")]
    assert len(trained) == 8, logs  # every (architecture, seed) trained once, by one of the two runs


def test_ddp_strategy_trains_every_network_on_two_gloo_ranks_and_merges(workdir):
    finish(naap(workdir, "dataset", SMOKE, "--out", "ddp", "--strategy", "ddp", ranks=2))
    tables = load_tables(workdir / "ddp")
    assert len(tables.architectures) == 4 and len(tables.epochs) == 16
    assert tables.epochs["train_loss_mean"].between(0, 10).all()
    provenance = read_provenance(workdir / "ddp" / "architectures.parquet")
    assert provenance["strategies"] == ["ddp"] and provenance["world_sizes"] == [2]


def test_a_diverging_network_is_recorded_and_the_run_finishes(workdir):
    recipe = recipe_variant(workdir, "diverge.yaml", training__optimizer={
        "name": "sgd", "lr": 1.0e30, "momentum": 0.9, "weight_decay": 1.0e-4}, training__seeds=[1])
    finish(naap(workdir, "dataset", recipe, "--out", "diverged", "--limit", "2"))
    tables = load_tables(workdir / "diverged")
    assert tables.architectures["diverged"].tolist() == [True, True]
    assert (tables.epochs.groupby("arch_id").size().reindex([1, 2], fill_value=0) < 2).all()
    assert len(read_provenance(workdir / "diverged" / "epochs.parquet")["diverged"]) == 2


def test_a_directory_made_from_another_recipe_is_refused(workdir, smoke_run, capsys, monkeypatch):
    monkeypatch.chdir(workdir)
    other = recipe_variant(workdir, "other.yaml", training__epochs=3)
    before = part_files(smoke_run)
    assert main(["dataset", str(other), "--out", str(smoke_run)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "recipe.yaml" in err and "training" in err
    assert part_files(smoke_run) == before


def test_of_two_runs_starting_at_once_on_a_new_directory_the_first_recipe_is_kept(tmp_path, monkeypatch):
    first, second = load_recipe(SMOKE), load_recipe(recipe_variant(tmp_path, "other.yaml", training__epochs=3))
    ws, copy = Workspace(tmp_path / "out"), shutil.copyfile

    def first_run_adopts_meanwhile(source, target):  # the second run has seen no recipe.yaml yet
        monkeypatch.setattr(shutil, "copyfile", copy)
        ws.adopt(first)
        return copy(source, target)
    monkeypatch.setattr(shutil, "copyfile", first_run_adopts_meanwhile)
    with pytest.raises(NaapError, match="made from another recipe"):
        ws.adopt(second)
    assert load_recipe(ws.recipe_copy).raw == first.raw
    assert [p.name for p in ws.root.iterdir()] == ["recipe.yaml"]


def _bad_cases(tmp: Path) -> dict[str, tuple[list[str], str]]:
    raw = yaml.safe_load(SMOKE.read_text())
    writes = {
        "bad.yaml": "name: [unclosed",
        "unknown.yaml": yaml.safe_dump({**raw, "training": {**raw["training"], "epochz": 2}}),
        "split.yaml": yaml.safe_dump({**raw, "split": {"test_items": 5}}),
        "fmnist.yaml": yaml.safe_dump({**raw, "dataset": {"name": "fashion-mnist", "root": str(tmp / "nothing")}}),
        "folder.yaml": yaml.safe_dump({**raw, "dataset": {"name": "cifar10-folder", "root": str(tmp / "nothing")}}),
    }
    for name, text in writes.items():
        (tmp / name).write_text(text)
    (tmp / "occupied").mkdir()
    (tmp / "occupied" / "notes.txt").write_text("someone else's")
    out = ["--out", str(tmp / "out")]
    return {
        "missing recipe": (["dataset", str(tmp / "nope.yaml"), *out], "recipe file not found"),
        "not YAML": (["dataset", str(tmp / "bad.yaml"), *out], "not valid YAML"),
        "unknown key": (["dataset", str(tmp / "unknown.yaml"), *out], "training.epochz"),
        "too many test items": (["dataset", str(tmp / "split.yaml"), *out], "split.test_items"),
        "missing Fashion-MNIST": (["dataset", str(tmp / "fmnist.yaml"), *out],
                                  f"{tmp / 'fmnist.yaml'}: dataset.root: "),  # data errors name the recipe
        "missing CIFAR folder": (["dataset", str(tmp / "folder.yaml"), *out], f"{tmp / 'folder.yaml'}: dataset.root: "),
        "foreign directory": (["dataset", str(SMOKE), "--out", str(tmp / "occupied")], "no recipe.yaml"),
        "no --out": (["dataset", str(SMOKE)], "--out"),
    }


@pytest.mark.parametrize("case", ["missing recipe", "not YAML", "unknown key", "too many test items",
                                  "missing Fashion-MNIST", "missing CIFAR folder", "foreign directory", "no --out"])
def test_bad_input_gives_one_clear_line_and_exit_code_2(case, tmp_path, capsys):
    argv, expected = _bad_cases(tmp_path)[case]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("naap: error:") and expected in err, err
    assert not (tmp_path / "out" / "epochs.parquet").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_asking_for_cuda_without_a_gpu_is_a_clear_error(tmp_path, capsys):
    assert main(["dataset", str(SMOKE), "--out", str(tmp_path / "out"), "--device", "cuda"]) == 2
    assert "no CUDA device" in capsys.readouterr().err


def test_estimate_prints_steps_flop_and_cpu_hours_without_training(workdir, capsys, monkeypatch):
    monkeypatch.chdir(workdir)
    assert main(["dataset", str(SMOKE), "--estimate"]) == 0
    out = capsys.readouterr().out
    recipe = load_recipe(SMOKE)
    jobs = make_plan(recipe).jobs
    steps, flop = cost(jobs, recipe.dataset.shape, 1024, 512, recipe.training)
    assert steps == 8 * (1024 // 128) * 2
    assert f"{steps:,} optimizer steps, {flop:.3g} FLOP" in out and "images/s" in out


def test_cost_of_naap440_is_that_of_spec_section_7():
    recipe = load_recipe(REPO / "recipes" / "naap440.yaml")
    jobs = make_plan(recipe).jobs
    steps, flop = cost(jobs, recipe.dataset.shape, 50_000, 10_000, recipe.training)
    assert steps == 440 * 90 * 196
    assert round(flop / 1e15, 1) == 6.7


def test_max_hours_refuses_a_run_estimated_above_it_before_training(workdir, capsys, monkeypatch):
    monkeypatch.chdir(workdir)
    assert main(["dataset", str(SMOKE), "--out", str(workdir / "budget"), "--max-hours", "1e-9"]) == 2
    assert "--max-hours" in capsys.readouterr().err
    assert not (workdir / "budget" / "parts").exists()


def test_max_hours_stops_every_rank_and_only_rank_0_says_why(workdir):
    """Rank 0 times the run; no other rank is left waiting for it, and the reason is printed once."""
    run = naap(workdir, "dataset", SMOKE, "--out", "budget2", "--max-hours", "1e-9", ranks=2)
    out, err = run.communicate(timeout=300)
    assert run.returncode != 0 and err.count("naap: error:") == 1 and "naap: error: estimated" in err, err
    assert not (workdir / "budget2" / "parts").exists()


def test_a_rank_that_does_not_see_rank_0s_files_stops_with_a_clear_error(tmp_path, monkeypatch):
    """Several nodes need one shared DIR: a rank that does not find rank 0's recipe.yaml there
    (another node's own folder of the same name) refuses to go on."""
    ours, theirs = tmp_path / "ours", tmp_path / "another-node"
    for folder in (ours, theirs):
        folder.mkdir()
        shutil.copyfile(SMOKE, folder / "recipe.yaml")
    rank0s = (theirs / "recipe.yaml").stat()
    monkeypatch.setattr(Cluster, "broadcast", lambda self, value: (rank0s.st_ino, rank0s.st_size, rank0s.st_mtime_ns))
    monkeypatch.setattr(Cluster, "agree", lambda self, step: step())
    rank1 = Cluster(rank=1, world=2, local_rank=0, local_world=1, device=torch.device("cpu"), store=None)
    with pytest.raises(NaapError, match="every node shares"):
        rank1.check_sees(ours / "recipe.yaml")
    rank1.check_sees(theirs / "recipe.yaml")  # the same file: no error


def test_a_bad_recipe_stops_the_process_with_exit_code_2_and_no_traceback(workdir):
    run = naap(workdir, "dataset", workdir / "no-such-recipe.yaml", "--out", "never")
    out, err = run.communicate(timeout=120)
    assert run.returncode == 2 and err.splitlines() == [f"naap: error: {workdir / 'no-such-recipe.yaml'}: "
                                                        f"recipe file not found"]
    assert not (workdir / "never").exists()


def test_extra_seeds_retrain_the_recipes_sample_and_the_main_seed_stands_for_every_architecture(workdir):
    recipe = recipe_variant(workdir, "extra.yaml", training__seeds=[20220819],
                            training__extra_seeds={"seeds": [5], "architectures": 2, "sample_seed": 0})
    tables = load_tables(dataset(workdir, recipe, "extra"))
    sample = set(random.Random(0).sample(range(1, 5), 2))  # the oracle: the sample the recipe asks for
    runs = tables.epochs.groupby("seed")["arch_id"].unique()
    assert set(runs[20220819]) == {1, 2, 3, 4} and set(runs[5]) == sample
    best = tables.epochs.groupby(["arch_id", "seed"])["test_accuracy"].max().groupby("arch_id").mean()
    assert tables.architectures.set_index("arch_id")["max_accuracy"].to_dict() == best.to_dict()
    main = to_wide(tables)  # the seed every architecture has, although 5 is smaller
    only_main = tables.epochs[tables.epochs["seed"] == 20220819]
    assert main["e2Accuracy"].tolist() == only_main[only_main["epoch"] == 2]["test_accuracy"].tolist()
