"""naap: the NAAP-440 neural-architecture benchmark as a library, and the tools that rebuild it
and rank accuracy predictors on it.

    import naap
    bench = naap.load()                                   # the shipped NAAP-440 (pandas inside)
    bench.query("k3w12s2 k3w16s2 k1w16s1r", epoch=9)      # accuracy, losses, lr, ... per seed
    arch = naap.Arch.parse("k3w12s2 k3w16s2 k1w16s1r")    # an architecture value

docs/library.md describes the API, docs/benchmark.md the benchmark and the units of every column.
"""
import importlib

__version__ = "0.1.0"

# Public name -> the module that defines it. Imported on first use, so that `import naap` stays
# light: the tables pull in pandas and pyarrow, training PyTorch, plots matplotlib.
_EXPORTS = {
    "load": "naap.bench", "Benchmark": "naap.bench",
    "Arch": "naap.arch", "InvalidArchitecture": "naap.arch", "UnknownArchitecture": "naap.arch",
    "NaapError": "naap.errors",
    "load_tables": "naap.tables", "load_wide": "naap.tables",
    "Objective": "naap.search",
}
_SUBMODULES = ("search", "plot")
__all__ = [*_EXPORTS, *_SUBMODULES, "__version__"]


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"naap.{name}")
    raise AttributeError(f"module 'naap' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
