"""`naap dataset RECIPE --out DIR`: train every (architecture, seed) of a recipe and write the
Parquet layout of data/naap440/, alone on one device or under torchrun (one process per
device, several nodes through its rendezvous) with no other change.

DIR holds, next to the merged tables:

    recipe.yaml             the recipe DIR is built from; a different one is refused
    parts/<job>.parquet     one finished (architecture, seed): its epoch rows, and a run record
                            (diverged, device, times) in the Parquet metadata
    checkpoints/<job>.pt    the last finished epoch of a job being trained
    locks/<job>.lock        claims (flock): the OS frees them when a process dies

Any number of processes, of one run or of several, may work on one DIR: a job is trained
by whoever holds its lock and finds no part, so a run killed at any moment and started
again skips the parts, resumes the checkpoints and redoes no finished epoch. When every
part is in, rank 0 merges them into architectures.parquet, epochs.parquet and DATASET.md.
"""
from __future__ import annotations

import argparse
import fcntl
import math
import os
import platform
import queue
import shutil
import socket
import sys
import threading
import time
import uuid
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
import torchvision
from tqdm import tqdm

import naap
from naap.counts import count_macs
from naap.datasets import DeviceData, load_dataset
from naap.errors import NaapError
from naap.recipe import STRATEGIES, Recipe, Training, load_recipe
from naap.space import Scheme, generate_schemes, scheme_hash
from naap.split import split_is_test
from naap.tables import (EPOCHS_SCHEMA, Tables, atomic_write, describe_architectures, read_parquet, read_provenance,
                         write_dataset, write_parquet)
from naap.train import EpochMetrics, RunResult, train

# The recipe keys that determine the data: a DIR refuses a recipe that differs in any of them.
DATA_KEYS = ("name", "search_space", "dataset", "training", "split")
# Collectives wait at most this long: a rank that ran out of work waits for the others' last job.
COLLECTIVE_TIMEOUT = timedelta(days=2)


@dataclass(frozen=True)
class Job:
    arch_id: int
    seed: int
    scheme: Scheme

    @property
    def name(self) -> str:
        return f"arch{self.arch_id:04d}-seed{self.seed}"


# --- the output directory -------------------------------------------------------

class Workspace:
    """The files of one output directory. Every write is atomic; claims are flock locks."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.recipe_copy = self.root / "recipe.yaml"

    def part(self, job: Job) -> Path:
        return self.root / "parts" / f"{job.name}.parquet"

    def checkpoint(self, job: Job) -> Path:
        return self.root / "checkpoints" / f"{job.name}.pt"

    def lock(self, job: Job) -> Path:
        return self.root / "locks" / f"{job.name}.lock"

    def adopt(self, recipe: Recipe) -> None:
        """Keep a copy of the recipe in a new DIR; refuse a DIR made from another recipe."""
        if not self.recipe_copy.exists():
            # recipe.yaml itself may appear meanwhile: the ranks of one run all start here at once
            if self.root.is_dir() and any(not p.name.startswith(".") and p != self.recipe_copy
                                          for p in self.root.iterdir()):
                raise NaapError(f"{self.root}: not empty and not made by `naap dataset` (no recipe.yaml); "
                                f"choose another --out")
            # Linked in, never renamed over: of runs starting at once, the first one's recipe is kept
            # and the others are checked against it.
            mine = self.root / f".recipe.{uuid.uuid4().hex}.yaml"
            atomic_write(mine, lambda tmp: shutil.copyfile(recipe.path, tmp))
            try:
                os.link(mine, self.recipe_copy)
            except FileExistsError:
                pass
            finally:
                mine.unlink()
        kept = load_recipe(self.recipe_copy)
        differ = [key for key in DATA_KEYS if kept.raw.get(key) != recipe.raw.get(key)]
        if differ:
            raise NaapError(f"{self.recipe_copy}: {self.root} was made from another recipe "
                            f"({', '.join(differ)} differ from {recipe.path}); use another --out")

    @contextmanager
    def claim(self, job: Job, wait: bool) -> Iterator[bool]:
        """Hold the job's lock while inside; False (not held) if another process has it and not `wait`."""
        lock = self.lock(job)
        lock.parent.mkdir(parents=True, exist_ok=True)
        with open(lock, "a") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                held = False
            else:
                held = True
            yield held

    def write_part(self, job: Job, result: RunResult, record: dict) -> None:
        rows = pd.DataFrame([asdict(e) for e in result.epochs], columns=[f.name for f in fields(EpochMetrics)])
        rows.insert(0, "arch_id", job.arch_id)
        rows.insert(1, "seed", job.seed)
        write_parquet(rows, self.part(job), EPOCHS_SCHEMA, provenance=record)
        self.checkpoint(job).unlink(missing_ok=True)

    def read_part(self, job: Job) -> tuple[pd.DataFrame, dict]:
        return read_parquet(self.part(job), EPOCHS_SCHEMA), read_provenance(self.part(job))

    def tidy(self, jobs: list[Job]) -> None:
        """Remove the checkpoints and locks of finished jobs, and the temporary files a kill left.
        No process writes for a finished job any more: a claim always looks for the part first."""
        for job in jobs:
            leftovers = [self.checkpoint(job), self.lock(job),
                         *(self.root / "checkpoints").glob(f".{job.name}.*.tmp"),
                         *(self.root / "parts").glob(f".{job.name}.*.tmp")]
            for path in leftovers:
                path.unlink(missing_ok=True)
        for folder in ("checkpoints", "locks"):
            try:
                (self.root / folder).rmdir()
            except OSError:
                pass  # not empty: another run's jobs are still in there


