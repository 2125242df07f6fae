"""DATASET.md of a rebuilt dataset: what was built, how, on what, in how long (the recipe's name,
its file's and the devices' escaped for Markdown: they come from the user's files and machines)."""
from __future__ import annotations

from naap.bench.tables import Tables
from naap.escape import code_span, markdown
from naap.rebuild.jobs import Plan


def dataset_card(tables: Tables, plan: Plan, about: dict) -> str:
    a, p, d, recipe = tables.architectures, about, about["dataset"], plan.recipe
    limited = (f"\n\nA --limit try: the first {p['limit']} of the recipe's {plan.recipe_architectures} architectures "
               f"(a full run of the recipe replaces these tables)." if p["limit"] else "")
    shards = f", shards {', '.join(p['shards'])}" if p["shards"] else ""
    # parts written before runner.engine existed were trained eagerly
    engines = ", ".join(p.get("engines") or ["eager"])
    cohorts = f" (cohorts of {', '.join(map(str, p['cohort_sizes']))})" if p.get("cohort_sizes") else ""
    return f"""# {markdown(recipe.name)}

Rebuilt with {code_span(f"naap dataset {recipe.path.name}")} (naap {p['versions']['naap']}, torch {p['versions']['torch']})
on {markdown(', '.join(p['devices']))};
strategy {', '.join(p['strategies'])}, {', '.join(map(str, p['world_sizes']))} process(es){shards},
{', '.join(map(str, p['trainings_per_device']))} training thread(s) at once per device, engine {engines}{cohorts},
{', '.join(map(str, p['threads_per_training']))} CPU thread(s) per training.{limited}

- {len(a)} architectures ({int(a['is_test'].sum())} test items), {len(p['seeds'])} seed(s),
  {epochs_per_run(tables)}, {len(tables.epochs)} epoch rows, {len(p['diverged'])} diverged run(s)
- max accuracy {a['max_accuracy'].min():.4f} to {a['max_accuracy'].max():.4f} (mean over seeds of each run's best)
- data: {d['name']}, {d['train_size']} training and {d['test_size']} test images
  of {d['in_channels']}x{d['input_size']}x{d['input_size']}
- wall time {duration(p['wall_seconds'])} ({p['started']} to {p['finished']}),
  {duration(p['train_seconds'])} of training summed over devices

recipe.yaml is the recipe it was built from, parts/ the single runs; proxies.parquet holds the
zero-cost proxies of each architecture's network at initialisation (naap/rebuild/proxies.py), on the
recipe's first training images.
"""


def epochs_per_run(tables: Tables) -> str:
    """The runs' lengths as the rows show them (not as the recipe says: DATASET.md describes the data)."""
    runs = tables.epochs.groupby(["arch_id", "seed"])["epoch"].max()
    if runs.empty:
        return "no epoch rows (every run diverged in its first epoch)"
    low, high = int(runs.min()), int(runs.max())
    return f"{high} epochs per run" if low == high else f"{low} to {high} epochs per run (the shorter ones diverged)"


def duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"
