"""K trainings of one seed in lockstep (runner.engine: cohort, cohort-graphs), each bit-identical to train().

Every architecture trained under one seed sees the same batches in the same order (epoch_order is
a function of (seed, epoch) only), so a cohort of K such trainings shares one index buffer and one
gather of each batch. Each member keeps its own network, optimizer, losses and counts, and no
reduction is shared between members: each computes exactly the operations train() computes, in the
same order, on the same values. Shared: the epoch's order (one copy to the device), each batch's
gather, the optimizer step (one functional SGD call over every member's parameters: elementwise, so
identical to K separate steps) and the epoch's host read (one (K, B+3) tensor).

Members whose next epoch differs (a resume) catch up: each round trains the members that have
finished the fewest epochs. A member whose epoch exploded drops out with the epochs finished
before, as train() does. Checkpoints have train()'s format; their fingerprint names the engine.
"""
from __future__ import annotations

import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.sgd import sgd as functional_sgd

from naap.bench.space import Scheme
from naap.errors import NaapError
from naap.rebuild import cohort_graphs, settings
from naap.rebuild.cuda_memory import AllocationWatch
from naap.rebuild import train as T
from naap.rebuild.datasets import DeviceData
from naap.rebuild.recipe import ENGINES as RUNNER_ENGINES
from naap.rebuild.recipe import Training

ENGINES = tuple(engine for engine in RUNNER_ENGINES if engine != "eager")  # this module's


@dataclass
class Member:
    """One training of the cohort: index is its place in train_cohort's `schemes`."""

    index: int
    model: nn.Module
    optimizer: torch.optim.SGD
    fingerprint: dict
    checkpoint: Path | None
    epochs: list[T.EpochMetrics] = field(default_factory=list)
    diverged: bool = False
    written: tuple[int, bool] = (0, False)
    written_at: float = 0.0

    def finished(self, training: Training) -> bool:
        return self.diverged or len(self.epochs) >= training.epochs

    def save(self) -> None:
        """Write the checkpoint if anything changed since the last write (as train() does)."""
        if self.checkpoint is not None and self.written != (len(self.epochs), self.diverged):
            T._save_checkpoint(self.checkpoint, self.fingerprint, self.model, self.optimizer, self.epochs,
                               self.diverged)
        self.written, self.written_at = (len(self.epochs), self.diverged), time.monotonic()


def train_cohort(schemes: Sequence[Scheme], data: DeviceData, training: Training, seed: int, *,
                 device: torch.device | str | None = None, checkpoints: Sequence[Path | None] | None = None,
                 engine: str = "cohort", on_epoch: Callable[[int, T.EpochMetrics], None] | None = None,
                 on_finished: Callable[[int, T.RunResult], None] | None = None,
                 stop: threading.Event | None = None, checkpoint_every: int = settings.CHECKPOINT_EVERY_EPOCHS,
                 checkpoint_seconds: float = settings.CHECKPOINT_EVERY_SECONDS) -> list[T.RunResult]:
    """train(scheme, data, training, seed) for every scheme, in lockstep: one RunResult per scheme, in order.

    checkpoints: one path (or None) per scheme, written and resumed as train() does.
    engine: "cohort" (eager steps) or "cohort-graphs" (the step from static device buffers, captured
    as CUDA graphs on CUDA and run eagerly elsewhere: naap.rebuild.cohort_graphs).
    on_epoch(i, metrics): after member i's epoch (after its checkpoint, if one is written).
    on_finished(i, result): once member i has its last epoch or has diverged, while the others go on.
    stop: looked at before every round; once set, every member's finished epochs are checkpointed
    and train.Stopped is raised with the fewest epochs a member has.
    """
    if engine not in ENGINES:
        raise NaapError(f"engine: {engine!r} is not one of {', '.join(ENGINES)}")
    device = torch.device(device) if device is not None else data.train_x.device
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    settings.apply(device)
    checkpoints = list(checkpoints) if checkpoints is not None else [None] * len(schemes)
    with torch.cuda.device(device) if device.type == "cuda" else nullcontext():
        members = [_member(i, s, data, training, seed, device, c, engine)
                   for i, (s, c) in enumerate(zip(schemes, checkpoints))]
        for m in members:
            if m.finished(training) and on_finished is not None:
                on_finished(m.index, _result(m, seed))
        graphs = cohort_graphs.GraphEngine(data, training, device) if engine == "cohort-graphs" else None
        allocations = AllocationWatch(device)
        while not all(m.finished(training) for m in members):
            if stop is not None and stop.is_set():
                for m in members:
                    m.save()
                raise T.Stopped(min(len(m.epochs) for m in members))
            todo = [m for m in members if not m.finished(training)]
            behind = min(len(m.epochs) for m in todo)
            cohort = [m for m in todo if len(m.epochs) == behind]  # catch-up: the laggards step first
            results = _cohort_epoch(cohort, data, training, seed, behind + 1, device, graphs)
            allocations.check()  # before the epoch is kept: a hidden cuDNN fallback may have changed it
            for m, metrics in zip(cohort, results):
                m.diverged = metrics is None
                if not m.diverged:
                    m.epochs.append(metrics)
                if (m.finished(training) or len(m.epochs) - m.written[0] >= checkpoint_every
                        or time.monotonic() - m.written_at >= checkpoint_seconds):
                    m.save()
                if on_epoch is not None and not m.diverged:
                    on_epoch(m.index, metrics)
                if m.finished(training) and on_finished is not None:
                    on_finished(m.index, _result(m, seed))
    return [_result(m, seed) for m in members]