# --- processes and devices ------------------------------------------------------

@dataclass(frozen=True)
class Cluster:
    """This process's place: rank and world size (1 without torchrun) and its device."""

    rank: int
    world: int
    device: torch.device

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def broadcast(self, value):
        if self.world == 1:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]


def join_cluster(device: str) -> Cluster:
    """Read torchrun's RANK/WORLD_SIZE/LOCAL_RANK, pick cuda:LOCAL_RANK or the CPU, init the group."""
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if device == "cuda" and not torch.cuda.is_available():
        raise NaapError("--device cuda: PyTorch sees no CUDA device here")
    if device != "cpu" and torch.cuda.is_available():
        if local_rank >= torch.cuda.device_count():
            raise NaapError(f"LOCAL_RANK {local_rank}: this node has only {torch.cuda.device_count()} GPU(s); "
                            f"start at most that many processes per node")
        chosen = torch.device("cuda", local_rank)
        torch.cuda.set_device(chosen)
    else:
        chosen = torch.device("cpu")
    if "RANK" not in os.environ:
        return Cluster(0, 1, chosen)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if chosen.type == "cuda" else "gloo", timeout=COLLECTIVE_TIMEOUT)
    return Cluster(dist.get_rank(), dist.get_world_size(), chosen)


# --- training the jobs ----------------------------------------------------------

class Progress:
    """A live bar per rank (epochs, epochs/s, ETA, architectures done) and a line per finished job."""

    def __init__(self, ws: Workspace, jobs: list[Job], cluster: Cluster, epochs: int, expected: int):
        self.ws, self.jobs, self.rank, self.epochs = ws, jobs, cluster.rank, epochs
        self.architectures = len({j.arch_id for j in jobs})
        self.bar = tqdm(total=expected * epochs, unit="epoch", desc=f"rank {cluster.rank}",
                        position=cluster.rank, dynamic_ncols=True, disable=None, file=sys.stderr)
        self.lock = threading.Lock()

    def expect_one_more(self) -> None:
        with self.lock:
            self.bar.total += self.epochs
            self.bar.refresh()

    def epoch(self) -> None:
        with self.lock:
            self.bar.update()

    def finished(self, job: Job, result: RunResult, seconds: float, new_epochs: int) -> None:
        done = sum(self.ws.part(j).exists() for j in self.jobs)
        k = len(result.epochs)
        outcome = [f"DIVERGED in epoch {k + 1}"] if result.diverged else []
        if k:
            outcome.append(f"max accuracy {max(e.test_accuracy for e in result.epochs):.4f} over {k} epochs")
        with self.lock:
            self.bar.update(self.epochs - new_epochs)  # epochs resumed from a checkpoint or cut by divergence
            self.bar.set_postfix_str(f"{done}/{len(self.jobs)} trainings done")
            tqdm.write(f"[rank {self.rank}] arch {job.arch_id}/{self.architectures} seed {job.seed}: "
                       f"{', '.join(outcome)}, {new_epochs} trained here in {seconds:.1f} s "
                       f"({done}/{len(self.jobs)} done)")

    def close(self) -> None:
        self.bar.close()


