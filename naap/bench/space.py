"""The search space: layers, schemes, the depth-first enumeration and seeded sampling."""
from __future__ import annotations

import functools
import hashlib
import itertools
import json
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from naap.errors import NaapError

MAX_SCHEMES = 1_000_000  # architectures one recipe lists or trains: planning holds them in memory


# The search space as a recipe's search_space section states it (naap.rebuild.recipe validates it).
@dataclass(frozen=True)
class PositionOptions:
    """The options of one layer position, each tuple in walk order."""

    kernel_size: tuple[int, ...]
    width: tuple[int, ...]
    stride: tuple[int, ...]
    residual: tuple[bool, ...]


@dataclass(frozen=True)
class SearchSpace:
    positions: tuple[PositionOptions, ...]
    min_layers: int
    max_stride2_layers: int
    source: Path | None = field(default=None, compare=False)  # the recipe file, for messages


@dataclass(frozen=True)
class Generator:
    mode: str = "enumerate"
    count: int | None = None
    seed: int | None = None


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
    """The derived scheme features of docs/benchmark.md, section Search space, in snake_case."""
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


def _completions(space: SearchSpace) -> Callable[[int, int | None, int], int]:
    """count(depth, last_width, stride2): how many schemes start with a prefix of `depth` layers
    ending in `last_width` with `stride2` stride-2 layers, the prefix itself included. What
    may follow a prefix depends on nothing else (see _allowed), so the space is counted in
    a few steps per position, without listing it."""
    n, k = len(space.positions), [len(p.kernel_size) for p in space.positions]

    @functools.cache
    def fresh(depth: int, stride2: int) -> int:  # schemes going on with a non-residual layer
        p = space.positions[depth]
        if False not in p.residual:
            return 0
        total = 0
        for s in p.stride:
            after = stride2 + (s == 2)
            if after <= space.max_stride2_layers:
                total += k[depth] * sum(count(depth + 1, w, after) for w in p.width)
        return total

    @functools.cache
    def count(depth: int, last_width: int | None, stride2: int) -> int:
        total = int(depth >= space.min_layers)
        if depth == n:
            return total
        p = space.positions[depth]
        total += fresh(depth, stride2)
        if last_width is not None and True in p.residual and 1 in p.stride and last_width in p.width:
            total += k[depth] * count(depth + 1, last_width, stride2)
        return total

    return count


def count_schemes(space: SearchSpace) -> int:
    """The number of schemes the depth-first walk gives, exactly, without the walk."""
    return _completions(space)(0, None, 0)


def iter_schemes(space: SearchSpace) -> Iterator[Scheme]:
    """Depth-first walk (docs/benchmark.md, section Search space): a scheme is emitted before the longer ones extending it.
    A prefix nothing valid extends is never entered, so each scheme costs one path."""
    count, n = _completions(space), len(space.positions)

    def walk(prefix: Scheme, stride2: int) -> Iterator[Scheme]:
        if len(prefix) >= space.min_layers:
            yield prefix
        if len(prefix) == n:
            return
        for layer in _options(space.positions[len(prefix)]):
            after = stride2 + (layer.stride == 2)
            if _allowed(prefix, layer, space) and count(len(prefix) + 1, layer.width, after):
                yield from walk(prefix + (layer,), after)

    return walk((), 0)


def enumerate_schemes(space: SearchSpace) -> list[Scheme]:
    return list(iter_schemes(space))


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


def _how_many(n: int) -> str:
    digits = len(str(n))
    return f"{n:,}" if digits <= 12 else f"{n / 10 ** (digits - 1):.1f}e{digits - 1}"


def generate_schemes(space: SearchSpace, generator: Generator, limit: int | None = None,
                     max_schemes: int = MAX_SCHEMES) -> list[Scheme]:
    """The recipe's architectures in arch_id order (arch_id = index + 1); with `limit`, the first
    `limit` of them. Counted first: more than `max_schemes` is refused before any is made."""
    where = f"{space.source}: " if space.source else ""
    total = count_schemes(space)
    if total == 0:
        raise NaapError(f"{where}search_space: no scheme satisfies the constraints")
    if generator.mode == "sample" and generator.count > total:
        raise NaapError(f"{where}search_space.generator.count: {generator.count:,} schemes asked for, "
                        f"the search space has only {_how_many(total)}")
    wanted = total if generator.mode == "enumerate" else generator.count
    if min(wanted, limit or wanted) > max_schemes:
        raise NaapError(f"{where}search_space: {_how_many(wanted)} schemes; naap lists or trains at most "
                        f"{max_schemes:,} (take the first ones with --limit N, or generator.mode: sample)")
    if generator.mode == "enumerate":
        return list(itertools.islice(iter_schemes(space), limit))
    return sample_schemes(space, min(generator.count, limit or generator.count), generator.seed)
