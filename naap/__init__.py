"""naap: the NAAP-440 neural-architecture benchmark as a library, and the tools that rebuild it
and rank accuracy predictors on it.

    import naap
    bench = naap.load()                                   # the shipped NAAP-440 (pandas inside)
    bench.query("k3w12s2 k3w16s2 k1w16s1r", epoch=9)      # accuracy, losses, lr, ... per seed
    arch = naap.Arch.parse("k3w12s2 k3w16s2 k1w16s1r")    # an architecture value

docs/library.md describes the API, docs/benchmark.md the benchmark and the units of every column.
"""
from naap._cuda_env import set_defaults as _set_cuda_defaults
from naap._lazy import lazy_exports

_set_cuda_defaults()  # before any CUDA work a user may do after `import naap`

__version__ = "0.1.0"

# The names users reach from `naap`; naap.bench, naap.rebuild and naap.board export their own.
_EXPORTS = {
    "load": "naap.bench.query:load", "Benchmark": "naap.bench.query:Benchmark",
    "Arch": "naap.bench.arch:Arch", "InvalidArchitecture": "naap.bench.arch:InvalidArchitecture",
    "UnknownArchitecture": "naap.bench.arch:UnknownArchitecture", "NaapError": "naap.errors:NaapError",
    "InvalidValue": "naap.errors:InvalidValue", "InvalidType": "naap.errors:InvalidType",
    "UnknownKey": "naap.errors:UnknownKey", "MissingExtra": "naap.errors:MissingExtra",
    "load_tables": "naap.bench.tables:load_tables", "load_wide": "naap.bench.tables:load_wide",
    "Objective": "naap.bench.search:Objective", "search": "naap.bench.search", "plot": "naap.bench.plot",
}
__all__ = [*_EXPORTS, "__version__"]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