@dataclass
class Trainer:
    """Trains claimed jobs on this process's device and writes their parts."""

    ws: Workspace
    cluster: Cluster
    data: DeviceData
    training: Training
    strategy: str
    progress: Progress

    def run(self, job: Job) -> RunResult:
        new_epochs = 0

        def on_epoch(metrics: EpochMetrics) -> None:
            nonlocal new_epochs
            new_epochs += 1
            self.progress.epoch()

        started = time.time()
        result = train(job.scheme, self.data, self.training, job.seed, device=self.cluster.device,
                       checkpoint=self.ws.checkpoint(job), ddp=self.strategy == "ddp",
                       on_epoch=on_epoch)
        finished = time.time()
        if self.cluster.rank == 0 or self.strategy == "shard":
            self.ws.write_part(job, result, self.record(job, result, started, finished, new_epochs))
            self.progress.finished(job, result, finished - started, new_epochs)
        return result

    def record(self, job: Job, result: RunResult, started: float, finished: float, new_epochs: int) -> dict:
        """The run record kept in the part's metadata (resumed_epochs: epochs taken from a checkpoint)."""
        d = self.data
        return {"arch_id": job.arch_id, "seed": job.seed, "arch_hash": scheme_hash(job.scheme),
                "diverged": result.diverged, "epochs": len(result.epochs),
                "resumed_epochs": len(result.epochs) - new_epochs,
                "device": _device_name(self.cluster.device), "host": socket.gethostname(),
                "rank": self.cluster.rank, "world_size": self.cluster.world, "strategy": self.strategy,
                "dataset": {"name": d.name, "in_channels": d.in_channels, "input_size": d.input_size,
                            "num_classes": d.num_classes, "train_size": len(d.train_y), "test_size": len(d.test_y)},
                "started": started, "finished": finished}


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} thread(s))"


