"""Architectures as values: `Arch`, its string notation, and why a scheme is outside a search space.

The notation writes one token per layer, `k<kernel>w<width>s<stride>`, with a trailing `r` where
the layer adds its input to its output (residual); tokens are separated by spaces, e.g.

    k3w12s2 k3w16s2 k1w16s1r

Hyphens and commas are accepted as separators too (`k3w12s2-k3w16s2-k1w16s1r`, handy in file
names); `str(arch)` always writes single spaces, and `Arch.parse(str(arch)) == arch`. It is the
notation `naap schemes` prints.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from naap.bench.space import Layer, PositionOptions, Scheme, SearchSpace, scheme_hash
from naap.errors import NaapError

FIELDS = ("kernel_size", "width", "stride", "residual")
NOTATION = ("one token per layer, k<kernel>w<width>s<stride> with a trailing 'r' for a residual layer, "
            "separated by spaces, e.g. 'k3w12s2 k3w16s2 k1w16s1r'")
_TOKEN = re.compile(r"k(\d+)w(\d+)s(\d+)(r?)")
_SEPARATORS = re.compile(r"[\s,-]+")


class InvalidArchitecture(NaapError, ValueError):
    """Text that is not in the notation, or layers that are not layers."""


class UnknownArchitecture(NaapError, LookupError):
    """An architecture that is not in a dataset; the message says why and names the nearest one."""


def _integer(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)) and value >= 1


def _layer(item, position: int) -> Layer:
    if isinstance(item, Layer):
        values = tuple(getattr(item, name) for name in FIELDS)
    elif isinstance(item, Mapping):
        missing = [name for name in FIELDS if name not in item]
        if missing:
            raise InvalidArchitecture(f"layer {position}: missing field '{missing[0]}' (a layer has {', '.join(FIELDS)})")
        values = tuple(item[name] for name in FIELDS)
    elif isinstance(item, Iterable) and not isinstance(item, str) and len(values := tuple(item)) == 4:
        pass
    elif isinstance(item, (tuple, list)) and 0 < len(item) < 4:
        missing = ", ".join(FIELDS[len(item):])
        raise InvalidArchitecture(f"layer {position}: {item!r} has {len(item)} of a layer's 4 fields "
                                  f"({', '.join(FIELDS)}): it lacks {missing}")
    else:
        raise InvalidArchitecture(f"layer {position}: {item!r} is not a layer: give a mapping with "
                                  f"{', '.join(FIELDS)} or a tuple (kernel_size, width, stride, residual)")
    *numbers, residual = values
    for name, value in zip(FIELDS, numbers):
        if not _integer(value):
            raise InvalidArchitecture(f"layer {position}: {name} must be a positive integer, got {value!r}")
    if not isinstance(residual, (bool, np.bool_)):
        raise InvalidArchitecture(f"layer {position}: residual must be True or False, got {residual!r}")
    return Layer(*(int(v) for v in numbers), bool(residual))


@dataclass(frozen=True)
class Arch:
    """An architecture: a non-empty tuple of layers (naap.bench.space.Layer), immutable and hashable."""

    layers: Scheme

    def __post_init__(self):
        if not isinstance(self.layers, tuple) or not self.layers or not all(isinstance(l, Layer) for l in self.layers):
            raise InvalidArchitecture("Arch(layers): layers must be a non-empty tuple of naap.bench.space.Layer; "
                                      "use Arch.from_layers or Arch.parse for other forms")
        for position, layer in enumerate(self.layers, 1):
            _layer(layer, position)

    @classmethod
    def from_layers(cls, layers: Iterable) -> Arch:
        """From layers given as Layer objects, mappings with kernel_size, width, stride and residual
        (the `layers` column of architectures.parquet), or tuples in that order."""
        if isinstance(layers, (str, Mapping)) or not isinstance(layers, Iterable):
            raise InvalidArchitecture(f"{layers!r} is not a list of layers (for text use Arch.parse)")
        return cls(tuple(_layer(item, position) for position, item in enumerate(layers, 1)))

    @classmethod
    def parse(cls, text: str) -> Arch:
        """The architecture a string in the notation describes."""
        if not isinstance(text, str):
            raise InvalidArchitecture(f"{text!r} is not a string; the notation is {NOTATION}")
        tokens = [t for t in _SEPARATORS.split(text.strip()) if t]
        if not tokens:
            raise InvalidArchitecture(f"empty architecture string; the notation is {NOTATION}")
        layers = []
        for position, token in enumerate(tokens, 1):
            match = _TOKEN.fullmatch(token)
            if not match:
                raise InvalidArchitecture(f"{text!r}: layer {position} '{token}' is not in the notation, "
                                          f"which is {NOTATION}")
            k, w, s, r = match.groups()
            layers.append((int(k), int(w), int(s), r == "r"))
        return cls.from_layers(layers)

    @property
    def hash(self) -> str:
        """The `arch_hash` column: a hash of the layers, the same on every machine."""
        return scheme_hash(self.layers)

    def __str__(self) -> str:
        return " ".join(f"k{l.kernel_size}w{l.width}s{l.stride}{'r' if l.residual else ''}" for l in self.layers)

    def __repr__(self) -> str:
        return f"Arch({str(self)!r})"


def search_space(recipe_contents: dict) -> SearchSpace:
    """The search space of a recipe's contents (a dataset's provenance keeps them, already validated)."""
    raw = recipe_contents["search_space"]
    positions = tuple(PositionOptions(*(tuple(p[name]) for name in FIELDS)) for p in raw["positions"])
    return SearchSpace(positions, raw["min_layers"], raw.get("max_stride2_layers", len(positions)))


def outside_space(arch: Arch, space: SearchSpace) -> str | None:
    """Why `arch` is not in `space` (the first rule it breaks, in words), or None if it is in it."""
    depth, positions = len(arch.layers), space.positions
    if not space.min_layers <= depth <= len(positions):
        return f"it has {depth} layers; the space has {space.min_layers} to {len(positions)}"
    previous = None
    for position, (layer, options) in enumerate(zip(arch.layers, positions), 1):
        for name in FIELDS:
            allowed = getattr(options, name)
            if getattr(layer, name) not in allowed:
                listed = ", ".join("yes" if v is True else "no" if v is False else str(v) for v in allowed)
                value = ("yes" if layer.residual else "no") if name == "residual" else getattr(layer, name)
                return f"layer {position}: {name} {value} is not an option at this position ({listed})"
        if layer.residual and previous is None:
            return f"layer {position}: the first layer cannot be residual"
        if layer.residual and layer.stride != 1:
            return f"layer {position}: a residual layer needs stride 1, it has stride {layer.stride}"
        if layer.residual and layer.width != previous.width:
            return (f"layer {position}: a residual layer needs the previous layer's width ({previous.width}), "
                    f"it has width {layer.width}")
        previous = layer
    stride2 = sum(l.stride == 2 for l in arch.layers)
    if stride2 > space.max_stride2_layers:
        return f"{stride2} layers have stride 2; at most {space.max_stride2_layers} may"
    return None
