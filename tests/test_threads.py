"""Training threads (naap.strategies): each makes its rank's device current itself, and a failing
training stops the others at their next epoch, their checkpoints kept and resumable."""
import threading
from contextlib import nullcontext
from pathlib import Path

import pytest
import torch

from naap import strategies
from naap.cli import main
from naap.jobs import make_plan
from naap.recipe import load_recipe
from naap.strategies import in_threads
from naap.tables import read_provenance
from tests.runs import assert_same_data, finish, naap, recipe_variant


def test_every_training_thread_makes_the_ranks_device_current_itself(monkeypatch):
    """Without it, a thread's first CUDA call opens a context on GPU 0 (whatever the rank's GPU)."""
    current = threading.local()
    calls = []

    def set_device(device):
        current.device = device
        calls.append((threading.current_thread().name, device))
    monkeypatch.setattr(torch.cuda, "set_device", set_device)
    monkeypatch.setattr(torch.cuda, "Stream", lambda device: ("stream on", device))
    monkeypatch.setattr(torch.cuda, "stream", lambda stream: nullcontext())
    seen = []
    device = torch.device("cuda", 3)
    in_threads(lambda: seen.append(getattr(current, "device", None)), 4, device, threading.Event())
    assert seen == [device] * 4
    assert sorted(calls) == [(f"training-{i}", device) for i in range(4)]


def test_on_the_cpu_a_thread_sets_no_cuda_device(monkeypatch):
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: pytest.fail("set_device on the CPU"))
    done = []
    in_threads(lambda: done.append(1), 2, torch.device("cpu"), threading.Event())
    assert done == [1, 1]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("threads")


@pytest.fixture(scope="module")
def long_recipe(workdir) -> Path:
    return recipe_variant(workdir, "long.yaml", training__epochs=12)


def test_a_failing_training_stops_the_other_at_its_next_epoch_and_its_checkpoint_resumes(workdir, long_recipe,
                                                                                         monkeypatch):
    failing, other = make_plan(load_recipe(long_recipe)).jobs[:2]
    real = strategies.train
    other_epochs, failed_at = [], []
    other_started = threading.Event()

    def train(scheme, data, training, seed, *, on_epoch, **kwargs):
        def hook(metrics):
            on_epoch(metrics)
            if (scheme, seed) == (failing.scheme, failing.seed):
                assert other_started.wait(60)
                failed_at.append(len(other_epochs))
                raise RuntimeError("a training fails in its first epoch")
            if (scheme, seed) == (other.scheme, other.seed):
                other_epochs.append(metrics.epoch)
                other_started.set()
        return real(scheme, data, training, seed, on_epoch=hook, **kwargs)

    monkeypatch.setattr(strategies, "train", train)
    monkeypatch.chdir(workdir)
    out = workdir / "failed"
    with pytest.raises(RuntimeError, match="fails in its first epoch"):
        main(["dataset", str(long_recipe), "--out", str(out), "--trainings-per-device", "2"])
    # The other training stopped at the epoch after the failure (not at the end of its 12),
    # and its checkpoint holds every epoch it finished.
    assert len(other_epochs) <= failed_at[0] + 1 < 12
    kept = torch.load(out / "checkpoints" / f"{other.name}.pt", weights_only=True)
    assert len(kept["epochs"]) == len(other_epochs)
    assert not (out / "parts" / f"{other.name}.parquet").exists()

    monkeypatch.setattr(strategies, "train", real)
    assert main(["dataset", str(long_recipe), "--out", str(out)]) == 0
    assert read_provenance(out / "parts" / f"{other.name}.parquet")["resumed_epochs"] == len(other_epochs)
    finish(naap(workdir, "dataset", long_recipe, "--out", "uninterrupted"))
    assert_same_data(workdir / "uninterrupted", out)
