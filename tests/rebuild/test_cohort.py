"""Cohorts (runner.engine cohort, cohort-graphs): each member bit-identical to its training alone with train().

The oracle is train(), one architecture at a time. K = 4 mixed architectures (every other job of the
smoke recipe), 4 epochs across the lr restart (0.1, 0.01, 0.001, 0.1), 350 images in batches of 64
(the last batch partial: 30). cohort-graphs runs its graph body eagerly on the CPU.
"""
import dataclasses
import threading

import pytest
import torch

from naap.errors import NaapError
from naap.rebuild import cohort as cohort_module
from naap.rebuild import settings
from naap.rebuild import train as train_module
from naap.rebuild.cohort import train_cohort
from naap.rebuild.cohort_graphs import StaticBatches
from naap.rebuild.datasets import load_dataset, write_synthetic_cifar10
from naap.rebuild.jobs import make_plan
from naap.rebuild.recipe import DatasetSpec, Training, load_recipe
from naap.rebuild.train import Stopped, train
from tests.conftest import REPO

TRAINING = Training(epochs=4, batch_size=64, lr=0.1, momentum=0.9, weight_decay=1e-4, nesterov=False,
                    lr_factor=0.1, lr_cycle=3, mean=0.5, std=0.5, seeds=(7,))
SCHEMES = [job.scheme for job in make_plan(load_recipe(REPO / "recipes" / "smoke.yaml")).jobs][::2]
ENGINES = ["cohort", "cohort-graphs"]


@pytest.fixture(autouse=True, scope="module")
def process_settings():
    settings.apply("cpu")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    write_synthetic_cifar10(root, train_size=350, test_size=100)
    return load_dataset(DatasetSpec("cifar10-folder", root=str(root)), TRAINING)


def rows(result):
    return [{k: v for k, v in dataclasses.asdict(e).items() if k != "epoch_seconds"} for e in result.epochs]


@pytest.fixture(scope="module")
def alone(data):
    return [train(s, data, TRAINING, seed=7) for s in SCHEMES]


def test_the_cohort_mixes_architectures():
    assert len(SCHEMES) == 4 and len({len(s) for s in SCHEMES}) > 1 and len(set(SCHEMES)) == 4


@pytest.mark.parametrize("engine", ENGINES)
def test_each_member_equals_its_training_alone(data, alone, engine):
    finished = []
    together = train_cohort(SCHEMES, data, TRAINING, seed=7, engine=engine,
                            on_finished=lambda i, result: finished.append((i, rows(result))))
    assert [rows(r) for r in together] == [rows(r) for r in alone]
    assert [r.diverged for r in together] == [False] * 4
    assert sorted(finished) == [(i, rows(r)) for i, r in enumerate(alone)]


@pytest.mark.parametrize("engine", ENGINES)
def test_the_cohort_reads_the_host_once_per_epoch(data, monkeypatch, engine):
    reads = []
    real = train_module.to_host
    monkeypatch.setattr(train_module, "to_host", lambda t: (reads.append(tuple(t.shape)), real(t))[1])
    train_cohort(SCHEMES, data, TRAINING, seed=7, engine=engine)
    assert reads == [(4, 6 + 3)] * 4  # 6 batch losses, train correct, test loss, test correct


@pytest.mark.parametrize("engine", ENGINES)
def test_a_diverging_member_drops_out_and_the_others_are_untouched(data, alone, monkeypatch, engine):
    """The member built from SCHEMES[1] blows up its logits from its 8th training step (epoch 2)."""
    build = train_module.build_network

    def poisoned_build(scheme, *args):
        model = build(scheme, *args)
        if scheme == SCHEMES[1]:
            calls = [0]

            def hook(module, inputs, output):
                if module.training:
                    calls[0] += 1
                    if calls[0] >= 8:
                        return output * 1e30
            model.classifier.register_forward_hook(hook)
        return model
    monkeypatch.setattr(train_module, "build_network", poisoned_build)
    eager = train(SCHEMES[1], data, TRAINING, seed=7)
    finished = []
    together = train_cohort(SCHEMES, data, TRAINING, seed=7, engine=engine,
                            on_finished=lambda i, result: finished.append(i))
    assert eager.diverged and [e.epoch for e in eager.epochs] == [1]
    assert together[1].diverged and rows(together[1]) == rows(eager)
    assert [rows(r) for i, r in enumerate(together) if i != 1] == [rows(r) for i, r in enumerate(alone) if i != 1]
    assert finished[0] == 1  # its part can be written while the others train on


@pytest.mark.parametrize("engine", ENGINES)
def test_members_resumed_at_different_epochs_catch_up(data, alone, tmp_path, monkeypatch, engine):
    """Each member stopped alone after 1, 3, 0 and 2 epochs; the cohort resumes them all."""
    paths = [tmp_path / f"m{i}.pt" for i in range(4)]
    for scheme, path, epochs in zip(SCHEMES, paths, (1, 3, 0, 2)):
        if epochs:
            stop = threading.Event()
            with pytest.raises(Stopped):
                train_cohort([scheme], data, TRAINING, seed=7, checkpoints=[path], stop=stop, engine=engine,
                             on_epoch=lambda i, metrics, n=epochs: metrics.epoch == n and stop.set())
    rounds = []
    real = cohort_module._cohort_epoch
    monkeypatch.setattr(cohort_module, "_cohort_epoch", lambda cohort, *a: (
        rounds.append((a[3], [m.index for m in cohort])), real(cohort, *a))[1])
    together = train_cohort(SCHEMES, data, TRAINING, seed=7, checkpoints=paths, engine=engine)
    assert [rows(r) for r in together] == [rows(r) for r in alone]
    assert rounds == [(1, [2]), (2, [0, 2]), (3, [0, 2, 3]), (4, [0, 1, 2, 3])]


def test_a_checkpoint_of_another_engine_is_refused(data, tmp_path):
    path = tmp_path / "eager.pt"
    stop = threading.Event()
    with pytest.raises(Stopped):
        train(SCHEMES[0], data, TRAINING, seed=7, checkpoint=path, stop=stop, on_epoch=lambda metrics: stop.set())
    with pytest.raises(NaapError, match="engine"):
        train_cohort(SCHEMES[:1], data, TRAINING, seed=7, checkpoints=[path])


def test_static_batches_give_the_epoch_order_in_full_batches_then_the_partial_one():
    statics = StaticBatches(350, 64, torch.device("cpu"))
    for epoch in (1, 2, 7):
        statics.fill(7, epoch)
        got = [statics.next_full_batch() for _ in range(statics.full)]
        expected = train_module.epoch_order(7, epoch, 350).split(64)
        assert [int(column) for _, column in got] == list(range(5)) and int(statics.counter) == 5
        assert all(torch.equal(index, e) for (index, _), e in zip(got, expected[:5]))
        assert torch.equal(statics.partial, expected[5]) and len(statics.partial) == 30
