"""The benchmark as data, without PyTorch: the search space and its architectures, their counts, the
split, the dataset folder's tables, the query API, simulated search and learning-curve plots.

    bench = naap.bench.load()            # the shipped NAAP-440
    bench.query("k3w12s2 k3w16s2 k1w16s1r", epoch=9)
"""
from naap._lazy import lazy_exports

_EXPORTS = {
    "load": "naap.bench.query:load", "Benchmark": "naap.bench.query:Benchmark",
    "Arch": "naap.bench.arch:Arch", "UnknownArchitecture": "naap.bench.arch:UnknownArchitecture",
    "Layer": "naap.bench.space:Layer", "SearchSpace": "naap.bench.space:SearchSpace",
    "generate_schemes": "naap.bench.space:generate_schemes",
    "Tables": "naap.bench.tables:Tables", "load_tables": "naap.bench.tables:load_tables",
    "load_wide": "naap.bench.tables:load_wide", "count_params": "naap.bench.counts:count_params",
    "count_macs": "naap.bench.counts:count_macs", "split_is_test": "naap.bench.split:split_is_test",
    "Objective": "naap.bench.search:Objective", "search": "naap.bench.search", "plot": "naap.bench.plot",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
