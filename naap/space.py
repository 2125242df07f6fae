"""The search space: layers, schemes, the depth-first enumeration and seeded sampling."""
from __future__ import annotations

import hashlib
import itertools
import json
import random
from dataclasses import asdict, dataclass
from typing import Iterator

from naap.errors import NaapError
from naap.recipe import Generator, PositionOptions, SearchSpace


@dataclass(frozen=True)
class Layer:
    kernel_size: int
    width: int
    stride: int
    residual: bool


Scheme = tuple[Layer, ...]


def scheme_from_dicts(layers: list[dict]) -> Scheme:
    return tuple(Layer(int(l["kernel_size"]), int(l["width"]), int(l["stride"]), bool(l["residual"]))
                 for l in layers)


def scheme_to_dicts(scheme: Scheme) -> list[dict]:
    return [asdict(layer) for layer in scheme]


def scheme_hash(scheme: Scheme) -> str:
    """A canonical hash of the layers: the same scheme gives the same hash on any machine."""
    text = json.dumps(scheme_to_dicts(scheme), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def scheme_features(scheme: Scheme) -> dict[str, int]:
    """The derived scheme features of SPEC section 2, in snake_case."""
    return {
        "num_layers": len(scheme),
        "num_stages": sum(l.stride == 2 for l in scheme),
        "first_layer_width": scheme[0].width,
        "last_layer_width": scheme[-1].width,
        "num_skip_connections": sum(l.residual for l in scheme),
        "num_partial_rf_layers": sum(l.stride == 2 and l.kernel_size == 1 for l in scheme),
    }


def _options(position: PositionOptions) -> Iterator[Layer]:
    for k, w, s, r in itertools.product(position.kernel_size, position.width, position.stride, position.residual):
        yield Layer(k, w, s, r)


def _allowed(prefix: Scheme, layer: Layer, space: SearchSpace) -> bool:
    if layer.residual and (not prefix or layer.stride != 1 or prefix[-1].width != layer.width):
        return False
    stride2 = sum(l.stride == 2 for l in prefix) + (layer.stride == 2)
    return stride2 <= space.max_stride2_layers


def enumerate_schemes(space: SearchSpace) -> list[Scheme]:
    """Depth-first walk (SPEC section 2): a scheme is emitted before the longer ones extending it."""
    out: list[Scheme] = []

    def walk(prefix: Scheme) -> None:
        if len(prefix) >= space.min_layers:
            out.append(prefix)
        if len(prefix) == len(space.positions):
            return
        for layer in _options(space.positions[len(prefix)]):
            if _allowed(prefix, layer, space):
                walk(prefix + (layer,))

    walk(())
    return out


def sample_schemes(space: SearchSpace, count: int, seed: int) -> list[Scheme]:
    """`count` distinct schemes drawn reproducibly: a depth uniformly, then each layer uniformly
    among the options the constraints allow at that point (drawn again on a dead end)."""
    rng = random.Random(seed)
    options = [list(_options(p)) for p in space.positions]
    seen: dict[Scheme, None] = {}
    misses = 0  # draws in a row that found nothing new: many of them mean the space is exhausted
    while len(seen) < count:
        if misses > 5_000 + 10 * count:
            raise NaapError(f"search space too small: drew {len(seen)} distinct schemes, "
                            f"search_space.generator.count asks for {count}")
        depth = rng.randint(space.min_layers, len(space.positions))
        scheme: Scheme = ()
        for i in range(depth):
            allowed = [l for l in options[i] if _allowed(scheme, l, space)]
            if not allowed:
                break
            scheme += (rng.choice(allowed),)
        fresh = len(scheme) == depth and scheme not in seen
        if fresh:
            seen[scheme] = None
        misses = 0 if fresh else misses + 1
    return list(seen)


def generate_schemes(space: SearchSpace, generator: Generator) -> list[Scheme]:
    """The recipe's architectures in arch_id order (arch_id = index + 1)."""
    if generator.mode == "enumerate":
        return enumerate_schemes(space)
    return sample_schemes(space, generator.count, generator.seed)
