"""Train one architecture with one seed: the fixed recipe of docs/benchmark.md (section Training), as the paper's code ran it.

The data stay on the device (naap.rebuild.datasets). Each epoch visits the training images in the
order the paper's DataLoader drew (epoch_order: a pure function of the seed and the epoch,
on a private CPU generator), so every architecture trained under one seed sees the same
batches on any device, and a resumed run the same ones as an uninterrupted run. Per-batch
losses and correct counts stay in device tensors and are read once per epoch: one host
synchronisation per epoch, not per step. Every device and numeric setting is in naap.rebuild.settings.
"""
from __future__ import annotations

import dataclasses
import random
import threading
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from naap._io import atomic_write, open_regular
from naap.bench.network import GLOBAL_RNG_LOCK, build_network
from naap.bench.space import Scheme, scheme_to_dicts
from naap.bench.tables import check_values
from naap.errors import NaapError
from naap.rebuild import settings
from naap.rebuild.cuda_memory import AllocationWatch
from naap.rebuild.datasets import DeviceData
from naap.rebuild.recipe import Training


@dataclass
class EpochMetrics:
    """One finished epoch: epoch is 1-based; losses are over the epoch's per-batch mean losses
    (taken before each step); accuracies are fractions; epoch_seconds includes the test pass."""

    epoch: int
    lr: float
    train_loss_mean: float
    train_loss_median: float
    test_accuracy: float
    test_loss: float
    train_accuracy: float
    epoch_seconds: float


@dataclass
class RunResult:
    seed: int
    epochs: list[EpochMetrics]
    diverged: bool


class Stopped(Exception):
    """train() was asked to stop (its `stop` event was set): `epochs` epochs are finished and in
    the checkpoint, from which a later call goes on."""

    def __init__(self, epochs: int):
        super().__init__(f"stopped after epoch {epochs}; the checkpoint keeps it")
        self.epochs = epochs


