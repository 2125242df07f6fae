"""The launch does not change the numbers.

Plain `naap dataset` (one process training one single-threaded network per core, in threads),
torchrun with 1 and with 2 processes, and two torchrun agents acting as two nodes (claims
through the rendezvous store alone) give bit-identical tables, epoch_seconds aside, with no
thread variables in the environment, on the smoke recipe (seconds). tests/system/test_fmnist_mini.py
runs the cohort engine under torchrun on real images.
"""
import os
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from naap._io import read_provenance
from naap.rebuild.cluster import Cluster
from naap.rebuild.recipe import Runner, load_recipe
from naap.rebuild.strategies import default_trainings_per_device
from tests.runs import ENV, SMOKE, THREAD_VARIABLES, assert_same_data, dataset, finish, naap_on_two_nodes

CORES = len(os.sched_getaffinity(0))


def build(workdir: Path, recipe: Path, launch: str) -> Path:
    out = workdir / launch
    if launch == "two-nodes":
        for process in naap_on_two_nodes(workdir, "dataset", recipe, "--out", out):
            finish(process)
    else:
        dataset(workdir, recipe, out, ranks={"torchrun-1": 1, "torchrun-2": 2}[launch])
    return out


def records(out: Path) -> list[dict]:
    return [read_provenance(p) for p in sorted((out / "parts").glob("*.parquet"))]


def test_the_tests_run_without_thread_variables():
    assert not set(THREAD_VARIABLES) & set(ENV)


def test_smoke_is_bit_identical_from_every_launch(smoke_run, tmp_path):
    """Against the session's plain run (conftest.smoke_built: `naap dataset` in one process)."""
    outs = {"plain": smoke_run}
    for launch in ("torchrun-1", "torchrun-2", "two-nodes"):
        outs[launch] = build(tmp_path, SMOKE, launch)
        assert_same_data(smoke_run, outs[launch])
    # How each launch trained: one single-threaded training per core of the node, divided among
    # its processes; flock claims only where every rank shares one host.
    expected = {"plain": (1, CORES, True), "torchrun-1": (1, CORES, True),
                "torchrun-2": (2, max(1, CORES // 2), True), "two-nodes": (2, CORES, False)}
    for launch, (world, per_device, flock) in expected.items():
        for record in records(outs[launch]):
            assert (record["world_size"], record["trainings_per_device"], record["flock_claims"]) == \
                   (world, per_device, flock), launch
            assert record["threads_per_training"] == 1 and record["settings"]["cpu_threads_per_training"] == 1
    assert {r["rank"] for r in records(outs["two-nodes"])} == {0, 1}


def test_smoke_by_cohorts_is_bit_identical_to_eager_alone_and_under_torchrun(smoke_run, tmp_path):
    """Cohorts of 3 (smoke: two seeds of 4 jobs, so cohorts of 3 and of 1), one process and two."""
    eager = smoke_run
    runs = {("cohort", 0): "cohort", ("cohort", 2): "cohort-torchrun-2", ("cohort-graphs", 0): "graphs"}
    for (engine, ranks), name in runs.items():
        out = dataset(tmp_path, SMOKE, name, "--engine", engine, "--cohort-size", 3, ranks=ranks)
        assert_same_data(eager, out)
        assert {(r["engine"], r["cohort_size"], r["cohort_size_rule"]) for r in records(out)} == {(engine, 3, "fixed")}, \
            name
        assert read_provenance(out / "architectures.parquet")["engines"] == [engine]
        assert f"engine {engine} (cohorts of 3)," in (out / "DATASET.md").read_text()
    assert {(r["engine"], r["cohort_size"]) for r in records(eager)} == {("eager", None)}


@pytest.mark.parametrize("device, local_world, cores, expected", [
    ("cpu", 1, 16, 16),   # plain naap dataset: one training per core
    ("cpu", 4, 16, 4),    # torchrun --nproc-per-node=4: the cores shared among the node's processes
    ("cpu", 32, 16, 1),   # more processes than cores: still one each
    ("cuda", 4, 16, 3),   # a GPU: the recipe's runner.trainings_per_device
])
def test_default_trainings_per_device(device, local_world, cores, expected, monkeypatch, tmp_path):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)))
    recipe = replace(load_recipe(SMOKE), runner=Runner("shard", 3))
    cluster = Cluster(0, local_world, 0, local_world, torch.device(device, 0) if device == "cuda" else
                      torch.device("cpu"), store=None)
    assert default_trainings_per_device(cluster, recipe) == expected