def train_shard(trainer: Trainer, jobs: list[Job], per_device: int) -> None:
    """Each rank trains whole networks, `per_device` at a time (threads; each its own CUDA stream).

    A rank takes its own share first (jobs[rank::world]), then helps with the others' from
    their end; a job busy elsewhere is waited for at the end, so that every rank leaves with
    every part written (or the job trained itself, if its holder died)."""
    ws, cluster = trainer.ws, trainer.cluster
    own = jobs[cluster.rank::cluster.world]
    own_set, stop, errors = set(own), threading.Event(), []
    pending: queue.Queue[tuple[Job, bool]] = queue.Queue()
    for job in own + [j for j in reversed(jobs) if j not in own_set]:
        pending.put((job, False))

    on_cuda = cluster.device.type == "cuda"
    if on_cuda:  # the data came to the device on the default stream: finish that before other streams read it
        torch.cuda.synchronize(cluster.device)

    def work() -> None:
        with torch.cuda.stream(torch.cuda.Stream(cluster.device)) if on_cuda else nullcontext():
            while not stop.is_set():
                try:
                    job, wait = pending.get_nowait()
                except queue.Empty:
                    return
                with ws.claim(job, wait) as claimed:
                    if not claimed:
                        pending.put((job, True))
                    elif not ws.part(job).exists():
                        if job not in own_set:
                            trainer.progress.expect_one_more()
                        trainer.run(job)

    def guarded() -> None:
        try:
            work()
        except BaseException as exc:
            errors.append(exc)
            stop.set()

    if per_device == 1:
        work()
        return
    threads = [threading.Thread(target=guarded, daemon=True) for _ in range(per_device)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            while t.is_alive():
                t.join(0.5)
    finally:
        stop.set()
    if errors:
        raise errors[0]


def train_ddp(trainer: Trainer, jobs: list[Job]) -> None:
    """Every rank trains every network together (DistributedDataParallel); rank 0 claims and writes."""
    ws, cluster = trainer.ws, trainer.cluster
    pending = [(job, False) for job in jobs]
    while pending:
        job, wait = pending.pop(0)
        with ExitStack() as stack:
            state = None
            if cluster.rank == 0:
                claimed = stack.enter_context(ws.claim(job, wait))
                state = "busy" if not claimed else "done" if ws.part(job).exists() else "train"
            state = cluster.broadcast(state)
            if state == "busy":
                pending.append((job, True))
            elif state == "train":
                trainer.run(job)


# --- what a run costs -----------------------------------------------------------

def cost(jobs: list[Job], shape: tuple[int, int, int], n_train: int, n_test: int,
         training: Training) -> tuple[int, float]:
    """Optimizer steps and FLOP of `jobs` (SPEC section 7: 2 FLOP per MAC, training at 3x the
    forward cost, plus a forward pass over the test set every epoch)."""
    macs = sum(count_macs(j.scheme, *shape) for j in jobs)
    steps = len(jobs) * math.ceil(n_train / training.batch_size) * training.epochs
    return steps, 2.0 * macs * (3 * n_train + n_test) * training.epochs


def cpu_epoch_seconds(jobs: list[Job], data: DeviceData, training: Training) -> np.ndarray:
    """Seconds per epoch of each job on this CPU, measured on the smallest and the largest network
    (2048 training images, 1024 test images, the second epoch) and interpolated in MACs."""
    macs = np.array([count_macs(j.scheme, *data.shape) for j in jobs], dtype=float)
    sample = replace(data, train_x=data.train_x[:2048], train_y=data.train_y[:2048],
                     test_x=data.test_x[:1024], test_y=data.test_y[:1024])
    weight = lambda n_train, n_test: n_train + n_test / 3  # a test image costs a third of a training one
    timing = replace(training, epochs=2, lr=1e-3)  # timing only: a small lr, so that no recipe diverges here
    ends = [int(macs.argmin()), int(macs.argmax())]
    per_image = [train(jobs[i].scheme, sample, timing, 0).epochs[-1].epoch_seconds
                 / weight(len(sample.train_y), len(sample.test_y)) for i in ends]
    slope = (per_image[1] - per_image[0]) / max(macs[ends[1]] - macs[ends[0]], 1.0)
    return (per_image[0] + slope * (macs - macs[ends[0]])) * weight(len(data.train_y), len(data.test_y))


def describe_cost(jobs: list[Job], data: DeviceData, training: Training, cluster: Cluster,
                  measure: bool) -> tuple[str, float | None]:
    """What the run costs, as text; with `measure`, on a CPU, also the hours with this many processes."""
    n_train, n_test = len(data.train_y), len(data.test_y)
    steps, flop = cost(jobs, data.shape, n_train, n_test, training)
    text = (f"cost: {len(jobs)} trainings x {training.epochs} epochs on {n_train} + {n_test} images = "
            f"{steps:,} optimizer steps, {flop:.3g} FLOP")
    if not measure or cluster.device.type != "cpu":
        return text, None
    seconds = cpu_epoch_seconds(jobs, data, training)
    hours = seconds.sum() * training.epochs / cluster.world / 3600
    low, high = seconds.min(), seconds.max()
    text += (f"\nthis CPU ({torch.get_num_threads()} thread(s) per process): an epoch takes {low:.1f} s "
             f"({n_train / low:,.0f} images/s, smallest network) to {high:.1f} s ({n_train / high:,.0f} images/s, "
             f"largest); about {_duration(hours * 3600)} with {cluster.world} process(es)")
    return text, hours


# --- merging the parts ----------------------------------------------------------

def merge(ws: Workspace, recipe: Recipe, jobs: list[Job], test_items: int) -> Tables:
    """The two tables from the parts of `jobs`, with the split rule and the provenance; written to DIR."""
    frames, records = zip(*(ws.read_part(job) for job in jobs))
    epochs = pd.concat(frames, ignore_index=True).sort_values(["arch_id", "seed", "epoch"], ignore_index=True)
    runs = pd.DataFrame(records)
    schemes = {j.arch_id: j.scheme for j in jobs}
    architectures = describe_architectures(list(schemes.values()), list(schemes), *recipe.dataset.shape)
    # MaxAccuracy: the best test accuracy of each seed's run (0 for a run that diverged in its
    # first epoch), averaged over the seeds.
    best = epochs.groupby(["arch_id", "seed"])["test_accuracy"].max()
    best = best.reindex(pd.MultiIndex.from_frame(runs[["arch_id", "seed"]]), fill_value=0.0)
    max_accuracy = best.groupby(level="arch_id").mean()
    architectures["max_accuracy"] = architectures["arch_id"].map(max_accuracy)
    architectures["diverged"] = architectures["arch_id"].map(runs.groupby("arch_id")["diverged"].any())
    architectures["is_test"] = architectures["arch_id"].map(split_is_test(max_accuracy, test_items))
    provenance = {
        "source": f"rebuilt with `naap dataset` from recipe {recipe.name}",
        "kind": "rebuilt",
        "recipe": {"name": recipe.name, "file": recipe.path.name, "contents": recipe.raw},
        "versions": {"naap": naap.__version__, "torch": torch.__version__,
                     "torchvision": torchvision.__version__, "python": platform.python_version(),
                     "numpy": np.__version__, "pandas": pd.__version__},
        "dataset": records[0]["dataset"],
        "architectures": len(schemes), "seeds": sorted(runs["seed"].unique().tolist()),
        "diverged": runs.loc[runs["diverged"], ["arch_id", "seed"]].to_dict("records"),
        "split_test_items": test_items,
        "devices": sorted(runs["device"].unique()), "hosts": sorted(runs["host"].unique()),
        "world_sizes": sorted(runs["world_size"].unique().tolist()), "strategies": sorted(runs["strategy"].unique()),
        "started": _iso(runs["started"].min()), "finished": _iso(runs["finished"].max()),
        "wall_seconds": round(runs["finished"].max() - runs["started"].min(), 1),
        "train_seconds": round(float(epochs["epoch_seconds"].sum()), 1),
        "notes": "wall_seconds spans the first training's start to the last one's end, pauses included; "
                 "train_seconds sums the epochs' seconds over all devices.",
    }
    tables = Tables(architectures, epochs)
    write_dataset(tables, ws.root, provenance, dataset_card(tables, recipe, provenance))
    ws.tidy(jobs)
    return tables


def dataset_card(tables: Tables, recipe: Recipe, provenance: dict) -> str:
    a, p, d = tables.architectures, provenance, provenance["dataset"]
    return f"""# {recipe.name}

Rebuilt with `naap dataset {recipe.path.name}` (naap {p['versions']['naap']}, torch {p['versions']['torch']})
on {', '.join(p['devices'])};
strategy {', '.join(p['strategies'])}, {', '.join(map(str, p['world_sizes']))} process(es).

- {len(a)} architectures ({int(a['is_test'].sum())} test items), {len(p['seeds'])} seed(s),
  {recipe.training.epochs} epochs per run, {len(tables.epochs)} epoch rows, {len(p['diverged'])} diverged run(s)
- max accuracy {a['max_accuracy'].min():.4f} to {a['max_accuracy'].max():.4f} (mean over seeds of each run's best)
- data: {d['name']}, {d['train_size']} training and {d['test_size']} test images
  of {d['in_channels']}x{d['input_size']}x{d['input_size']}
- wall time {_duration(p['wall_seconds'])} ({p['started']} to {p['finished']}),
  {_duration(p['train_seconds'])} of training summed over devices

recipe.yaml is the recipe it was built from, parts/ the single runs.
"""


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="seconds")


