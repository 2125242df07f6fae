"""How a rank trains the jobs it claims (naap.rebuild.claims), and writes their parts.

- shard (the default): whole networks, `trainings_per_device` at a time, each in a thread
  of its own with its own CUDA stream on this rank's device. On the CPU every training has
  one intra-op thread (naap.rebuild.settings), so by default a process trains as many networks at
  once as it has cores (divided among the processes of its node): the numbers do not
  depend on how the run was launched.
- cohorts (runner.engine cohort, cohort-graphs, with the shard strategy): each thread trains
  claimed cohorts of runner.cohort_size jobs of one seed in lockstep (naap.rebuild.cohort), with the
  numbers each job would have alone; each member's part is written as soon as it is done.
- ddp: every rank trains each network together (DistributedDataParallel); rank 0 claims
  the jobs and writes the parts.

Trainings always run in worker threads, so that the main thread is free to take a signal.
A failure in one training, a signal, or another rank's failure sets the shared `stop`
event: every training stops at its next epoch, with a checkpoint of its last one.
"""
from __future__ import annotations

import os
import socket
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

import torch

from naap._signals import signals_handled
from naap.bench.space import scheme_hash
from naap.errors import NaapError
from naap.rebuild import provenance
from naap.rebuild.claims import Claims
from naap.rebuild.cohort import train_cohort
from naap.rebuild.cohort_size import CohortSize
from naap.rebuild.cluster import Cluster
from naap.rebuild.datasets import DeviceData
from naap.rebuild.jobs import Job
from naap.rebuild.progress import Progress
from naap.rebuild.proxies import BATCH_SIZE as PROXY_IMAGES
from naap.rebuild.proxies import compute_proxies
from naap.rebuild.recipe import Recipe
from naap.rebuild.train import EpochMetrics, RunResult, Stopped, train
from naap.rebuild.workspace import Workspace

# How often the main thread wakes while the workers train (to take signals promptly).
WAKE_SECONDS = 0.2


def default_trainings_per_device(cluster: Cluster, recipe: Recipe, engine: str = "eager") -> int:
    """On a GPU, the recipe's runner.trainings_per_device (1 for cohort-graphs: a capture stalls
    the device); on the CPU, this process's share of the cores it may run on (one single-threaded
    training, or cohort, per core)."""
    if cluster.device.type == "cuda":
        return 1 if engine == "cohort-graphs" else recipe.runner.trainings_per_device
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // cluster.local_world)


@dataclass
class Trainer:
    """Trains one claimed job at a time and writes its part."""

    ws: Workspace
    cluster: Cluster
    recipe: Recipe
    data: DeviceData
    strategy: str
    trainings_per_device: int
    progress: Progress
    stop: threading.Event
    launch: dict  # naap.rebuild.provenance.launch_record
    engine: str = "eager"  # runner.engine

    def run(self, job: Job) -> None:
        new_epochs = 0
        writes = self.cluster.rank == 0 or self.strategy == "shard"  # under ddp, rank 0 speaks for all

        def on_epoch(metrics: EpochMetrics) -> None:
            nonlocal new_epochs
            new_epochs += 1
            if writes:
                self.progress.epoch()

        started = time.time()
        proxies = self.proxies(job) if writes else None
        try:
            result = train(job.scheme, self.data, self.recipe.training, job.seed, device=self.cluster.device,
                           checkpoint=self.ws.checkpoint(job), ddp=self.strategy == "ddp",
                           on_epoch=on_epoch, stop=self.stop)
        except torch.cuda.OutOfMemoryError:
            raise NaapError(f"{self.recipe.path}: runner.trainings_per_device: {job.name} ran out of memory on "
                            f"{self.cluster.device} with {self.trainings_per_device} training(s) at once; "
                            f"ask for fewer (--trainings-per-device)") from None
        if writes:
            self._write(job, result, started, new_epochs, proxies)

    def run_cohort(self, jobs: list[Job]) -> None:
        """Train `jobs` (one seed) in lockstep with naap.rebuild.cohort; each member's part is written
        as soon as it has its last epoch or diverges, while the others train on."""
        new_epochs = [0] * len(jobs)
        started = time.time()
        proxies = [self.proxies(job) for job in jobs]

        def on_epoch(i: int, metrics: EpochMetrics) -> None:
            new_epochs[i] += 1
            self.progress.epoch()

        def on_finished(i: int, result: RunResult) -> None:
            self._write(jobs[i], result, started, new_epochs[i], proxies[i])

        try:
            train_cohort([job.scheme for job in jobs], self.data, self.recipe.training, jobs[0].seed,
                         device=self.cluster.device, checkpoints=[self.ws.checkpoint(job) for job in jobs],
                         engine=self.engine, on_epoch=on_epoch, on_finished=on_finished, stop=self.stop)
        except torch.cuda.OutOfMemoryError:
            raise NaapError(f"{self.recipe.path}: runner.cohort_size: a cohort of {len(jobs)} ({jobs[0].name}, ...) "
                            f"ran out of memory on {self.cluster.device} with {self.trainings_per_device} cohort(s) "
                            f"at once; ask for smaller ones (--cohort-size)") from None

    def _write(self, job: Job, result: RunResult, started: float, new_epochs: int, proxies: dict | None) -> None:
        """A finished job's part, with its record, and its line of progress."""
        finished = time.time()
        record = provenance.run_record(
            self.launch, arch_id=job.arch_id, seed=job.seed, arch_hash=scheme_hash(job.scheme),
            diverged=result.diverged, epochs=len(result.epochs), resumed_epochs=len(result.epochs) - new_epochs,
            started=started, finished=finished, proxies=proxies)
        self.ws.write_part(job, result.epochs, record)
        self.progress.finished(job, result.epochs, result.diverged, finished - started, new_epochs)

    def proxies(self, job: Job) -> dict | None:
        """The zero-cost proxies of the network this job starts from (naap.rebuild.proxies), on the first
        PROXY_IMAGES of the recipe's training images: for the jobs of the main seed
        (Training.main_seed), the network that stands for its architecture."""
        if job.seed != self.recipe.training.main_seed:
            return None
        d = self.data
        values = compute_proxies(job.scheme, d.train_x[:PROXY_IMAGES].cpu(), d.train_y[:PROXY_IMAGES].cpu(),
                                 in_channels=d.in_channels, input_size=d.input_size, num_classes=d.num_classes,
                                 batch_size=PROXY_IMAGES, seed=job.seed)
        return {"images": PROXY_IMAGES, "values": values}


