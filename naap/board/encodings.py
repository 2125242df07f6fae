"""Architecture encodings: a scheme as a fixed-length row of numbers.

Per layer position i (1..the deepest scheme's depth): L{i}Kernel, L{i}Width, L{i}Stride and
L{i}Residual (0/1), all 0 where a scheme has no layer i. Derived from the layers:

    ReceptiveField   the receptive field of one output position of the last conv layer, in input
                     pixels: r = 1 + sum_i (k_i - 1) * prod_{j<i} s_j (padding does not change it)
"""
from __future__ import annotations

import numpy as np
import pandas as pd

LAYER_FIELDS = {"Kernel": "kernel_size", "Width": "width", "Stride": "stride", "Residual": "residual"}


def layer_columns(depth: int) -> list[str]:
    return [f"L{i}{name}" for i in range(1, depth + 1) for name in LAYER_FIELDS]


def receptive_field(layers) -> int:
    field, jump = 1, 1
    for layer in layers:
        field += (int(layer["kernel_size"]) - 1) * jump
        jump *= int(layer["stride"])
    return field


def encode_layers(layers: pd.Series) -> pd.DataFrame:
    """One row per item of `layers` (architectures.parquet's `layers`: a list of layer dicts per
    architecture), same index: the per-position columns and ReceptiveField, as integers."""
    depth = max((len(item) for item in layers), default=0)
    matrix = np.zeros((len(layers), 4 * depth), dtype=np.int64)
    for row, item in enumerate(layers):
        for i, layer in enumerate(item):
            matrix[row, 4 * i: 4 * i + 4] = [int(layer[field]) for field in LAYER_FIELDS.values()]
    encoded = pd.DataFrame(matrix, index=layers.index, columns=layer_columns(depth))
    encoded["ReceptiveField"] = [receptive_field(item) for item in layers]
    return encoded
