"""The CPU as far as it decides the last bits of a computation, for every provenance.

oneDNN, MKL, OpenBLAS and numpy each pick their kernels at run time from the CPU's instruction-set
flags, unless an environment variable below caps or forces the choice (this is how `make
leaderboard` and `make test-avx2` take the AVX2 kernels on any CPU that has them). Given the
flags, these variables and the libraries' versions, the kernels are fixed; so two records that
are equal mean the same kernels, and docs/exactness.md says what may differ otherwise.
"""
from __future__ import annotations

import functools
import hashlib
import os
import platform

KERNEL_VARIABLES = (
    "ATEN_CPU_CAPABILITY",        # PyTorch's own vectorised kernels
    "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA",  # oneDNN (convolutions on the CPU)
    "MKL_ENABLE_INSTRUCTIONS", "MKL_CBWR", "MKL_DEBUG_CPU_TYPE",  # MKL (PyTorch's BLAS on x86)
    "OPENBLAS_CORETYPE",          # OpenBLAS (numpy's and scipy's BLAS)
    "NPY_DISABLE_CPU_FEATURES", "NPY_ENABLE_CPU_FEATURES",  # numpy's SIMD dispatch
)


def cpu_record() -> dict:
    """The CPU's model, a hash of its instruction-set flags (two CPUs of one model name can differ)
    and the kernel-selecting variables that are set."""
    return {"cpu": cpu_model(), "cpu_flags": cpu_flags(), "kernel_variables": kernel_variables()}


def kernel_variables() -> dict[str, str]:
    return {name: os.environ[name] for name in KERNEL_VARIABLES if name in os.environ}


def cpu_flags() -> str | None:
    flags = _cpuinfo().get("flags")
    return None if flags is None else hashlib.sha256(" ".join(sorted(flags.split())).encode()).hexdigest()[:16]


def cpu_model() -> str:
    return _cpuinfo().get("model name") or platform.processor() or platform.machine()


@functools.cache
def _cpuinfo() -> dict[str, str]:
    """The first value of each field of /proc/cpuinfo (none where there is no such file), read once:
    the CPU does not change under a running process."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                name, _, value = line.partition(":")
                fields.setdefault(name.strip(), value.strip())
    except OSError:
        pass
    return fields
