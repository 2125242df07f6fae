"""Recipes: one YAML file defines a benchmark (search space, data, training, split, runner).

Loading validates every key before anything runs: an unknown key, a wrong type, a value
that is impossible or does not fit the dataset's Parquet columns raises NaapError naming
the file and the dotted key. The YAML is read without aliases and without duplicate keys.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from naap.bench.space import MAX_SCHEMES, Generator, PositionOptions, SearchSpace
from naap.errors import NaapError
from naap.resources import recipe_path
from naap.rebuild.recipe_yaml import read_recipe_yaml

# Input channels, input size and classes of each dataset a recipe can name.
DATASET_SHAPES = {"cifar10": (3, 32, 10), "fashion-mnist": (1, 28, 10),
                  "cifar10-folder": (3, 32, 10), "synthetic": (3, 32, 10)}
# Training and test images of each dataset (synthetic: the most naap writes); a
# cifar10-folder is counted when it is read, before any training.
DATASET_SIZES = {"cifar10": (50_000, 10_000), "fashion-mnist": (60_000, 10_000), "synthetic": (100_000, 20_000)}

# Bounds of a recipe. The Parquet columns set most of them (naap.bench.tables): width is int16,
# epoch int16, seed int64, arch_id int32.
MAX_WIDTH = 2 ** 15 - 1
MAX_EPOCHS = 2 ** 15 - 1
MAX_SEED = 2 ** 63 - 1
MAX_POSITIONS = 64             # layer positions: the walk over the space recurses once per position
MAX_OPTIONS = 10_000           # layers one position offers: the walk and the sampler go through all of them
MAX_TRAININGS_PER_DEVICE = 64  # threads sharing one device
MAX_COHORT_SIZE = 4_096        # trainings one thread steps in lockstep (naap.rebuild.cohort)
COHORT_SIZE_AUTO = "auto"      # runner.cohort_size: from measured memory on CUDA (naap.rebuild.cohort_size)
MAX_NAME_CHARS, MAX_TEXT_CHARS, MAX_PATH_CHARS = 100, 2_000, 4_096
DATASETS = tuple(DATASET_SHAPES)
STRATEGIES = ("shard", "ddp")
# How a thread trains: eager (one network at a time, train()), cohort (runner.cohort_size networks of
# one seed in lockstep, naap.rebuild.cohort), cohort-graphs (the same, replayed as CUDA graphs).
ENGINES = ("eager", "cohort", "cohort-graphs")
GENERATOR_MODES = ("enumerate", "sample")


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
class ExtraSeeds:
    """A sample of `architectures` architectures (drawn with `sample_seed`) trained again with
    each of `seeds`, beside every architecture's runs with training.seeds: the runs from which
    the leaderboard estimates the noise ceiling (seed-to-seed spread)."""

    seeds: tuple[int, ...]
    architectures: int
    sample_seed: int


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
    extra_seeds: ExtraSeeds | None = None

    def lr_at(self, epoch: int) -> float:
        """Learning rate of 1-based `epoch`: lr x factor^((epoch - 1) mod cycle)."""
        return self.lr * self.lr_factor ** ((epoch - 1) % self.lr_cycle)

    @property
    def main_seed(self) -> int:
        """The seed whose runs stand for each architecture (the one every architecture is trained
        with, as tables.main_seed finds it in the data): the smallest of `seeds`."""
        return min(self.seeds)

    def smallest_batch(self, train_images: int) -> int:
        """The fewest images of a batch in an epoch over `train_images` (the last batch may be partial)."""
        return min(self.batch_size, train_images % self.batch_size or self.batch_size)


@dataclass(frozen=True)
class Split:
    test_items: int


@dataclass(frozen=True)
class Runner:
    strategy: str = "shard"
    trainings_per_device: int = 1
    engine: str = "eager"
    cohort_size: int | str = COHORT_SIZE_AUTO  # a number, or COHORT_SIZE_AUTO


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
            raise self.fail(key, f"must be a mapping, got {_shown(value)}")
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
            value, ok = (float(value), True) if abs(value) < 1e308 else (value, False)
        if not ok:
            hint = ""
            if kind in (int, float) and isinstance(value, str) and _is_number(value):
                hint = " (text, not a number: write it unquoted" + (
                    " and with a dot, e.g. 1.0e-4, not 1e-4)" if kind is float else ")")
            raise self.fail(key, f"must be {kind.__name__}, got {_shown(value)}{hint}")
        if kind is float and not math.isfinite(value):
            raise self.fail(key, f"must be a finite number, got {value!r}")
        problem = check(value) if check else None
        if problem:
            raise self.fail(key, f"{problem}, got {_shown(value)}")
        return value

    def choices(self, value: Any, key: str, kind: type, check: _Check | None = None) -> tuple:
        if not isinstance(value, list) or not value:
            raise self.fail(key, f"must be a non-empty list, got {_shown(value)}")
        items = tuple(self.scalar(v, f"{key}[{i}]", kind, check) for i, v in enumerate(value))
        if len(set(items)) != len(items):
            raise self.fail(key, f"has repeated options {_shown(list(items))}")
        return items

    def text(self, value: Any, key: str, max_chars: int, one_line: bool = True) -> str:
        """A plain string of at most `max_chars` characters, without control characters."""
        allowed = "" if one_line else "\n\t"
        return self.scalar(value, key, str, lambda v: (
            f"must be at most {max_chars} characters" if len(v) > max_chars else
            "must not hold control characters" if any(c < " " and c not in allowed for c in v) else None))


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _shown(value: Any) -> str:
    """A value for a message: its repr, cut short."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