def _result(m: Member, seed: int) -> T.RunResult:
    return T.RunResult(seed=seed, epochs=list(m.epochs), diverged=m.diverged)


def _member(index: int, scheme: Scheme, data: DeviceData, training: Training, seed: int, device: torch.device,
            checkpoint: Path | None, engine: str) -> Member:
    """Built as train() builds its network and optimizer, from its checkpoint when there is one."""
    model, optimizer, fingerprint = T.new_training(scheme, data, training, seed, device, 1, engine)
    member = Member(index, model, optimizer, fingerprint, checkpoint, written_at=time.monotonic())
    saved = T._read_checkpoint(checkpoint, fingerprint)
    if saved is not None:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        member.epochs = [T.EpochMetrics(**e) for e in saved["epochs"]]
        member.diverged = saved["diverged"]
    member.written = (len(member.epochs), member.diverged)
    return member


def _cohort_epoch(cohort: list[Member], data: DeviceData, training: Training, seed: int, epoch: int,
                  device: torch.device, graphs: cohort_graphs.GraphEngine | None) -> list[T.EpochMetrics | None]:
    """One epoch of every member (same lr, same batches), then each member's test pass; one host read."""
    start = time.perf_counter()
    lr = training.lr_at(epoch)
    for m in cohort:
        for group in m.optimizer.param_groups:
            group["lr"] = lr
        m.model.train()
    step = lambda x, y, streams=None: cohort_step(cohort, x, y, lr, training, streams)
    if graphs is None:
        losses, correct = _eager_epoch(data, training, seed, epoch, device, len(cohort), step)
    else:
        losses, correct = graphs.epoch(tuple(m.index for m in cohort), seed, epoch, lr, step)
    test = torch.stack([torch.stack(T._evaluate(m.model, data, 0, 1, device, training.batch_size)).float()
                        for m in cohort])
    host = T.to_host(torch.cat([losses, correct.float()[:, None], test], dim=1))  # the epoch's one host read
    seconds = time.perf_counter() - start
    return [T.epoch_metrics(row, epoch, lr, len(data.train_y), len(data.test_y), seconds) for row in host]


def _eager_epoch(data: DeviceData, training: Training, seed: int, epoch: int, device: torch.device, k: int,
                 step) -> tuple[torch.Tensor, torch.Tensor]:
    """The cohort's training steps of one epoch, each launched from the host: (K, B) losses, (K,) correct."""
    batches = T.epoch_order(seed, epoch, len(data.train_y)).to(device).split(training.batch_size)
    losses = torch.zeros(k, len(batches), device=device)  # member x batch, as train()'s batch_losses
    correct = torch.zeros(k, dtype=torch.int64, device=device)
    for i, batch in enumerate(batches):
        x, y = data.train_x[batch].contiguous(memory_format=settings.MEMORY_FORMAT), data.train_y[batch]
        batch_losses, hits = step(x, y)
        losses[:, i] = batch_losses
        correct += hits
    return losses, correct


def cohort_step(cohort: list[Member], x: torch.Tensor, y: torch.Tensor, lr: float, training: Training,
                streams: list | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step of every member on the batch (x, y): the members' losses (K,) and correct
    counts (K,). Forward, loss and backward per member (on CUDA side streams when given, joined
    before the step), then one SGD call for all."""
    losses, hits = [], []
    origin = torch.cuda.current_stream() if streams else None
    for j, m in enumerate(cohort):
        stream = streams[j % len(streams)] if streams else None
        if stream is not None:
            stream.wait_stream(origin)
        with torch.cuda.stream(stream) if stream is not None else nullcontext():
            logits = m.model(x)
            loss = F.cross_entropy(logits, y)
            m.optimizer.zero_grad(set_to_none=True)
            loss.backward()  # train(): (loss * 1.0).backward(), the same gradients bit for bit
            losses.append(loss.detach())
            hits.append((logits.argmax(1) == y).sum())
    for stream in streams or ():
        origin.wait_stream(stream)
    sgd_step_all(cohort, lr, training)
    return torch.stack(losses), torch.stack(hits)


@torch.no_grad()
def sgd_step_all(cohort: list[Member], lr: float, training: Training) -> None:
    """torch.optim.SGD.step of every member in one functional call (torch.optim.sgd.sgd): elementwise,
    so each parameter gets the update its own optimizer would give it. Momentum buffers the call
    creates (first step) go back into each member's optimizer state, as SGD.step does."""
    params, grads, bufs, owners = [], [], [], []
    for m in cohort:
        for p in m.optimizer.param_groups[0]["params"]:
            if p.grad is None:
                continue
            params.append(p)
            grads.append(p.grad)
            bufs.append(m.optimizer.state[p].get("momentum_buffer"))
            owners.append(m.optimizer)
    functional_sgd(params, grads, bufs, weight_decay=training.weight_decay, momentum=training.momentum,
                   lr=lr, dampening=0.0, nesterov=training.nesterov, maximize=False)
    if training.momentum != 0:
        for p, buf, optimizer in zip(params, bufs, owners):
            optimizer.state[p]["momentum_buffer"] = buf
