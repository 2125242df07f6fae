"""`naap dataset RECIPE --out DIR` (naap.cli.dataset): train every (architecture, seed) of a recipe into DIR and merge
them into the Parquet layout of data/naap440/, alone or under torchrun, with the same numbers.

This module is the order of things. Every check comes before
the first step of training; rank 0's view of DIR decides for every rank. The concepts live in
their own modules: naap.rebuild.jobs (the plan), naap.rebuild.workspace (DIR and its safety), naap.rebuild.cluster
(ranks, devices, the shared store), naap.rebuild.claims (who trains which job), naap.rebuild.strategies
(threads, DDP), naap.rebuild.progress, naap.rebuild.cost, naap.rebuild.merge, naap.rebuild.reuse (--reuse) and naap.rebuild.provenance.
docs/regenerating.md is the user's guide.
"""
from __future__ import annotations

import socket
import sys
import threading

from naap._signals import interrupt_exit_code
from naap.errors import NaapError
from naap.rebuild import reuse, settings
from naap.rebuild.claims import Claims, uses_flock
from naap.rebuild.cluster import Cluster, join_cluster
from naap.rebuild.cohort_size import CohortSize, plan_cohort_size
from naap.rebuild.cost import describe_cost
from naap.rebuild.datasets import DeviceData, load_dataset
from naap.rebuild.jobs import Job, Plan, Shard, make_plan
from naap.rebuild.merge import is_merged, merge, merged_architectures, nothing_to_do, summary
from naap.rebuild.progress import Progress
from naap.rebuild.recipe import MAX_COHORT_SIZE, engine_conflict, load_recipe
from naap.rebuild.strategies import (Trainer, default_trainings_per_device, launch_record, train_cohorts, train_ddp,
                                     train_shard)
from naap.rebuild.workspace import Workspace


def run_dataset(args) -> int:
    cluster = join_cluster(args.device)
    ws = None
    try:
        plan, ws, source = cluster.agree(lambda: _check_arguments(args))
        return _build(args, cluster, plan, ws, source)
    except KeyboardInterrupt as interrupt:
        # Under torchrun rank 0 speaks for every rank; after another rank's failure, that rank has.
        if cluster.rank != 0 or cluster.failed_elsewhere():
            raise SystemExit(interrupt_exit_code(interrupt)) from None
        kept = len(list((ws.root / "checkpoints").glob("*.pt"))) if ws is not None else 0
        if kept:
            raise type(interrupt)(f"{kept} checkpoint(s) kept in {ws.root / 'checkpoints'}; "
                                  f"run the same command to resume") from None
        raise
    finally:
        cluster.leave()


def _check_arguments(args) -> tuple[Plan, Workspace | None, Workspace | None]:
    """Every check that needs neither DIR's contents nor the data, on every rank: the plan, DIR
    and the folder whose runs are reused (--reuse)."""
    if args.shard is not None and args.limit is not None:
        raise NaapError("--limit: not with --shard (the shards of a recipe build all of it)")
    if args.out is None and not args.estimate:
        raise NaapError("--out: required (the dataset directory to write or resume)")
    recipe = load_recipe(args.recipe)
    if message := engine_conflict(args.strategy or recipe.runner.strategy, engine_of(args, recipe)):
        raise NaapError(f"--engine: {message}")
    if isinstance(args.cohort_size, int) and args.cohort_size > MAX_COHORT_SIZE:
        raise NaapError(f"--cohort-size: at most {MAX_COHORT_SIZE}, got {args.cohort_size}")
    plan = make_plan(recipe, args.limit)
    ws = Workspace(args.out) if args.out is not None else None
    if ws is not None:
        ws.check()
        if ws.recipe_copy.is_file():
            ws.check_recipe(recipe)
    source = reuse.open_source(args.reuse, recipe, args.out) if args.reuse is not None else None
    return plan, ws, source


def engine_of(args, recipe) -> str:
    """The engine a run trains with: --engine, else the recipe's runner.engine."""
    return args.engine or recipe.runner.engine


def _build(args, cluster: Cluster, plan: Plan, ws: Workspace | None, source: Workspace | None) -> int:
    # Rank 0's view of what is left decides for every rank: another run may write parts meanwhile.
    todo = cluster.broadcast(cluster.agree(lambda: _open(args, plan, ws, source) if cluster.rank == 0 else None))
    if todo is None:
        return 0
    if ws is not None and not args.estimate:
        cluster.check_sees(ws.recipe_copy)
    recipe = plan.recipe
    if todo:
        # With one process, ddp is the shard strategy; and the records say so.
        strategy = "ddp" if (args.strategy or recipe.runner.strategy) == "ddp" and cluster.world > 1 else "shard"
        data = cluster.agree(lambda: _load_data(plan, cluster, strategy))
        engine = engine_of(args, recipe)
        per_device = 1 if strategy == "ddp" else (args.trainings_per_device
                                                  or default_trainings_per_device(cluster, recipe, engine))
        measure = args.estimate or args.max_hours is not None
        at_once = cluster.world * per_device
        cluster.agree(lambda: _cost(todo, data, plan, at_once, measure, args.max_hours) if cluster.rank == 0 else None)
        if args.estimate:
            return 0
        _train(args, cluster, plan, ws, todo, data, strategy, per_device, engine)
    elif args.estimate:
        print(f"{ws.root}: every part is in; nothing left to train")
        return 0
    cluster.barrier()
    if cluster.rank == 0:
        _finish(args, plan, ws, trained=len(todo))
    return 0