def launch_record(cluster: Cluster, data: DeviceData, strategy: str, shard: str | None,
                  trainings_per_device: int, flock_claims: bool, settings: dict, engine: str = "eager",
                  cohort_size: CohortSize | None = None) -> dict:
    """What every part this process trains records about the launch (cohort_size: None for eager)."""
    hardware = settings["hardware"]  # on the CPU, the processor's model is named too
    name = hardware["device"] if cluster.device.type == "cuda" else f"{hardware['device']} ({hardware['cpu']})"
    return provenance.launch_record(
        device=name, host=socket.gethostname(), rank=cluster.rank, world_size=cluster.world, strategy=strategy,
        shard=shard, trainings_per_device=trainings_per_device, threads_per_training=torch.get_num_threads(),
        flock_claims=flock_claims, settings=settings, engine=engine,
        cohort_size=cohort_size.k if cohort_size else None, cohort_size_rule=cohort_size.rule if cohort_size else None,
        cohort_size_measured=cohort_size.detail if cohort_size else None,
        dataset={"name": data.name, "in_channels": data.in_channels, "input_size": data.input_size,
                 "num_classes": data.num_classes, "train_size": len(data.train_y), "test_size": len(data.test_y)})


def train_shard(trainer: Trainer, claims: Claims) -> None:
    """`trainings_per_device` threads train the claimed jobs until none is left."""
    def work() -> None:
        for job in claims.jobs():
            trainer.run(job)

    in_threads(work, trainer.trainings_per_device, trainer.cluster.device, trainer.stop)


def train_cohorts(trainer: Trainer, claims: Claims, size: int) -> None:
    """`trainings_per_device` threads each train claimed cohorts of up to `size` jobs of one seed
    (runner.engine cohort or cohort-graphs) until none is left."""
    def work() -> None:
        for jobs in claims.cohorts(size):
            trainer.run_cohort(jobs)

    in_threads(work, trainer.trainings_per_device, trainer.cluster.device, trainer.stop)


def train_ddp(trainer: Trainer, claims: Claims) -> None:
    """Every rank trains each job together: rank 0 claims the next one and tells the others."""
    cluster = trainer.cluster
    jobs = claims.jobs() if cluster.rank == 0 else iter(())

    def work() -> None:
        while (job := cluster.broadcast(next(jobs, None))) is not None:
            trainer.run(job)

    in_threads(work, 1, cluster.device, trainer.stop)


def in_threads(work: Callable[[], None], count: int, device: torch.device, stop: threading.Event) -> None:
    """Run `work` in `count` threads on `device` until each returns. The first exception of a
    thread sets `stop` (the others stop at their next epoch) and is raised here, once all have
    ended; so is a signal's KeyboardInterrupt in the main thread, once every thread has saved
    its last epoch. On CUDA, the device's work so far (the data, copied on the default stream)
    is finished before the threads start, each on a stream of its own: every strategy runs here."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    errors: list[BaseException] = []
    ended = [threading.Event() for _ in range(count)]

    def guarded(done: threading.Event) -> None:
        try:
            with on_device(device):
                work()
        except Stopped:
            pass
        except BaseException as exc:
            errors.append(exc)
            stop.set()
        finally:
            done.set()

    for i, done in enumerate(ended):
        threading.Thread(target=guarded, args=(done,), name=f"training-{i}", daemon=True).start()
    try:
        _wait(ended)
    except KeyboardInterrupt:
        stop.set()
        with _further_signals_noted():
            _wait(ended)
        raise
    if errors:
        raise errors[0]


@contextmanager
def on_device(device: torch.device) -> Iterator[None]:
    """A training thread's device: on CUDA, made current for this thread (else its first CUDA call
    opens a context on GPU 0), with a stream of its own so that the threads' kernels overlap."""
    if device.type != "cuda":
        yield
        return
    torch.cuda.set_device(device)
    with torch.cuda.stream(torch.cuda.Stream(device)):
        yield


@contextmanager
def _further_signals_noted() -> Iterator[None]:
    """While the trainings finish their epoch after a signal, another signal is noted, not
    raised: it would end the process with threads inside PyTorch, and Python aborts then."""
    def note(signum, frame):
        print("naap: stopping at the end of the current epochs, with their checkpoints; "
              "kill -9 stops at once (the earlier checkpoints are kept)", file=sys.stderr, flush=True)
    with signals_handled(note):
        yield


def _wait(events: list[threading.Event]) -> None:
    """Wait for every event, waking now and then so that a signal is taken promptly. (Not
    Thread.join: in Python 3.11 a join interrupted by a signal can mark a running thread ended.)"""
    for event in events:
        while not event.wait(WAKE_SECONDS):
            pass