# --- the command ----------------------------------------------------------------

def plan(recipe: Recipe, limit: int | None) -> tuple[list[Job], int]:
    """The (architecture, seed) jobs in arch_id order, and the split's number of test items
    (a --limit try keeps the recipe's share of them)."""
    schemes = generate_schemes(recipe.search_space, recipe.generator)
    limited = schemes[:limit] if limit else schemes
    test_items = round(recipe.split.test_items * len(limited) / len(schemes))
    if test_items > len(limited):
        raise NaapError(f"{recipe.path}: split.test_items: {test_items} test items asked for, "
                        f"the recipe has only {len(limited)} architectures")
    jobs = [Job(arch_id, seed, scheme) for arch_id, scheme in enumerate(limited, 1) for seed in recipe.training.seeds]
    return jobs, test_items


def check_cost(jobs: list[Job], data: DeviceData, training: Training, cluster: Cluster, measure: bool,
               max_hours: float | None) -> None:
    """Rank 0 prints the cost; on a CPU, measured, every rank refuses a run rank 0 estimates above `max_hours`."""
    hours = None
    if cluster.rank == 0:
        text, hours = describe_cost(jobs, data, training, cluster, measure)
        print(text, flush=True)
    hours = cluster.broadcast(hours)
    if max_hours is not None and hours is not None and hours > max_hours:
        raise NaapError(f"estimated {hours:.1f} h on this CPU, more than --max-hours {max_hours:g}: "
                        f"train on GPUs, or allow it with a larger --max-hours")


