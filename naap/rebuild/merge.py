"""Merging the parts of a dataset folder into its tables, and `naap merge DIR` (torch-free).

The merged tables hold the architectures of the plan (all of the recipe's, or the first N
of a --limit try, marked `"limit": N` in the provenance). Fuller tables are never replaced
by smaller ones: a merge is written only when DIR has none, or has tables of fewer
architectures. `naap merge DIR` merges a folder built by `--shard` runs once every part is in.
"""
from __future__ import annotations

import pandas as pd
import pyarrow as pa

from naap._io import read_provenance, write_parquet
from naap.bench.split import split_is_test
from naap.bench.tables import PROXIES_FILE, PROXIES_SCHEMA, Tables, check_tables, run_maxima, write_dataset
from naap.errors import NaapError
from naap.rebuild import provenance
from naap.rebuild.card import dataset_card
from naap.rebuild.jobs import Plan
from naap.rebuild.workspace import Workspace

MISSING_NAMED = 5  # the first missing parts an incomplete merge names


def merged_architectures(ws: Workspace) -> int | None:
    """How many architectures DIR's merged tables hold; None if it has none, or only some of the
    files of a merge that was stopped half-way (each file of one merge has the same provenance)."""
    tables = [ws.root / name for name in ("architectures.parquet", "epochs.parquet")]
    if not all(path.exists() for path in tables) or not (ws.root / "DATASET.md").exists():
        return None
    try:
        about = [read_provenance(path) for path in tables]
        return int(about[0]["architectures"]) if about[0] == about[1] else None
    except (OSError, pa.ArrowException, KeyError, ValueError, TypeError):
        raise NaapError(f"{tables[0]}: not a merged table of `naap dataset` (unreadable, or no provenance); "
                        f"move it away to merge again") from None


def nothing_to_do(ws: Workspace) -> str:
    """What `naap dataset` and `naap merge` say of a folder whose merged tables are complete."""
    return f"{ws.root} is complete: {merged_architectures(ws)} architectures; nothing to do"


def is_merged(ws: Workspace, plan: Plan) -> bool:
    """Whether DIR's merged tables already hold the plan's architectures, or more."""
    held = merged_architectures(ws)
    return held is not None and held >= len(plan.architectures)


def merge(ws: Workspace, plan: Plan) -> Tables:
    """The two tables from the parts of the plan's jobs, with the split and the provenance,
    written to DIR; then the finished jobs' checkpoints, locks and temporary files are tidied."""
    frames, records = zip(*(ws.read_part(job, plan.recipe.training.epochs) for job in plan.jobs))
    epochs = pd.concat(frames, ignore_index=True).sort_values(["arch_id", "seed", "epoch"], ignore_index=True)
    runs = pd.DataFrame(records)
    # max_accuracy: the best test accuracy of each seed's run (0 for a run that diverged in its
    # first epoch), averaged over the seeds.
    best = run_maxima(epochs).reindex(pd.MultiIndex.from_frame(runs[["arch_id", "seed"]]), fill_value=0.0)
    max_accuracy = best.groupby(level="arch_id").mean()
    architectures = plan.architectures.copy()
    architectures["max_accuracy"] = architectures["arch_id"].map(max_accuracy)
    architectures["diverged"] = architectures["arch_id"].map(runs.groupby("arch_id")["diverged"].any())
    architectures["is_test"] = architectures["arch_id"].map(split_is_test(max_accuracy, plan.test_items))
    recipe = plan.recipe
    about = provenance.rebuilt(
        recipe_name=recipe.name, recipe_file=recipe.path.name, recipe_contents=recipe.raw,
        architectures=len(architectures), limit=plan.limit if plan.limited else None,
        test_items=plan.test_items, records=list(records), train_seconds=float(epochs["epoch_seconds"].sum()))
    tables = Tables(architectures, epochs)
    try:  # what the loader would refuse is never written
        check_tables(tables, ws.root / "architectures.parquet", ws.root / "epochs.parquet", recipe.dataset.shape)
    except NaapError as exc:
        raise NaapError(f"{ws.root / 'parts'}: the parts make tables naap refuses, so nothing was written: "
                        f"{exc}") from None
    with ws.merging():
        write_proxies(ws, plan, records)
        write_dataset(tables, ws.root, about, dataset_card(tables, plan, about))
        ws.tidy(plan.jobs)
    return tables


def write_proxies(ws: Workspace, plan: Plan, records) -> None:
    """DIR/proxies.parquet: the zero-cost proxies each main-seed job computed on the recipe's
    training images before it trained (naap.rebuild.strategies); none where a part lacks them."""
    measured = [r for r in records if r.get("proxies")]
    if len(measured) != len(plan.architectures):
        return
    first = measured[0]
    table = pd.DataFrame([{"arch_id": r["arch_id"], **r["proxies"]["values"]} for r in measured])
    dataset, recipe, images = first["dataset"], plan.recipe, first["proxies"]["images"]
    about = provenance.proxies(
        seed=recipe.training.main_seed, batch_size=images,
        shape={key: dataset[key] for key in ("in_channels", "input_size", "num_classes")},
        data=provenance.training_images(images, recipe.name, dataset["name"]) + ", at initialisation by naap dataset",
        data_free=False, torch=first["versions"]["torch"], hardware=first["settings"].get("hardware"))
    write_parquet(table, ws.root / PROXIES_FILE, PROXIES_SCHEMA, about)


def summary(ws: Workspace, tables: Tables) -> str:
    a = tables.architectures
    return (f"wrote {ws.root}: {len(a)} architectures ({int(a['is_test'].sum())} test, "
            f"{int(a['diverged'].sum())} diverged), {len(tables.epochs)} epoch rows")


# --- the command ----------------------------------------------------------------
