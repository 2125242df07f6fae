"""What a board's numbers were computed with: the CPU and the kernel-selecting variables
(naap.machine), the numeric libraries' versions and the BLAS they load. Two boards made with equal
records are equal bit for bit; otherwise the last digits of some fits may move (docs/exactness.md)."""
from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version

from threadpoolctl import threadpool_info

from naap import machine
from naap.escape import datum

LIBRARIES = ("numpy", "scipy", "scikit-learn", "xgboost", "lightgbm")


def record() -> dict:
    blas = sorted({f"{pool['internal_api']} {pool['version']} ({pool.get('architecture')})"
                   for pool in threadpool_info() if pool["user_api"] == "blas"})
    return {**machine.cpu_record(), "python": platform.python_version(),
            "versions": {name: _version(name) for name in LIBRARIES}, "blas": blas}


def _version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:  # importable without its metadata (a source tree on sys.path)
        return None


def describe(computed_with: dict) -> str:
    """One page line, all of it data, e.g. "AMD EPYC (CPU flags 2380ab50...), numpy 2.4.6, ...,
    openblas 0.3.31 (Haswell)"."""
    variables = " ".join(f"{name}={value}" for name, value in computed_with["kernel_variables"].items())
    parts = [f"{computed_with['cpu']} (CPU flags {computed_with['cpu_flags']})",
             *[f"{name} {number}" for name, number in computed_with["versions"].items()],
             *computed_with["blas"], *([variables] if variables else [])]
    return datum(", ".join(parts))
