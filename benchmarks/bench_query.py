"""Querying NAAP-440: all 440 architectures at one epoch in one call, against one call per
architecture and against a plain pandas filter, measured here in the same run.

    python benchmarks/bench_query.py
"""
import timeit

import naap


def best_ms(statement, number: int) -> float:
    """The fastest of 7 repeats, per call, in milliseconds."""
    return min(timeit.repeat(statement, number=number, repeat=7)) / number * 1e3


def main() -> None:
    bench = naap.load()
    epochs = bench.epochs
    cases = {
        "bench.query(None, epoch=9)": (lambda: bench.query(None, epoch=9), 200),
        "bench.query(list of 440 ids, epoch=9)": (lambda: bench.query(list(range(1, 441)), epoch=9), 50),
        "pandas: epochs[epochs.epoch == 9]": (lambda: epochs[epochs["epoch"] == 9], 200),
        "loop: bench.query(i, epoch=9) for 440 ids": (
            lambda: [bench.query(i, epoch=9) for i in range(1, 441)], 1),
        "naap.load()": (naap.load, 3),
    }
    times = {name: best_ms(call, number) for name, (call, number) in cases.items()}
    one_call = times["bench.query(None, epoch=9)"]
    for name, ms in times.items():
        print(f"{name:45s} {ms:9.3f} ms   {ms / one_call:8.1f} x one call")


if __name__ == "__main__":
    main()
