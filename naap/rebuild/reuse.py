"""`naap dataset RECIPE --out DIR --reuse OTHER`: take the finished runs another dataset folder
holds instead of training them again (NAAP-440 rebuilt once, recipes/naap440-seeds.yaml then
trains only its 80 extra runs).

A run is reused only when it is the same training. OTHER's recipe must make runs as RECIPE does:
search_space (so each arch_id is the same architecture), dataset (its root aside for cifar10,
whose files are md5-checked) and training equal, apart from which seeds are trained
(training.seeds, training.extra_seeds); name, description, split and runner may differ. Each part
must be the job's own: its record's arch_id, seed and architecture hash, a run of all the
recipe's epochs unless it diverged. Everything is checked before anything is written. The parts
are copied into DIR, each atomically; nothing in OTHER is ever written. Their records keep where
and how each run was trained, so the merged provenance lists every device and version involved.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from naap._io import atomic_write
from naap.errors import NaapError
from naap.rebuild.jobs import Job
from naap.rebuild.recipe import Recipe, load_recipe
from naap.rebuild.workspace import Workspace

SEED_KEYS = ("seeds", "extra_seeds")
CHECKED_DATASETS = ("cifar10",)  # identified by their checksums, wherever their root


def _how_runs_are_made(raw: dict) -> dict:
    dataset = dict(raw.get("dataset") or {})
    if dataset.get("name") in CHECKED_DATASETS:
        dataset.pop("root", None)
    dataset.pop("download", None)
    training = {key: value for key, value in (raw.get("training") or {}).items() if key not in SEED_KEYS}
    return {"search_space": raw.get("search_space"), "dataset": dataset, "training": training}


def open_source(other: Path, recipe: Recipe, out: Path | None) -> Workspace:
    """OTHER as a folder whose runs RECIPE may reuse; one NaapError naming what differs otherwise."""
    if not other.is_dir():
        raise NaapError(f"{other}: --reuse: not a folder")
    if out is not None and out.exists() and out.resolve() == other.resolve():
        raise NaapError(f"{other}: --reuse: the same folder as --out")
    source = Workspace(other)
    if not source.recipe_copy.is_file():
        raise NaapError(f"{other}: --reuse: not a folder made by `naap dataset` (no recipe.yaml)")
    source.check()
    theirs, ours = _how_runs_are_made(load_recipe(source.recipe_copy).raw), _how_runs_are_made(recipe.raw)
    differ = [key for key in ours if theirs[key] != ours[key]]
    if differ:
        raise NaapError(f"{source.recipe_copy}: --reuse: its runs are not made as {recipe.path}'s "
                        f"({', '.join(differ)} differ)")
    return source


def reusable(source: Workspace, jobs: list[Job], epochs: int) -> list[Job]:
    """The jobs among `jobs` whose finished part `source` holds, each checked to be that job's run."""
    found = []
    for job in jobs:
        path = source.part(job)
        if not path.is_file():
            continue
        source.read_part(job, epochs, role="--reuse: ")
        found.append(job)
    return found


def copy_parts(source: Workspace, ws: Workspace, jobs: list[Job]) -> None:
    """Copy the parts of `jobs` from `source` into DIR (those DIR lacks), each atomically."""
    for job in jobs:
        if not ws.part(job).exists():
            atomic_write(ws.part(job), lambda tmp, job=job: shutil.copyfile(source.part(job), tmp))
