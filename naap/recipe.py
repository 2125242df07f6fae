"""Recipes: one YAML file defines a benchmark (search space, data, training, split, runner).

Loading validates every key: an unknown key, a wrong type or an impossible value
raises NaapError naming the file and the dotted key.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from naap.errors import NaapError

# Input channels, input size and classes of each dataset a recipe can name.
DATASET_SHAPES = {"cifar10": (3, 32, 10), "fashion-mnist": (1, 28, 10),
                  "cifar10-folder": (3, 32, 10), "synthetic": (3, 32, 10)}
DATASETS = tuple(DATASET_SHAPES)
STRATEGIES = ("shard", "ddp")
GENERATOR_MODES = ("enumerate", "sample")


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


@dataclass(frozen=True)
class Generator:
    mode: str = "enumerate"
    count: int | None = None
    seed: int | None = None


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    root: str | None = None
    train_size: int | None = None
    test_size: int | None = None
    download: bool = True

    @property
    def shape(self) -> tuple[int, int, int]:
        """(in_channels, input_size, num_classes) of the images and labels."""
        return DATASET_SHAPES[self.name]


@dataclass(frozen=True)
class Training:
    epochs: int
    batch_size: int
    lr: float
    momentum: float
    weight_decay: float
    nesterov: bool
    lr_factor: float
    lr_cycle: int
    mean: float
    std: float
    seeds: tuple[int, ...]

    def lr_at(self, epoch: int) -> float:
        """Learning rate of 1-based `epoch`: lr x factor^((epoch - 1) mod cycle)."""
        return self.lr * self.lr_factor ** ((epoch - 1) % self.lr_cycle)


@dataclass(frozen=True)
class Split:
    test_items: int


@dataclass(frozen=True)
class Runner:
    strategy: str = "shard"
    trainings_per_device: int = 1


@dataclass(frozen=True)
class Recipe:
    name: str
    path: Path
    search_space: SearchSpace
    generator: Generator
    dataset: DatasetSpec
    training: Training
    split: Split
    runner: Runner
    raw: dict = field(repr=False, compare=False, default_factory=dict)


# --- validation helpers -------------------------------------------------------

_Check = Callable[[Any], str | None]


class _Reader:
    """Reads typed values out of nested mappings, naming the file and key on error."""

    def __init__(self, path: Path):
        self.path = path

    def fail(self, key: str, message: str) -> NaapError:
        return NaapError(f"{self.path}: {key}: {message}")

    def mapping(self, value: Any, key: str, allowed: set[str], required: set[str]) -> dict:
        if not isinstance(value, dict):
            raise self.fail(key, f"must be a mapping, got {type(value).__name__}")
        for name in value:
            if name not in allowed:
                raise self.fail(f"{key}.{name}" if key else str(name),
                                f"unknown key (allowed: {', '.join(sorted(allowed))})")
        for name in sorted(required - set(value)):
            raise self.fail(f"{key}.{name}" if key else name, "missing required key")
        return value

    def scalar(self, value: Any, key: str, kind: type, check: _Check | None = None) -> Any:
        ok = isinstance(value, kind) and not (kind in (int, float) and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok:
            raise self.fail(key, f"must be {kind.__name__}, got {value!r}")
        problem = check(value) if check else None
        if problem:
            raise self.fail(key, f"{problem}, got {value!r}")
        return value

    def choices(self, value: Any, key: str, kind: type, check: _Check | None = None) -> tuple:
        if not isinstance(value, list) or not value:
            raise self.fail(key, f"must be a non-empty list, got {value!r}")
        items = tuple(self.scalar(v, f"{key}[{i}]", kind, check) for i, v in enumerate(value))
        if len(set(items)) != len(items):
            raise self.fail(key, f"has repeated options {list(items)}")
        return items


def _positive(v):
    return None if v >= 1 else "must be >= 1"


def _non_negative(v):
    return None if v >= 0 else "must be >= 0"


def _odd_positive(v):
    return None if v >= 1 and v % 2 == 1 else "must be an odd kernel size >= 1"


def _probability(v):
    return None if 0 <= v < 1 else "must be in [0, 1)"


def _one_of(options: tuple[str, ...]) -> _Check:
    return lambda v: None if v in options else f"must be one of {', '.join(options)}"


# --- sections -----------------------------------------------------------------

def _search_space(r: _Reader, raw: Any) -> tuple[SearchSpace, Generator]:
    m = r.mapping(raw, "search_space", {"positions", "min_layers", "max_stride2_layers", "generator"},
                  {"positions", "min_layers"})
    if not isinstance(m["positions"], list) or not m["positions"]:
        raise r.fail("search_space.positions", "must be a non-empty list of layer positions")
    positions = []
    for i, p in enumerate(m["positions"]):
        key = f"search_space.positions[{i}]"
        pm = r.mapping(p, key, {"kernel_size", "width", "stride", "residual"},
                       {"kernel_size", "width", "stride", "residual"})
        positions.append(PositionOptions(
            kernel_size=r.choices(pm["kernel_size"], f"{key}.kernel_size", int, _odd_positive),
            width=r.choices(pm["width"], f"{key}.width", int, _positive),
            stride=r.choices(pm["stride"], f"{key}.stride", int, _positive),
            residual=r.choices(pm["residual"], f"{key}.residual", bool),
        ))
    n = len(positions)
    min_layers = r.scalar(m["min_layers"], "search_space.min_layers", int,
                          lambda v: None if 1 <= v <= n else f"must be between 1 and {n} (the number of positions)")
    max_s2 = r.scalar(m.get("max_stride2_layers", n), "search_space.max_stride2_layers", int, _non_negative)
    g = r.mapping(m.get("generator", {}), "search_space.generator", {"mode", "count", "seed"}, set())
    mode = r.scalar(g.get("mode", "enumerate"), "search_space.generator.mode", str, _one_of(GENERATOR_MODES))
    count = seed = None
    if mode == "sample":
        for name in ("count", "seed"):
            if name not in g:
                raise r.fail(f"search_space.generator.{name}", "required when mode is sample")
        count = r.scalar(g["count"], "search_space.generator.count", int, _positive)
        seed = r.scalar(g["seed"], "search_space.generator.seed", int, _non_negative)
    elif set(g) - {"mode"}:
        raise r.fail("search_space.generator", "count and seed apply only to mode: sample")
    return SearchSpace(tuple(positions), min_layers, max_s2), Generator(mode, count, seed)


def _dataset(r: _Reader, raw: Any) -> DatasetSpec:
    m = r.mapping(raw, "dataset", {"name", "root", "train_size", "test_size", "download"}, {"name"})
    size = lambda k: None if m.get(k) is None else r.scalar(m[k], f"dataset.{k}", int, _positive)
    return DatasetSpec(
        name=r.scalar(m["name"], "dataset.name", str, _one_of(DATASETS)),
        root=None if m.get("root") is None else r.scalar(m["root"], "dataset.root", str),
        train_size=size("train_size"),
        test_size=size("test_size"),
        download=r.scalar(m.get("download", True), "dataset.download", bool),
    )


def _training(r: _Reader, raw: Any) -> Training:
    m = r.mapping(raw, "training", {"epochs", "batch_size", "optimizer", "lr_schedule", "normalize", "seeds"},
                  {"epochs", "batch_size", "optimizer", "lr_schedule", "normalize", "seeds"})
    opt = r.mapping(m["optimizer"], "training.optimizer", {"name", "lr", "momentum", "weight_decay", "nesterov"},
                    {"lr", "momentum", "weight_decay"})
    r.scalar(opt.get("name", "sgd"), "training.optimizer.name", str, _one_of(("sgd",)))
    sched = r.mapping(m["lr_schedule"], "training.lr_schedule", {"kind", "factor", "cycle"},
                      {"kind", "factor", "cycle"})
    r.scalar(sched["kind"], "training.lr_schedule.kind", str, _one_of(("cyclic-step",)))
    norm = r.mapping(m["normalize"], "training.normalize", {"mean", "std"}, {"mean", "std"})
    if not isinstance(m["seeds"], list) or not m["seeds"]:
        raise r.fail("training.seeds", f"must be a non-empty list of integers, got {m['seeds']!r}")
    return Training(
        epochs=r.scalar(m["epochs"], "training.epochs", int, _positive),
        batch_size=r.scalar(m["batch_size"], "training.batch_size", int, _positive),
        lr=r.scalar(opt["lr"], "training.optimizer.lr", float, lambda v: None if v > 0 else "must be > 0"),
        momentum=r.scalar(opt["momentum"], "training.optimizer.momentum", float, _probability),
        weight_decay=r.scalar(opt["weight_decay"], "training.optimizer.weight_decay", float, _non_negative),
        nesterov=r.scalar(opt.get("nesterov", False), "training.optimizer.nesterov", bool),
        lr_factor=r.scalar(sched["factor"], "training.lr_schedule.factor", float,
                           lambda v: None if 0 < v <= 1 else "must be in (0, 1]"),
        lr_cycle=r.scalar(sched["cycle"], "training.lr_schedule.cycle", int, _positive),
        mean=r.scalar(norm["mean"], "training.normalize.mean", float),
        std=r.scalar(norm["std"], "training.normalize.std", float, lambda v: None if v > 0 else "must be > 0"),
        seeds=r.choices(m["seeds"], "training.seeds", int, _non_negative),
    )


def load_recipe(path: str | Path) -> Recipe:
    """Read and validate a recipe file."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise NaapError(f"{path}: recipe file not found") from None
    except yaml.YAMLError as exc:
        raise NaapError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
    r = _Reader(path)
    top = r.mapping(raw, "", {"name", "description", "search_space", "dataset", "training", "split", "runner"},
                    {"name", "search_space", "dataset", "training", "split"})
    space, generator = _search_space(r, top["search_space"])
    split = r.mapping(top["split"], "split", {"test_items"}, {"test_items"})
    runner = r.mapping(top.get("runner", {}), "runner", {"strategy", "trainings_per_device"}, set())
    return Recipe(
        name=r.scalar(top["name"], "name", str, lambda v: None if v.strip() else "must not be empty"),
        path=path,
        search_space=space,
        generator=generator,
        dataset=_dataset(r, top["dataset"]),
        training=_training(r, top["training"]),
        split=Split(r.scalar(split["test_items"], "split.test_items", int, _non_negative)),
        runner=Runner(
            strategy=r.scalar(runner.get("strategy", "shard"), "runner.strategy", str, _one_of(STRATEGIES)),
            trainings_per_device=r.scalar(runner.get("trainings_per_device", 1),
                                          "runner.trainings_per_device", int, _positive),
        ),
        raw=raw,
    )
