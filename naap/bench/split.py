"""The train/test split rule of docs/benchmark.md, section Split."""
from __future__ import annotations

import numpy as np
import pandas as pd


def split_is_test(max_accuracy: pd.Series, test_items: int) -> pd.Series:
    """Sort by max accuracy (ties by index, the arch_id), cut into `test_items` bins of
    round(n / test_items) and take the middle item of each bin. Returns a bool Series."""
    n = len(max_accuracy)
    is_test = pd.Series(False, index=max_accuracy.index)
    if test_items == 0:
        return is_test
    bin_size = round(n / test_items)
    order = max_accuracy.sort_index().sort_values(kind="stable").index
    positions = np.arange(bin_size // 2, n, bin_size)[:test_items]
    is_test.loc[order[positions]] = True
    return is_test
