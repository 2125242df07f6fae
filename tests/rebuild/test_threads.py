"""Training threads (naap.rebuild.strategies.in_threads) each make their rank's device current themselves,
after the device's earlier work is done. (A failing training stopping the others: tests/system/test_stopping.py.)"""
import threading
from contextlib import nullcontext
from types import SimpleNamespace

import pytest
import torch

from naap.rebuild import strategies
from naap.rebuild.strategies import in_threads, train_ddp, train_shard


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
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device: None)
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


@pytest.mark.parametrize("strategy", [train_shard, train_ddp], ids=["shard", "ddp"])
def test_every_strategy_finishes_the_devices_work_before_its_threads_train(monkeypatch, strategy):
    """The data are copied on the default stream; each training thread runs on a stream of its
    own, so the copies must be done first, under every strategy (in_threads does it)."""
    events = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device: events.append(("synchronize", device)))
    monkeypatch.setattr(strategies, "on_device", lambda device: nullcontext())
    device = torch.device("cuda", 1)
    cluster = SimpleNamespace(device=device, rank=0, broadcast=lambda job: job)
    trainer = SimpleNamespace(cluster=cluster, trainings_per_device=2, stop=threading.Event(),
                              run=lambda job: events.append(("train", job)))
    jobs = iter(["job 1", "job 2"])
    strategy(trainer, SimpleNamespace(jobs=lambda: jobs))
    assert events[0] == ("synchronize", device) and events.count(("synchronize", device)) == 1
    assert sorted(events[1:]) == [("train", "job 1"), ("train", "job 2")]


def test_on_the_cpu_no_strategy_synchronises_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device: pytest.fail("synchronize on the CPU"))
    done = []
    in_threads(lambda: done.append(1), 2, torch.device("cpu"), threading.Event())
    assert done == [1, 1]
