"""The jobs of a recipe: one training of one (architecture, seed) each, in one fixed order.

The order is arch_id (the recipe's generation order), then the recipe's seeds as listed (then
training.extra_seeds, for the architectures of its sample); a job's index is its place in that
order, the same on every machine. `--limit N` keeps the jobs of the first N architectures;
`--shard I/N` the jobs whose index % N == I.

Everything a recipe value can break is checked here, before any training: the split, and
that every architecture and every seed fits the tables' Parquet schemas.
"""
from __future__ import annotations

import argparse
import random
from dataclasses import dataclass

import pandas as pd
import pyarrow as pa

from naap.bench.space import Scheme, generate_schemes
from naap.bench.tables import ARCHITECTURES_SCHEMA, EPOCHS_SCHEMA, describe_architectures
from naap.errors import NaapError
from naap.rebuild.recipe import Recipe

# The recipe field a value of each table column comes from, for the error message.
COLUMN_SOURCES = {"arch_id": "search_space.generator", "seed": "training.seeds", "epoch": "training.epochs"}


@dataclass(frozen=True)
class Job:
    index: int
    arch_id: int
    seed: int
    scheme: Scheme

    @property
    def name(self) -> str:
        return f"arch{self.arch_id:04d}-seed{self.seed}"


def cohorts(jobs: list[Job], size: int) -> list[list[Job]]:
    """`jobs` in cohorts of at most `size` jobs of one seed (naap.rebuild.cohort: members share the
    seed's batches), in the jobs' order within each seed and the seeds' order of first appearance:
    the same cohorts on every machine. A --shard's cohorts are made within the shard."""
    by_seed: dict[int, list[Job]] = {}
    for job in jobs:
        by_seed.setdefault(job.seed, []).append(job)
    return [group[i:i + size] for group in by_seed.values() for i in range(0, len(group), size)]


@dataclass(frozen=True)
class Shard:
    """`--shard I/N`: the I-th of N disjoint slices of a recipe's jobs (0 <= I < N)."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        try:
            index, count = (int(x) for x in text.split("/"))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected I/N (e.g. 0/4), got {text!r}") from None
        if not 0 <= index < count:
            raise argparse.ArgumentTypeError(f"I/N needs 0 <= I < N, got {text!r}")
        return cls(index, count)

    def takes(self, job: Job) -> bool:
        return job.index % self.count == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


@dataclass(frozen=True)
class Plan:
    """What a run builds: `jobs` (every job of its architectures), the scheme columns of its
    architectures table, and the split's number of test items."""

    recipe: Recipe
    jobs: list[Job]
    architectures: pd.DataFrame
    test_items: int
    limit: int | None
    recipe_architectures: int  # in the whole recipe; more than len(architectures) under --limit

    @property
    def limited(self) -> bool:
        return len(self.architectures) < self.recipe_architectures

    def jobs_of(self, shard: Shard | None) -> list[Job]:
        """The jobs a run with `--shard shard` (None: no shard) trains."""
        return [job for job in self.jobs if shard is None or shard.takes(job)]


def make_plan(recipe: Recipe, limit: int | None = None) -> Plan:
    """The jobs of `recipe` (of its first `limit` architectures), checked to fit the tables.
    A --limit try keeps the recipe's share of test items."""
    schemes = generate_schemes(recipe.search_space, recipe.generator)
    kept = schemes[:limit] if limit else schemes
    test_items = round(recipe.split.test_items * len(kept) / len(schemes))
    if test_items > len(kept):
        raise NaapError(f"{recipe.path}: split.test_items: {test_items} test items asked for, "
                        f"the recipe has only {len(kept)} architectures")
    architectures = describe_architectures(kept, None, *recipe.dataset.shape)
    _check_fits(recipe, architectures)
    extra = extra_seeded(recipe, len(schemes))
    pairs = [(arch_id, seed, scheme) for arch_id, scheme in enumerate(kept, 1)
             for seed in recipe.training.seeds + (recipe.training.extra_seeds.seeds if arch_id in extra else ())]
    jobs = [Job(index, *pair) for index, pair in enumerate(pairs)]
    return Plan(recipe, jobs, architectures, test_items, limit, len(schemes))


def extra_seeded(recipe: Recipe, architectures: int) -> set[int]:
    """The arch_ids of the recipe's training.extra_seeds sample (empty without one): drawn from all
    of the recipe's architectures with its sample_seed, so a --limit try keeps the same ones."""
    extra = recipe.training.extra_seeds
    if extra is None:
        return set()
    if extra.architectures > architectures:
        raise NaapError(f"{recipe.path}: training.extra_seeds.architectures: {extra.architectures} asked for, "
                        f"the recipe has only {architectures} architectures")
    return set(random.Random(extra.sample_seed).sample(range(1, architectures + 1), extra.architectures))


def _check_fits(recipe: Recipe, architectures: pd.DataFrame) -> None:
    """Every value the run will write fits its Parquet column: found now, not at the merge."""
    extra = recipe.training.extra_seeds.seeds if recipe.training.extra_seeds else ()
    epochs = pd.DataFrame({"arch_id": architectures["arch_id"].iloc[-1], "seed": [*recipe.training.seeds, *extra],
                           "epoch": recipe.training.epochs})
    results = {"is_test": False, "max_accuracy": 0.0, "diverged": False}
    for frame, schema in ((architectures.assign(**results), ARCHITECTURES_SCHEMA), (epochs, EPOCHS_SCHEMA)):
        for field in schema:
            if field.name not in frame:
                continue  # the float metrics: any value fits
            try:
                pa.array(frame[field.name], type=field.type)
            except (pa.ArrowException, ValueError, TypeError, OverflowError) as exc:
                source = COLUMN_SOURCES.get(field.name, "search_space.positions")
                raise NaapError(f"{recipe.path}: {source}: a value does not fit the tables' "
                                f"column {field.name!r}: {exc}") from None
