"""naap.rebuild.cuda_memory: a failed CUDA allocation (which cuDNN would hide by running another
algorithm) stops a training; a device short of headroom is named once. The allocator's statistics
are played by monkeypatched torch.cuda functions. (A training stopped by it: tests/rebuild/test_train.py.)"""
import pytest
import torch

from naap.errors import NaapError
from naap.rebuild import cuda_memory

GiB = 1 << 30


@pytest.fixture
def device_memory(monkeypatch):
    """A fake CUDA device's allocator: its OOM count, reserved and allocated bytes, and free memory."""
    state = {"num_ooms": 0, "reserved_bytes.all.current": 4 * GiB, "allocated_bytes.all.current": 3 * GiB,
             "free": 40 * GiB, "total": 80 * GiB}
    monkeypatch.setattr(torch.cuda, "memory_stats", lambda device: dict(state))
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (state["free"], state["total"]))
    monkeypatch.setattr(cuda_memory, "_warned", set())
    return state


def test_an_allocation_failure_since_the_last_check_is_an_error(device_memory):
    watch = cuda_memory.AllocationWatch(torch.device("cuda", 2))
    watch.check()
    device_memory["num_ooms"] += 2
    with pytest.raises(NaapError, match=r"^cuda:2: 2 CUDA allocation\(s\) failed during this epoch .*"
                                        r"--trainings-per-device"):
        watch.check()


def test_failures_before_the_training_started_are_not_its_own(device_memory):
    device_memory["num_ooms"] = 5
    watch = cuda_memory.AllocationWatch(torch.device("cuda", 0))
    watch.check()
    watch.check()


def test_a_device_short_of_headroom_is_named_once(device_memory, capsys):
    """Free for PyTorch: the device's free memory and what the allocator holds unused."""
    watch = cuda_memory.AllocationWatch(torch.device("cuda", 0))
    device_memory["free"] = 7 * GiB  # 7 + (4 - 3) = 8 GiB: exactly 10 % of 80 GiB
    watch.check()
    assert capsys.readouterr().err == ""
    device_memory["free"] = 6 * GiB
    watch.check()
    cuda_memory.AllocationWatch(torch.device("cuda", 0)).check()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("naap: cuda:0: 7.0 GiB free for CUDA allocations, under the "
                                                   "headroom of 8.0 GiB")


def test_a_small_device_keeps_at_least_2_gib_free():
    assert cuda_memory.headroom_bytes(16 * GiB) == 2 * GiB and cuda_memory.headroom_bytes(80 * GiB) == 8 * GiB


def test_on_the_cpu_nothing_is_read(monkeypatch):
    monkeypatch.setattr(torch.cuda, "memory_stats", lambda device: pytest.fail("memory_stats on the CPU"))
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: pytest.fail("mem_get_info on the CPU"))
    cuda_memory.AllocationWatch(torch.device("cpu")).check()