def _between(low: int, high: int, of: str = "") -> _Check:
    """`of` says where the bound comes from."""
    return lambda v: None if low <= v <= high else f"must be from {low:,} to {high:,}{of}"


def _at_least(low: int) -> _Check:
    return lambda v: None if v >= low else f"must be >= {low}"


def _probability(v):
    return None if 0 <= v < 1 else "must be in [0, 1)"


def _one_of(options: tuple[str, ...]) -> _Check:
    return lambda v: None if v in options else f"must be one of {', '.join(options)}"


def layer_checks(input_size: int) -> dict[str, _Check]:
    """The check of each integer layer field for images of `input_size` pixels: an odd kernel
    no wider than the image (wider ones add only padding), a width that fits int16, a stride
    from 1 to the image size (a larger one gives the same 1-pixel feature map). With odd
    kernels and padding kernel // 2, every feature map keeps at least one pixel."""
    largest_kernel = input_size - 1 + input_size % 2
    return {
        "kernel_size": lambda v: None if 1 <= v <= largest_kernel and v % 2 == 1
        else f"must be an odd kernel size from 1 to {largest_kernel}",
        "width": _between(1, MAX_WIDTH, " (width is int16 in architectures.parquet)"),
        "stride": _between(1, input_size, " (the image size)"),
    }


# --- sections -----------------------------------------------------------------

def _search_space(r: _Reader, raw: Any, input_size: int) -> tuple[SearchSpace, Generator]:
    m = r.mapping(raw, "search_space", {"positions", "min_layers", "max_stride2_layers", "generator"},
                  {"positions", "min_layers"})
    if not isinstance(m["positions"], list) or not m["positions"]:
        raise r.fail("search_space.positions", "must be a non-empty list of layer positions")
    if len(m["positions"]) > MAX_POSITIONS:
        raise r.fail("search_space.positions", f"{len(m['positions'])} positions, at most {MAX_POSITIONS}")
    checks = layer_checks(input_size)
    positions = []
    for i, p in enumerate(m["positions"]):
        key = f"search_space.positions[{i}]"
        pm = r.mapping(p, key, {"kernel_size", "width", "stride", "residual"},
                       {"kernel_size", "width", "stride", "residual"})
        positions.append(PositionOptions(
            kernel_size=r.choices(pm["kernel_size"], f"{key}.kernel_size", int, checks["kernel_size"]),
            width=r.choices(pm["width"], f"{key}.width", int, checks["width"]),
            stride=r.choices(pm["stride"], f"{key}.stride", int, checks["stride"]),
            residual=r.choices(pm["residual"], f"{key}.residual", bool),
        ))
        options = math.prod(len(o) for o in vars(positions[-1]).values())
        if options > MAX_OPTIONS:
            raise r.fail(key, f"{options:,} layer options (kernel sizes x widths x strides x residual), "
                              f"at most {MAX_OPTIONS:,}")
    n = len(positions)
    min_layers = r.scalar(m["min_layers"], "search_space.min_layers", int,
                          lambda v: None if 1 <= v <= n else f"must be between 1 and {n} (the number of positions)")
    max_s2 = r.scalar(m.get("max_stride2_layers", n), "search_space.max_stride2_layers", int, _between(0, n))
    g = r.mapping(m.get("generator", {}), "search_space.generator", {"mode", "count", "seed"}, set())
    mode = r.scalar(g.get("mode", "enumerate"), "search_space.generator.mode", str, _one_of(GENERATOR_MODES))
    count = seed = None
    if mode == "sample":
        for name in ("count", "seed"):
            if name not in g:
                raise r.fail(f"search_space.generator.{name}", "required when mode is sample")
        count = r.scalar(g["count"], "search_space.generator.count", int, _between(1, MAX_SCHEMES))
        seed = r.scalar(g["seed"], "search_space.generator.seed", int, _between(0, MAX_SEED))
    elif set(g) - {"mode"}:
        raise r.fail("search_space.generator", "count and seed apply only to mode: sample")
    return SearchSpace(tuple(positions), min_layers, max_s2, source=r.path), Generator(mode, count, seed)


