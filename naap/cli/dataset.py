"""`naap dataset RECIPE --out DIR`: its arguments; naap.rebuild.build runs it."""
from __future__ import annotations

from pathlib import Path

from naap.cli.arguments import positive_int, positive_number
from naap.rebuild.build import run_dataset
from naap.rebuild.jobs import Shard
from naap.rebuild.recipe import COHORT_SIZE_AUTO, ENGINES, STRATEGIES


def add_command(subparsers) -> None:
    p = subparsers.add_parser(
        "dataset", help="train every architecture of a recipe into a Parquet dataset (resumable, torchrun-ready)",
        description="Train every (architecture, seed) of RECIPE and merge the results into DIR. "
                    "Run it again with the same arguments to resume. Under torchrun, one process per device. "
                    "See docs/regenerating.md.")
    p.add_argument("recipe", help="recipe YAML file, e.g. recipes/naap440.yaml, or a shipped recipe's name (naap440)")
    p.add_argument("--out", type=Path, metavar="DIR", help="the dataset directory to write or resume")
    p.add_argument("--strategy", choices=STRATEGIES,
                   help="shard: whole networks per rank; ddp: every network on all ranks (default: the recipe's)")
    p.add_argument("--trainings-per-device", type=positive_int, metavar="N",
                   help="trainings (with a cohort engine: cohorts) at once per process with the shard strategy "
                        "(default: on a GPU the recipe's runner.trainings_per_device, 1 for cohort-graphs; on the "
                        "CPU the cores of this process, one thread each)")
    p.add_argument("--engine", choices=ENGINES,
                   help="eager: one network at a time per thread; cohort: --cohort-size networks of one seed in "
                        "lockstep per thread (the same numbers); cohort-graphs: the same as CUDA graphs "
                        "(default: the recipe's runner.engine, else eager; docs/regenerating.md)")
    p.add_argument("--cohort-size", type=cohort_size, metavar="K",
                   help="networks per cohort with a cohort engine, or auto: on a GPU from its measured memory, on "
                        "the CPU 4 (default: the recipe's runner.cohort_size, else auto; docs/regenerating.md)")
    p.add_argument("--shard", type=Shard.parse, metavar="I/N",
                   help="train only the jobs whose index %% N == I (job arrays: one shard per task), write their "
                        "parts and do not merge; `naap merge DIR` merges once every shard is done")
    p.add_argument("--limit", type=positive_int, metavar="N",
                   help="only the first N architectures (for tries); never replaces fuller merged tables")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="auto: cuda:LOCAL_RANK when there is a GPU, else the CPU")
    p.add_argument("--reuse", type=Path, metavar="OTHER",
                   help="copy the finished runs of OTHER, a dataset folder whose recipe trains them the same way "
                        "(e.g. NAAP-440 rebuilt, for recipes/naap440-seeds.yaml), instead of training them again; "
                        "OTHER is only read")
    p.add_argument("--estimate", action="store_true",
                   help="print what the run will cost (on a CPU: timed, in hours) and exit; writes nothing in DIR")
    p.add_argument("--max-hours", type=positive_number, metavar="H",
                   help="on a CPU, time the run first and refuse to start it if it is estimated above H hours")
    p.set_defaults(run=run_dataset)


def cohort_size(text: str) -> int | str:
    """--cohort-size: auto, or a whole number >= 1."""
    return COHORT_SIZE_AUTO if text == COHORT_SIZE_AUTO else positive_int(text)
