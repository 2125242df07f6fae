"""Training threads (naap.rebuild.strategies.in_threads) each make their rank's device current themselves.
(A failing training stopping the others: tests/system/test_stopping.py.)"""
import threading
from contextlib import nullcontext

import pytest
import torch

from naap.rebuild.strategies import in_threads


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
