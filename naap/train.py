"""Train one architecture with one seed: the fixed recipe of SPEC section 4.

The data stay on the device (naap.datasets); each epoch indexes them with a
permutation drawn from a CPU torch.Generator seeded with the run's seed, so every
architecture trained under one seed sees the same batches on any device. Per-batch
losses and correct counts stay in device tensors and are read once per epoch: one
host synchronisation per epoch, not per step.
"""
from __future__ import annotations

import os
import random
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from naap.datasets import DeviceData
from naap.errors import NaapError
from naap.network import build_network
from naap.recipe import Training
from naap.space import Scheme, scheme_to_dicts
from naap.tables import atomic_write

EVAL_BATCH = 1024
# channels_last convolutions train these small networks about 20 % faster on the CPU (oneDNN);
# on CUDA the default layout is kept, as nothing was measured there.
MEMORY_FORMAT = {"cpu": torch.channels_last}
# Seeding and building use the global RNGs: trainings running in threads take turns.
_GLOBAL_RNG_LOCK = threading.Lock()


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


def seed_everything(seed: int) -> None:
    """Seed PyTorch (every device), NumPy's global RNG and Python's random."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def make_deterministic() -> None:
    """Deterministic kernels where PyTorch has them; cuDNN deterministic, benchmark off.

    The NaN-filling of every new tensor that deterministic mode switches on (a debugging aid,
    12 % of a CPU step here) is switched off: no kernel used here reads memory it did not write.
    """
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.utils.deterministic.fill_uninitialized_memory = False
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


def with_sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """On CUDA, BatchNorm as SyncBatchNorm (the whole batch's statistics over all ranks);
    elsewhere PyTorch has none and the model is returned as it is."""
    return nn.SyncBatchNorm.convert_sync_batchnorm(model) if device.type == "cuda" else model


def train(scheme: Scheme, data: DeviceData, training: Training, seed: int, *,
          device: torch.device | str | None = None, checkpoint: Path | None = None, ddp: bool = False,
          on_epoch: Callable[[EpochMetrics], None] | None = None) -> RunResult:
    """Train `scheme` on `data` for training.epochs epochs; return the per-epoch metrics.

    checkpoint: after every epoch the model, optimizer, batch-order generator and metrics
    are written there atomically; a run started with an existing checkpoint resumes from
    it and ends with the same numbers as an uninterrupted run (epoch_seconds aside).

    ddp: torch.distributed is initialised by the caller; every rank trains the same
    network with DistributedDataParallel, each taking its slice of every recipe batch.
    Gradients are those of the whole batch's mean loss and the reported losses are
    those of the whole batch. On CUDA, BatchNorm is converted to SyncBatchNorm, so it
    normalises with the whole batch's statistics, as one device would. On the CPU
    (gloo) PyTorch has no SyncBatchNorm: BatchNorm normalises each rank's slice with
    that slice's statistics, and the running statistics used for the test pass are
    rank 0's, so the numbers differ (slightly) from a single-process run and depend
    on the number of ranks. Only rank 0 writes the checkpoint; it reads it on resume
    and broadcasts it to the other ranks.

    A NaN or infinite loss stops the run: diverged=True, with the epochs finished before.
    """
    device = torch.device(device) if device is not None else data.train_x.device
    rank, world = (dist.get_rank(), dist.get_world_size()) if ddp else (0, 1)
    smallest_batch = min(training.batch_size, len(data.train_y) % training.batch_size or training.batch_size)
    if smallest_batch < world:
        raise NaapError(f"training.batch_size: a batch of {smallest_batch} images cannot be split over {world} ranks")
    make_deterministic()
    with _GLOBAL_RNG_LOCK:
        seed_everything(seed)
        model = build_network(scheme, data.in_channels, data.num_classes)
        seed_everything(seed)  # SPEC 4 reseeds before the data order, which has its own generator here
    memory_format = MEMORY_FORMAT.get(device.type, torch.contiguous_format)
    model = model.to(device, memory_format=memory_format)
    optimizer = torch.optim.SGD(model.parameters(), lr=training.lr, momentum=training.momentum,
                                weight_decay=training.weight_decay, nesterov=training.nesterov)
    order = torch.Generator().manual_seed(seed)
    fingerprint = {"scheme": scheme_to_dicts(scheme), "seed": seed, "training": asdict(training) | {"seeds": None},
                   "data": [data.name, len(data.train_y), len(data.test_y)], "ranks": world}
    epochs: list[EpochMetrics] = []
    diverged = False
    saved = _load_checkpoint(checkpoint, fingerprint, rank, ddp, device)
    if saved is not None:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        order.set_state(saved["order"])
        epochs = [EpochMetrics(**e) for e in saved["epochs"]]
        diverged = saved["diverged"]
    if ddp:
        model = nn.parallel.DistributedDataParallel(
            with_sync_batchnorm(model, device), device_ids=[device.index] if device.type == "cuda" else None)

    while not diverged and len(epochs) < training.epochs:
        metrics = _train_epoch(model, optimizer, order, data, training, len(epochs) + 1, device, memory_format,
                               rank, world, ddp)
        diverged = metrics is None
        if not diverged:
            epochs.append(metrics)
        if checkpoint is not None and rank == 0:
            _save_checkpoint(checkpoint, fingerprint, model, optimizer, order, epochs, diverged)
        if on_epoch is not None and not diverged:
            on_epoch(metrics)
    return RunResult(seed=seed, epochs=epochs, diverged=diverged)


def _train_epoch(model, optimizer, order, data: DeviceData, training: Training, epoch: int,
                 device, memory_format, rank: int, world: int, ddp: bool) -> EpochMetrics | None:
    """One epoch of training and the test pass; None if a loss was NaN or infinite."""
    start = time.perf_counter()
    lr = training.lr_at(epoch)
    for group in optimizer.param_groups:
        group["lr"] = lr
    n = len(data.train_y)
    batches = torch.randperm(n, generator=order).to(device).split(training.batch_size)
    batch_losses = torch.zeros(len(batches), device=device)
    train_correct = torch.zeros((), dtype=torch.int64, device=device)
    model.train()
    for i, batch in enumerate(batches):
        index = batch.tensor_split(world)[rank]
        x, y = data.train_x[index].contiguous(memory_format=memory_format), data.train_y[index]
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
    test_loss, test_correct = _evaluate(net, data, rank, world, device, memory_format)
    stats = torch.cat([batch_losses, torch.stack([train_correct.float(), test_loss, test_correct.float()])])
    if ddp:
        dist.all_reduce(stats)
    stats = stats.double().cpu().numpy()  # the epoch's one host synchronisation
    losses = stats[:len(batches)]
    if not np.isfinite(losses).all():
        return None
    n_test = len(data.test_y)
    return EpochMetrics(epoch=epoch, lr=lr, train_loss_mean=float(np.mean(losses)),
                        train_loss_median=float(np.median(losses)),
                        test_accuracy=float(stats[-1] / n_test), test_loss=float(stats[-2] / n_test),
                        train_accuracy=float(stats[-3] / n), epoch_seconds=time.perf_counter() - start)


@torch.inference_mode()
def _evaluate(net: nn.Module, data: DeviceData, rank: int, world: int, device,
              memory_format) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed loss and correct count over this rank's share of the test set, in eval mode."""
    net.eval()
    loss = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    share = torch.arange(len(data.test_y), device=device).tensor_split(world)[rank]
    for index in share.split(EVAL_BATCH):
        logits = net(data.test_x[index].contiguous(memory_format=memory_format))
        loss += F.cross_entropy(logits, data.test_y[index], reduction="sum")
        correct += (logits.argmax(1) == data.test_y[index]).sum()
    return loss, correct


def _save_checkpoint(path: Path, fingerprint: dict, model, optimizer, order, epochs, diverged: bool) -> None:
    net = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
    state = {"fingerprint": fingerprint, "model": net.state_dict(), "optimizer": optimizer.state_dict(),
             "order": order.get_state(), "epochs": [asdict(e) for e in epochs], "diverged": diverged}
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
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load raises many types for a damaged file
        raise NaapError(f"{path}: unreadable checkpoint ({type(exc).__name__}); delete it to start over") from None
    if state.get("fingerprint") != fingerprint:
        raise NaapError(f"{path}: checkpoint of another run (scheme, seed, training, data or ranks differ); "
                        f"delete it to start over")
    return state