def _dataset(r: _Reader, raw: Any) -> DatasetSpec:
    m = r.mapping(raw, "dataset", {"name", "root", "train_size", "test_size", "download"}, {"name"})
    name = r.scalar(m["name"], "dataset.name", str, _one_of(DATASETS))
    limits = DATASET_SIZES.get(name)

    def size(key: str, i: int) -> int | None:
        if m.get(key) is None:
            return None
        check = _between(1, limits[i], f" (the images {name} has)") if limits else _at_least(1)
        return r.scalar(m[key], f"dataset.{key}", int, check)

    return DatasetSpec(
        name=name,
        root=None if m.get("root") is None else r.text(m["root"], "dataset.root", MAX_PATH_CHARS),
        train_size=size("train_size", 0),
        test_size=size("test_size", 1),
        download=r.scalar(m.get("download", True), "dataset.download", bool),
    )


def _training(r: _Reader, raw: Any, dataset: DatasetSpec) -> Training:
    m = r.mapping(raw, "training", {"epochs", "batch_size", "optimizer", "lr_schedule", "normalize", "seeds",
                                    "extra_seeds"},
                  {"epochs", "batch_size", "optimizer", "lr_schedule", "normalize", "seeds"})
    opt = r.mapping(m["optimizer"], "training.optimizer", {"name", "lr", "momentum", "weight_decay", "nesterov"},
                    {"lr", "momentum", "weight_decay"})
    r.scalar(opt.get("name", "sgd"), "training.optimizer.name", str, _one_of(("sgd",)))
    sched = r.mapping(m["lr_schedule"], "training.lr_schedule", {"kind", "factor", "cycle"},
                      {"kind", "factor", "cycle"})
    r.scalar(sched["kind"], "training.lr_schedule.kind", str, _one_of(("cyclic-step",)))
    norm = r.mapping(m["normalize"], "training.normalize", {"mean", "std"}, {"mean", "std"})
    if not isinstance(m["seeds"], list) or not m["seeds"]:
        raise r.fail("training.seeds", f"must be a non-empty list of integers, got {_shown(m['seeds'])}")
    train_images = dataset.train_size or DATASET_SIZES.get(dataset.name, (None,))[0]
    batch_check = _between(1, train_images, " (the training images)") if train_images else _at_least(1)
    training = Training(
        epochs=r.scalar(m["epochs"], "training.epochs", int,
                        _between(1, MAX_EPOCHS, " (epoch is int16 in epochs.parquet)")),
        batch_size=r.scalar(m["batch_size"], "training.batch_size", int, batch_check),
        lr=r.scalar(opt["lr"], "training.optimizer.lr", float, lambda v: None if v > 0 else "must be > 0"),
        momentum=r.scalar(opt["momentum"], "training.optimizer.momentum", float, _probability),
        weight_decay=r.scalar(opt["weight_decay"], "training.optimizer.weight_decay", float, _at_least(0)),
        nesterov=r.scalar(opt.get("nesterov", False), "training.optimizer.nesterov", bool),
        lr_factor=r.scalar(sched["factor"], "training.lr_schedule.factor", float,
                           lambda v: None if 0 < v <= 1 else "must be in (0, 1]"),
        lr_cycle=r.scalar(sched["cycle"], "training.lr_schedule.cycle", int, _at_least(1)),
        mean=r.scalar(norm["mean"], "training.normalize.mean", float),
        std=r.scalar(norm["std"], "training.normalize.std", float, lambda v: None if v > 0 else "must be > 0"),
        seeds=r.choices(m["seeds"], "training.seeds", int, _between(0, MAX_SEED, " (seed is int64 in epochs.parquet)")),
        extra_seeds=None if m.get("extra_seeds") is None else _extra_seeds(r, m["extra_seeds"]),
    )
    if training.extra_seeds and set(training.extra_seeds.seeds) & set(training.seeds):
        repeated = sorted(set(training.extra_seeds.seeds) & set(training.seeds))[0]
        raise r.fail("training.extra_seeds.seeds", f"seed {repeated} is in training.seeds already")
    last = min(training.lr_cycle, training.epochs)
    if not training.lr_at(last) > 0:
        raise r.fail("training.lr_schedule.factor", f"the learning rate underflows to 0 at epoch {last}")
    return training


