"""`naap merge DIR`: write the tables of a dataset folder whose parts are all in (job arrays)."""
from __future__ import annotations

from pathlib import Path

from naap.errors import NaapError
from naap.rebuild.jobs import make_plan
from naap.rebuild.merge import MISSING_NAMED, is_merged, merge, nothing_to_do, summary
from naap.rebuild.recipe import load_recipe
from naap.rebuild.workspace import Workspace


def run(args) -> int:
    ws = Workspace(args.dir)
    ws.check()
    if not ws.recipe_copy.is_file():
        raise NaapError(f"{ws.recipe_copy}: not found; {ws.root} is not a folder made by `naap dataset`")
    plan = make_plan(load_recipe(ws.recipe_copy))
    if is_merged(ws, plan):
        print(nothing_to_do(ws))
        return 0
    missing = [job.name for job in plan.jobs if not ws.part(job).exists()]
    if missing:
        named = ", ".join(missing[:MISSING_NAMED]) + (", ..." if len(missing) > MISSING_NAMED else "")
        raise NaapError(f"{ws.root / 'parts'}: {len(missing)} of {len(plan.jobs)} parts missing ({named}); "
                        f"run the shards that train them (the same command resumes), then merge again")
    ws.check_writable()
    print(summary(ws, merge(ws, plan)))
    return 0


def add_command(subparsers) -> None:
    p = subparsers.add_parser(
        "merge", help="merge the parts of a dataset folder built with --shard into its tables",
        description="Check that every (architecture, seed) of DIR/recipe.yaml has its part in DIR/parts/, "
                    "then write DIR/architectures.parquet, epochs.parquet and DATASET.md. "
                    "A complete folder is left as it is.")
    p.add_argument("dir", type=Path, metavar="DIR", help="the --out folder of the `naap dataset --shard` runs")
    p.set_defaults(run=run)