def _open(args, plan: Plan, ws: Workspace | None, source: Workspace | None) -> list[Job] | None:
    """Rank 0: the jobs left to train (after making DIR ready, with the reused runs copied in), or
    None, said why, if there is nothing to do."""
    mine = plan.jobs_of(args.shard)
    missing = mine if ws is None else [job for job in mine if not ws.part(job).exists()]
    reused = reuse.reusable(source, missing, plan.recipe.training.epochs) if source is not None else []
    taken = {job.name for job in reused}
    todo = [job for job in missing if job.name not in taken]
    if reused:
        print(f"{'would reuse' if args.estimate else 'reusing'} {len(reused)} finished run(s) from {source.root}")
    if ws is None:  # --estimate alone
        return todo
    if not missing and args.shard is not None:
        print(_shard_summary(args.shard, plan, ws))
        return None
    if not missing and is_merged(ws, plan):
        print(nothing_to_do(ws))
        return None
    if not args.estimate:
        ws.check_writable()
        ws.adopt(plan.recipe)
        reuse.copy_parts(source, ws, reused)
        with ws.merging():
            ws.tidy(plan.jobs)
    return todo


def _load_data(plan: Plan, cluster: Cluster, strategy: str) -> DeviceData:
    recipe = plan.recipe
    data = load_dataset(recipe.dataset, recipe.training, cluster.device, source=recipe.path)
    if strategy == "ddp":
        smallest = recipe.training.smallest_batch(len(data.train_y))
        if smallest < cluster.world:
            raise NaapError(f"{recipe.path}: training.batch_size: a batch of {smallest} images cannot be split "
                            f"over {cluster.world} ranks (strategy ddp)")
    return data


def _cost(todo: list[Job], data: DeviceData, plan: Plan, at_once: int, measure: bool, max_hours: float | None) -> None:
    """Rank 0 prints the cost; on a CPU, measured, it refuses (for every rank) a run estimated above `max_hours`."""
    text, hours = describe_cost(todo, data, plan.recipe.training, at_once, measure)
    print(text, flush=True)
    if max_hours is not None and hours is not None and hours > max_hours:
        raise NaapError(f"estimated {hours:.1f} h on this CPU, more than --max-hours {max_hours:g}: "
                        f"train on GPUs, or allow it with a larger --max-hours")


def _train(args, cluster: Cluster, plan: Plan, ws: Workspace, todo: list[Job], data: DeviceData, strategy: str,
           per_device: int, engine: str) -> None:
    stop = threading.Event()
    shard = str(args.shard) if args.shard is not None else None
    progress = Progress(cluster, len(todo), len(plan.jobs_of(args.shard)), plan.recipe.training.epochs, stop)
    flock = uses_flock(cluster, args.shard)
    sized = None if engine == "eager" else _cohort_size(args, plan.recipe, todo, data, cluster, engine, per_device)
    launch = launch_record(cluster, data, strategy, shard, per_device, flock, settings.describe(cluster.device),
                           engine, sized)
    trainer = Trainer(ws, cluster, plan.recipe, data, strategy, per_device, progress, stop, launch, engine)
    claims = Claims(todo, ws, cluster.store, local_locks=flock, stop=stop)
    try:
        if strategy == "ddp":
            train_ddp(trainer, claims)
        elif engine == "eager":
            train_shard(trainer, claims)
        else:
            train_cohorts(trainer, claims, sized.k)
    except Exception as exc:
        if cluster.world > 1:  # the other ranks stop at their next epoch, quietly
            cluster.tell_failure(f"rank {cluster.rank}: {exc}")
            if isinstance(exc, NaapError):
                raise NaapError(f"rank {cluster.rank} ({socket.gethostname()}): {exc}") from None
        raise
    finally:
        progress.close()
    if cluster.failed_elsewhere():
        raise SystemExit(2)


def _cohort_size(args, recipe, todo: list[Job], data: DeviceData, cluster: Cluster, engine: str,
                 per_device: int) -> CohortSize:
    """This rank's cohort size (--cohort-size, else runner.cohort_size; auto: naap.rebuild.cohort_size),
    said once per rank."""
    asked, source = ((args.cohort_size, "--cohort-size") if args.cohort_size is not None
                     else (recipe.runner.cohort_size, f"{recipe.path}: runner.cohort_size"))
    sized = plan_cohort_size(asked, todo, data, recipe.training, cluster.device, engine, per_device, source)
    print(f"rank {cluster.rank}: {sized.describe(cluster.device)}", file=sys.stderr, flush=True)
    return sized


def _finish(args, plan: Plan, ws: Workspace, trained: int) -> None:
    """Rank 0, every part of this run in: merge, unless this is a shard or DIR holds fuller tables."""
    if args.shard is not None:
        print(_shard_summary(args.shard, plan, ws))
    elif is_merged(ws, plan):
        print(f"trained {trained} job(s) of the first {len(plan.architectures)} architectures; "
              f"the merged tables of {merged_architectures(ws)} architectures in {ws.root} are kept "
              f"(a --limit run never replaces fuller ones)")
    else:
        print(summary(ws, merge(ws, plan)))


def _shard_summary(shard: Shard, plan: Plan, ws: Workspace) -> str:
    done = len(ws.parts_in(plan.jobs))
    then = "every part is in" if done == len(plan.jobs) else "when every shard is done"
    return (f"shard {shard}: all its parts are in; {done} of {len(plan.jobs)} parts in {ws.root / 'parts'}; "
            f"{then}: naap merge {ws.root}")