def seed_everything(seed: int) -> None:
    """Seed PyTorch (every device), NumPy's global RNG and Python's random."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def epoch_order(seed: int, epoch: int, n: int) -> torch.Tensor:
    """The order of the n training images in 1-based `epoch`: the one the paper's DataLoader drew.

    The paper's loop seeded the global generator with `seed` right before building its loaders.
    Then every epoch, iter(trainloader) (shuffle=True, num_workers=1) drew an int64 base seed for
    its worker, its RandomSampler drew an int64 that seeds a fresh generator permuting the images,
    and iter(testloader) drew one more base seed: three draws per epoch, the second one seeding
    the permutation (torch/utils/data/dataloader.py, _BaseDataLoaderIter.__init__; sampler.py,
    RandomSampler.__iter__). The same draws, on a generator of its own.
    """
    draws = torch.Generator().manual_seed(seed)
    for _ in range(3 * (epoch - 1) + 1):
        _draw_int64(draws)
    return torch.randperm(n, generator=torch.Generator().manual_seed(_draw_int64(draws)))


def _draw_int64(generator: torch.Generator) -> int:
    return int(torch.empty((), dtype=torch.int64).random_(generator=generator).item())


def exploded(batch_losses: np.ndarray) -> bool:
    """Whether an epoch's batch losses show a diverged run: one is NaN, infinite or above
    settings.EXPLODED_LOSS (float32 may hold 1e24 without overflowing: rounding alone must not decide)."""
    return not np.isfinite(batch_losses).all() or bool((batch_losses > settings.EXPLODED_LOSS).any())


def with_sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """On CUDA, BatchNorm as SyncBatchNorm (the whole batch's statistics over all ranks);
    elsewhere PyTorch has none and the model is returned as it is."""
    return nn.SyncBatchNorm.convert_sync_batchnorm(model) if device.type == "cuda" else model


def train(scheme: Scheme, data: DeviceData, training: Training, seed: int, *,
          device: torch.device | str | None = None, checkpoint: Path | None = None, ddp: bool = False,
          on_epoch: Callable[[EpochMetrics], None] | None = None, stop: threading.Event | None = None,
          checkpoint_every: int = settings.CHECKPOINT_EVERY_EPOCHS,
          checkpoint_seconds: float = settings.CHECKPOINT_EVERY_SECONDS) -> RunResult:
    """Train `scheme` on `data` for training.epochs epochs; return the per-epoch metrics.

    The numbers are those of the paper's training loop (SGD steps, data order, NCHW) under
    naap.rebuild.settings, which this applies to the process if nothing has yet.

    checkpoint: the model, optimizer and metrics are written there atomically every
    `checkpoint_every` epochs, or sooner once `checkpoint_seconds` have passed since the last
    write, when the run ends and when it is stopped. A run started with an existing checkpoint
    resumes from it and ends with the same numbers as an uninterrupted run (epoch_seconds
    aside): the data order is a function of (seed, epoch). A checkpoint of another scheme,
    seed, training, data, number of ranks or settings is refused.

    on_epoch: called after each epoch (after its checkpoint, if one is written).
    stop: looked at before every epoch; once it is set, the finished epochs are checkpointed and
    Stopped is raised (under DDP: when any rank's is set, on every rank). A run whose last epoch
    is done returns as usual.

    ddp: torch.distributed is initialised by the caller; every rank trains the same
    network with DistributedDataParallel, each taking its slice of every recipe batch.
    Gradients are those of the whole batch's mean loss and the reported losses are
    those of the whole batch. On CUDA, BatchNorm is converted to SyncBatchNorm, so it
    normalises with the whole batch's statistics, as one device would (buffers are then
    equal on every rank and DDP does not broadcast them). On the CPU (gloo) PyTorch has no
    SyncBatchNorm: BatchNorm normalises each rank's slice with that slice's statistics, and
    the running statistics used for the test pass are rank 0's, so the numbers differ
    (slightly) from a single-process run and depend on the number of ranks. Only rank 0
    writes the checkpoint; it reads it on resume and broadcasts it to the other ranks.

    A batch loss that is NaN, infinite or above settings.EXPLODED_LOSS ends the run:
    diverged=True, with the epochs finished before.
    """
    device = torch.device(device) if device is not None else data.train_x.device
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    settings.apply(device)
    # torch.cuda.set_device holds per thread: a training thread names its device itself.
    with torch.cuda.device(device) if device.type == "cuda" else nullcontext():
        return _train(scheme, data, training, seed, device, checkpoint, ddp, on_epoch, stop,
                      checkpoint_every, checkpoint_seconds)


def _train(scheme, data: DeviceData, training: Training, seed: int, device: torch.device, checkpoint: Path | None,
           ddp: bool, on_epoch, stop: threading.Event | None, checkpoint_every: int,
           checkpoint_seconds: float) -> RunResult:
    rank, world = (dist.get_rank(), dist.get_world_size()) if ddp else (0, 1)
    smallest_batch = training.smallest_batch(len(data.train_y))
    if smallest_batch < world:
        raise NaapError(f"training.batch_size: a batch of {smallest_batch} images cannot be split over {world} ranks")
    model, optimizer, fingerprint = new_training(scheme, data, training, seed, device, world, "eager")
    epochs: list[EpochMetrics] = []
    diverged = False
    saved = _load_checkpoint(checkpoint, fingerprint, rank, ddp, device)
    if saved is not None:
        try:
            model.load_state_dict(saved["model"])
            optimizer.load_state_dict(saved["optimizer"])
        except (RuntimeError, KeyError, ValueError, TypeError, IndexError) as exc:
            raise NaapError(f"{checkpoint}: checkpoint fields 'model', 'optimizer': do not fit the network "
                            f"({type(exc).__name__}); delete it to start over") from None
        epochs = [EpochMetrics(**e) for e in saved["epochs"]]
        diverged = saved["diverged"]
    if ddp:
        synced = device.type == "cuda"
        model = nn.parallel.DistributedDataParallel(
            with_sync_batchnorm(model, device), device_ids=[device.index] if synced else None,
            broadcast_buffers=not synced)

    written, written_at = (len(epochs), diverged), time.monotonic()

    def save() -> None:
        nonlocal written, written_at
        if checkpoint is not None and rank == 0 and written != (len(epochs), diverged):
            _save_checkpoint(checkpoint, fingerprint, model, optimizer, epochs, diverged)
        written, written_at = (len(epochs), diverged), time.monotonic()

    finished = lambda: diverged or len(epochs) >= training.epochs
    allocations = AllocationWatch(device)
    while not finished():
        if _stop_requested(stop, ddp, device):
            save()
            raise Stopped(len(epochs))
        metrics = _train_epoch(model, optimizer, data, training, seed, len(epochs) + 1, device, rank, world, ddp)
        allocations.check()  # before the epoch is kept: a hidden cuDNN fallback may have changed it
        diverged = metrics is None
        if not diverged:
            epochs.append(metrics)
        if (finished() or len(epochs) - written[0] >= checkpoint_every
                or time.monotonic() - written_at >= checkpoint_seconds):
            save()
        if on_epoch is not None and not diverged:
            on_epoch(metrics)
    return RunResult(seed=seed, epochs=epochs, diverged=diverged)


def new_training(scheme: Scheme, data: DeviceData, training: Training, seed: int, device: torch.device,
                 ranks: int, engine: str) -> tuple[nn.Module, torch.optim.SGD, dict]:
    """A training's network (seeded), optimizer and checkpoint fingerprint, as every engine starts it
    (naap.rebuild.cohort builds its members with this too). The fingerprint names the engine: a
    checkpoint is resumed only by the engine that wrote it."""
    with GLOBAL_RNG_LOCK:
        seed_everything(seed)
        model = build_network(scheme, data.in_channels, data.num_classes)
    model = model.to(device, memory_format=settings.MEMORY_FORMAT)
    optimizer = torch.optim.SGD(model.parameters(), lr=training.lr, momentum=training.momentum,
                                weight_decay=training.weight_decay, nesterov=training.nesterov)
    numeric = {key: value for key, value in settings.describe(device).items() if key != "hardware"}
    fingerprint = {"scheme": scheme_to_dicts(scheme), "seed": seed, "training": asdict(training) | {"seeds": None, "extra_seeds": None},
                   "data": [data.name, len(data.train_y), len(data.test_y)], "ranks": ranks, "settings": numeric,
                   "engine": engine}
    return model, optimizer, fingerprint


def _stop_requested(stop: threading.Event | None, ddp: bool, device: torch.device) -> bool:
    """Whether `stop` is set here or, under DDP, on any rank (every rank gets the same answer)."""
    requested = stop is not None and stop.is_set()
    if not ddp:
        return requested
    flag = torch.tensor([float(requested)], device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())


def _train_epoch(model, optimizer, data: DeviceData, training: Training, seed: int, epoch: int,
                 device: torch.device, rank: int, world: int, ddp: bool) -> EpochMetrics | None:
    """One epoch of training and the test pass; None if the run diverged in it (see exploded)."""
    start = time.perf_counter()
    lr = training.lr_at(epoch)
    for group in optimizer.param_groups:
        group["lr"] = lr
    n = len(data.train_y)
    batches = epoch_order(seed, epoch, n).to(device).split(training.batch_size)
    batch_losses = torch.zeros(len(batches), device=device)
    train_correct = torch.zeros((), dtype=torch.int64, device=device)
    model.train()
    for i, batch in enumerate(batches):
        index = batch.tensor_split(world)[rank]
        x, y = data.train_x[index].contiguous(memory_format=settings.MEMORY_FORMAT), data.train_y[index]
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        # This rank's share of the recipe batch (1 on one process). DDP averages gradients over
        # ranks, so scaling by share x world gives the gradient of the whole batch's mean loss.
        share = len(index) / len(batch)
        optimizer.zero_grad(set_to_none=True)
        (loss * (share * world)).backward()
        optimizer.step()
        batch_losses[i] = loss.detach() * share
        train_correct += (logits.argmax(1) == y).sum()

    net = model.module if ddp else model
    if ddp and world > 1 and not any(isinstance(m, nn.SyncBatchNorm) for m in net.modules()):
        for buffer in net.buffers():  # per-rank BatchNorm statistics: every rank tests with rank 0's
            dist.broadcast(buffer, 0)
    test_loss, test_correct = _evaluate(net, data, rank, world, device, training.batch_size)
    stats = torch.cat([batch_losses, torch.stack([train_correct.float(), test_loss, test_correct.float()])])
    if ddp:
        dist.all_reduce(stats)
    return epoch_metrics(to_host(stats), epoch, lr, n, len(data.test_y), time.perf_counter() - start)


def to_host(stats: torch.Tensor) -> np.ndarray:
    """The epoch's one host synchronisation (every engine reads through it; `make bench-launches`
    counts its calls)."""
    return stats.double().cpu().numpy()


def epoch_metrics(stats: np.ndarray, epoch: int, lr: float, train_size: int, test_size: int,
                  seconds: float) -> EpochMetrics | None:
    """An epoch's metrics from its host row [batch losses..., train correct, test loss, test correct];
    None if the run diverged in it (see exploded)."""
    losses = stats[:-3]
    if exploded(losses):
        return None
    return EpochMetrics(epoch=epoch, lr=lr, train_loss_mean=float(np.mean(losses)),
                        train_loss_median=float(np.median(losses)),
                        test_accuracy=float(stats[-1] / test_size), test_loss=float(stats[-2] / test_size),
                        train_accuracy=float(stats[-3] / train_size), epoch_seconds=seconds)


@torch.inference_mode()
def _evaluate(net: nn.Module, data: DeviceData, rank: int, world: int, device: torch.device,
              batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed loss and correct count over this rank's share of the test set, in eval mode, in
    batches of `batch_size`: the paper's test loader used the training batch size, and cuDNN
    picks its kernels per shape."""
    net.eval()
    loss = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    share = torch.arange(len(data.test_y), device=device).tensor_split(world)[rank]
    for index in share.split(batch_size):
        logits = net(data.test_x[index].contiguous(memory_format=settings.MEMORY_FORMAT))
        loss += F.cross_entropy(logits, data.test_y[index], reduction="sum")
        correct += (logits.argmax(1) == data.test_y[index]).sum()
    return loss, correct