def _extra_seeds(r: _Reader, raw: Any) -> ExtraSeeds:
    m = r.mapping(raw, "training.extra_seeds", {"seeds", "architectures", "sample_seed"},
                  {"seeds", "architectures", "sample_seed"})
    return ExtraSeeds(
        seeds=r.choices(m["seeds"], "training.extra_seeds.seeds", int,
                        _between(0, MAX_SEED, " (seed is int64 in epochs.parquet)")),
        architectures=r.scalar(m["architectures"], "training.extra_seeds.architectures", int,
                               _between(1, MAX_SCHEMES)),
        sample_seed=r.scalar(m["sample_seed"], "training.extra_seeds.sample_seed", int, _between(0, MAX_SEED)),
    )


def _runner(r: _Reader, raw: Any) -> Runner:
    m = r.mapping(raw, "runner", {"strategy", "trainings_per_device", "engine", "cohort_size"}, set())
    runner = Runner(
        strategy=r.scalar(m.get("strategy", "shard"), "runner.strategy", str, _one_of(STRATEGIES)),
        trainings_per_device=r.scalar(m.get("trainings_per_device", 1), "runner.trainings_per_device",
                                      int, _between(1, MAX_TRAININGS_PER_DEVICE)),
        engine=r.scalar(m.get("engine", "eager"), "runner.engine", str, _one_of(ENGINES)),
        cohort_size=_cohort_size(r, m.get("cohort_size", COHORT_SIZE_AUTO)),
    )
    if message := engine_conflict(runner.strategy, runner.engine):
        raise r.fail("runner.engine", message)
    return runner


def _cohort_size(r: _Reader, value: Any) -> int | str:
    if value == COHORT_SIZE_AUTO:
        return value
    if not isinstance(value, int) or isinstance(value, bool):
        raise r.fail("runner.cohort_size", f"must be {COHORT_SIZE_AUTO} or an int, got {_shown(value)}")
    return r.scalar(value, "runner.cohort_size", int, _between(1, MAX_COHORT_SIZE))


def engine_conflict(strategy: str, engine: str) -> str | None:
    """Why `engine` cannot run under `strategy`, or None."""
    if strategy == "ddp" and engine != "eager":
        return f"{engine} needs the shard strategy (ddp trains one network on every rank); use engine eager"
    return None


def load_recipe(path: str | Path) -> Recipe:
    """Read and validate a recipe file, given by its path or as the name of a shipped recipe."""
    path = recipe_path(path)
    raw = read_recipe_yaml(path)
    r = _Reader(path)
    if not isinstance(raw, dict):
        raise NaapError(f"{path}: a recipe is a mapping of name, search_space, dataset, training, split; "
                        f"got {type(raw).__name__}")
    top = r.mapping(raw, "", {"name", "description", "search_space", "dataset", "training", "split", "runner"},
                    {"name", "search_space", "dataset", "training", "split"})
    name = r.text(top["name"], "name", MAX_NAME_CHARS)
    if not name.strip():
        raise r.fail("name", "must not be empty")
    if "description" in top:
        r.text(top["description"], "description", MAX_TEXT_CHARS, one_line=False)
    dataset = _dataset(r, top["dataset"])
    space, generator = _search_space(r, top["search_space"], dataset.shape[1])
    training = _training(r, top["training"], dataset)
    split = r.mapping(top["split"], "split", {"test_items"}, {"test_items"})
    runner = _runner(r, top.get("runner", {}))
    return Recipe(
        name=name,
        path=path,
        search_space=space,
        generator=generator,
        dataset=dataset,
        training=training,
        split=Split(r.scalar(split["test_items"], "split.test_items", int, _between(0, MAX_SCHEMES))),
        runner=runner,
        raw=raw,
    )
