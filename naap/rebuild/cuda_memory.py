"""Failed CUDA allocations, which cuDNN hides, and the memory headroom that avoids them.

When a convolution's workspace cannot be allocated, PyTorch's cuDNN path catches the
OutOfMemoryError and runs another algorithm (aten/src/ATen/native/cudnn/Conv_v8.cpp,
run_single_conv and try_configs): under memory pressure the kernels, and so the last bits of a
training, can change with no error, and no cuDNN or PyTorch flag makes it one. The caching
allocator counts every OOM it raises, caught or not (`torch.cuda.memory_stats()["num_ooms"]`): a
training reads the count on the host once per epoch (no device synchronisation) and stops when it
grew. Before it comes to that, a device whose free memory falls under the headroom is named once.
"""
from __future__ import annotations

import sys
import threading

import torch

from naap.errors import NaapError
from naap.rebuild import settings

_warned: set[str] = set()
_warned_lock = threading.Lock()


def headroom_bytes(total: int) -> int:
    """The memory to keep free on a device of `total` bytes, for cuDNN's workspaces and fragmentation."""
    return max(settings.CUDA_HEADROOM_MIN_BYTES, int(total * settings.CUDA_HEADROOM_FRACTION))


class AllocationWatch:
    """Stops a training on `device` when a CUDA allocation failed since the last check (any
    thread's: they share the device's allocator). Off CUDA it reads nothing."""

    def __init__(self, device: torch.device):
        self.device = device
        self.failures = int(torch.cuda.memory_stats(device).get("num_ooms", 0)) if device.type == "cuda" else 0

    def check(self) -> None:
        """Raise NaapError if an allocation failed since the last check; name a device short of headroom once."""
        if self.device.type != "cuda":
            return
        stats = torch.cuda.memory_stats(self.device)  # the allocator's counters, read on the host
        failures = int(stats.get("num_ooms", 0))
        if failures != self.failures:
            raise NaapError(f"{self.device}: {failures - self.failures} CUDA allocation(s) failed during this epoch "
                            f"(torch.cuda.memory_stats num_ooms); cuDNN then silently runs other kernels, so the "
                            f"numbers may not be the recipe's: train fewer networks per device "
                            f"(--trainings-per-device) and resume")
        self._name_low_memory(stats)

    def _name_low_memory(self, stats: dict) -> None:
        free, total = torch.cuda.mem_get_info(self.device)
        available = free + stats.get("reserved_bytes.all.current", 0) - stats.get("allocated_bytes.all.current", 0)
        needed = headroom_bytes(total)
        with _warned_lock:
            if available >= needed or str(self.device) in _warned:
                return
            _warned.add(str(self.device))
        print(f"naap: {self.device}: {available / 2**30:.1f} GiB free for CUDA allocations, under the headroom of "
              f"{needed / 2**30:.1f} GiB: a cuDNN workspace allocation may fail, which stops the training; "
              f"fewer trainings per device avoid it", file=sys.stderr, flush=True)