def _save_checkpoint(path: Path, fingerprint: dict, model, optimizer, epochs, diverged: bool) -> None:
    net = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
    state = {"fingerprint": fingerprint, "model": net.state_dict(), "optimizer": optimizer.state_dict(),
             "epochs": [asdict(e) for e in epochs], "diverged": diverged}
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def _load_checkpoint(path: Path | None, fingerprint: dict, rank: int, ddp: bool, device) -> dict | None:
    """Rank 0 reads the checkpoint; under DDP it sends the state, or the error, to every rank."""
    state = None
    if rank == 0:
        try:
            state = _read_checkpoint(path, fingerprint)
        except NaapError as error:
            state = error
    if ddp:
        box = [state]
        dist.broadcast_object_list(box, src=0, device=device)
        state = box[0]
    if isinstance(state, NaapError):
        raise state
    return state


def _read_checkpoint(path: Path | None, fingerprint: dict) -> dict | None:
    if path is None or not Path(path).exists():
        return None
    try:
        with open_regular(path) as f:
            state = torch.load(f, map_location="cpu", weights_only=True)
    except NaapError:
        raise
    except Exception as exc:  # torch.load raises many types for a damaged file
        raise NaapError(f"{path}: unreadable checkpoint ({type(exc).__name__}); delete it to start over") from None
    if not isinstance(state, dict) or state.get("fingerprint") != fingerprint:
        raise NaapError(f"{path}: checkpoint of another run (scheme, seed, training, data, ranks, settings or "
                        f"engine differ); "
                        f"delete it to start over")
    _check_saved_epochs(path, state, fingerprint["training"]["epochs"])
    return state


def _check_saved_epochs(path: Path, state: dict, total: int) -> None:
    """A checkpoint's metrics as a part's rows are checked: each epoch the fields of EpochMetrics,
    numbers, epochs 1..n with n at most the recipe's, values in the tables' ranges."""
    fields = [field.name for field in dataclasses.fields(EpochMetrics)]
    saved = state.get("epochs")
    number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
    if not (isinstance(saved, list) and len(saved) <= total and isinstance(state.get("diverged"), bool)
            and isinstance(state.get("model"), dict) and isinstance(state.get("optimizer"), dict)
            and all(isinstance(e, dict) and set(e) == set(fields) and all(map(number, e.values())) for e in saved)):
        raise NaapError(f"{path}: checkpoint fields 'epochs', 'diverged', 'model', 'optimizer': not what naap saves "
                        f"(wrong types, or more than {total} epochs); delete it to start over")
    rows = pd.DataFrame(saved, columns=fields)
    if rows["epoch"].tolist() != list(range(1, len(rows) + 1)):
        raise NaapError(f"{path}: checkpoint field 'epochs': epochs {rows['epoch'].tolist()[:5]}..., "
                        f"not 1, 2, ..., n; delete it to start over")
    check_values(path, rows)