def check_shared(ws: Workspace, cluster: Cluster) -> None:
    """Every rank must see the files of DIR (on several nodes: one shared filesystem), or the
    claims and parts would not be shared: rank 0 leaves a mark there and every rank looks for it."""
    if cluster.world == 1:
        return
    mark = None
    if cluster.rank == 0:
        mark = ws.root / f".rank0-mark-{uuid.uuid4().hex}"
        mark.touch()
    mark = cluster.broadcast(mark)
    seen = mark.exists()
    cluster.barrier()
    if cluster.rank == 0:
        mark.unlink()
    if not seen:
        raise NaapError(f"{ws.root}: rank {cluster.rank} on {socket.gethostname()} does not see the files rank 0 "
                        f"writes there; --out must be a folder every node shares (NFS or the like)")


def run_dataset(args) -> int:
    recipe = load_recipe(args.recipe)
    jobs, test_items = plan(recipe, args.limit)
    if args.out is None and not args.estimate:
        raise NaapError("--out: required (the dataset directory to write or resume)")
    ws = Workspace(args.out) if args.out is not None else None
    cluster = join_cluster(args.device)
    try:
        if not args.estimate:
            ws.adopt(recipe)
            check_shared(ws, cluster)
        # Rank 0's view decides for every rank: another run on DIR may write parts meanwhile.
        todo = cluster.broadcast([j for j in jobs if ws is None or not ws.part(j).exists()])
        if todo:
            data = load_dataset(recipe.dataset, recipe.training, cluster.device)
            check_cost(todo, data, recipe.training, cluster, args.estimate or args.max_hours is not None,
                       args.max_hours)
            if args.estimate:
                return 0
            strategy = args.strategy or recipe.runner.strategy
            # The recipe's trainings_per_device is for GPUs; a CPU process (one per core) trains one at a time.
            per_device = args.trainings_per_device or (
                recipe.runner.trainings_per_device if cluster.device.type == "cuda" else 1)
            _train(ws, jobs, cluster, data, recipe.training, strategy, per_device)
        elif args.estimate:
            print(f"{ws.root}: every part is in; nothing left to train")
            return 0
        cluster.barrier()
        if cluster.rank == 0:
            tables = merge(ws, recipe, jobs, test_items)
            a = tables.architectures
            print(f"wrote {ws.root}: {len(a)} architectures ({int(a['is_test'].sum())} test, "
                  f"{int(a['diverged'].sum())} diverged), {len(tables.epochs)} epoch rows")
        return 0
    finally:
        if cluster.world > 1:
            dist.destroy_process_group()


def _train(ws: Workspace, jobs: list[Job], cluster: Cluster, data: DeviceData, training: Training,
           strategy: str, per_device: int) -> None:
    # With one process, ddp is the shard strategy; and the record says so.
    strategy = "ddp" if strategy == "ddp" and cluster.world > 1 else "shard"
    share = jobs if strategy == "ddp" else jobs[cluster.rank::cluster.world]
    progress = Progress(ws, jobs, cluster, training.epochs, sum(not ws.part(j).exists() for j in share))
    trainer = Trainer(ws, cluster, data, training, strategy, progress)
    try:
        if strategy == "ddp":
            train_ddp(trainer, jobs)
        else:
            train_shard(trainer, jobs, per_device)
    finally:
        progress.close()


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def add_command(subparsers) -> None:
    p = subparsers.add_parser(
        "dataset", help="train every architecture of a recipe into a Parquet dataset (resumable, torchrun-ready)",
        description="Train every (architecture, seed) of RECIPE and merge the results into DIR. "
                    "Run it again with the same arguments to resume. Under torchrun, one process per device.")
    p.add_argument("recipe", help="recipe YAML file, e.g. recipes/naap440.yaml")
    p.add_argument("--out", type=Path, metavar="DIR", help="the dataset directory to write or resume")
    p.add_argument("--strategy", choices=STRATEGIES,
                   help="shard: whole networks per rank; ddp: every network on all ranks (default: the recipe's)")
    p.add_argument("--trainings-per-device", type=_positive_int, metavar="N",
                   help="concurrent trainings per device with the shard strategy "
                        "(default: the recipe's on a GPU, 1 on the CPU)")
    p.add_argument("--limit", type=_positive_int, metavar="N", help="only the first N architectures (for tries)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="auto: cuda:LOCAL_RANK when there is a GPU, else the CPU")
    p.add_argument("--estimate", action="store_true",
                   help="print what the run will cost (on a CPU: timed, in hours), and exit")
    p.add_argument("--max-hours", type=float, metavar="H",
                   help="on a CPU, time the run first and refuse to start it if it is estimated above H hours")
    p.set_defaults(run=run_dataset)
