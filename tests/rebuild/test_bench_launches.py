"""benchmarks/bench_launches.py's counting (make bench-launches), on a tiny case: no host sync inside a
training step and one device-to-host read per epoch (per training for eager, per cohort), and the
counter sees a sync and a read when a step makes them."""
import importlib.util

import pytest

from naap.rebuild import cohort as cohort_module
from naap.rebuild import settings
from tests.conftest import REPO

spec = importlib.util.spec_from_file_location("bench_launches", REPO / "benchmarks" / "bench_launches.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    settings.apply("cpu")
    return bench.tiny_case(tmp_path_factory.mktemp("launches"), batch_size=8)


@pytest.mark.parametrize("engine, k", [("eager", 2), ("cohort", 1), ("cohort", 3), ("cohort-graphs", 3)])
def test_a_step_does_not_sync_and_an_epoch_reads_the_host_once(case, engine, k):
    counts = bench.per_step(engine, k, *case)
    assert counts["syncs"] == 0 and counts["reads"] == 1
    assert counts["by_op"]["aten.convolution.default"] > 0 and counts["ops"] > 10


def test_the_counter_sees_a_sync_and_a_read_in_a_step(case, monkeypatch):
    real = cohort_module.cohort_step

    def reads_its_loss(cohort, *args, **kwargs):
        losses, hits = real(cohort, *args, **kwargs)
        losses[0].item()  # what a careless step would do: one sync, one read per step
        return losses, hits
    monkeypatch.setattr(cohort_module, "cohort_step", reads_its_loss)
    counts = bench.per_step("cohort", 3, *case)
    steps = len(case[1].train_y) // 8
    assert counts["syncs"] == 1 and counts["reads"] == 1 + steps
