"""runner.engine cohort-graphs: the cohort's training step from static device buffers, replayed as CUDA graphs.

A captured step may not read a host value, so what changes from step to step lives in device
buffers filled once per epoch: the epoch's order (one copy per epoch) and a step counter (zeroed
per epoch, advanced by the step itself). Step i takes its indices with index_select(counter),
gathers its images with index_select (the values train_x[batch] gives), and writes the members'
losses into column `counter` of the (K, B) loss buffer with torch.where (a select: index_copy_
would take the sorted index_put path under deterministic mode on CUDA).

On CUDA (GraphEngine with a CUDA device): one graph per learning rate (3 for the cyclic recipe:
SGD bakes lr into its kernels) sharing one memory pool, captured on the training thread with
capture_error_mode="thread_local" and replayed on one stream; members run on forked side streams,
joined before the shared SGD step. The first step of each cohort composition is eager (it creates
missing momentum buffers and warms cuDNN/cuBLAS on every stream before any capture); the partial
last batch is eager (another shape). A new cohort composition (a member dropped, a catch-up round) gets new
buffers and graphs. Elsewhere the same body runs eagerly: the CPU tests check its buffer logic.
Where this has run: docs/exactness.md.
"""
from __future__ import annotations

from contextlib import nullcontext
from typing import Callable

import torch

from naap.rebuild import settings
from naap.rebuild import train as T
from naap.rebuild.datasets import DeviceData
from naap.rebuild.recipe import Training

# Side streams the members' branches are spread over (each holds its own cuBLAS workspace).
SIDE_STREAMS = 8

# step(x, y, streams) -> (losses (K,), correct (K,)): one optimizer step of every member (cohort.cohort_step).
Step = Callable[..., tuple[torch.Tensor, torch.Tensor]]


class StaticBatches:
    """The epoch's order and a step counter on the device, allocated once before any capture."""

    def __init__(self, n: int, batch_size: int, device: torch.device):
        self.n, self.batch_size, self.full = n, batch_size, n // batch_size
        self.order = torch.empty(n, dtype=torch.int64, device=device)
        self.counter = torch.zeros(1, dtype=torch.int64, device=device)
        # views made once: a capture records their addresses
        self.full_rows = self.order[: self.full * batch_size].view(self.full, batch_size)
        self.partial = self.order[self.full * batch_size:]

    def fill(self, seed: int, epoch: int) -> None:
        """Once per epoch, outside any graph: the epoch's order and the counter at 0."""
        self.order.copy_(T.epoch_order(seed, epoch, self.n))
        self.counter.zero_()

    def next_full_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The indices of full batch `counter` and that column's number; advances the counter
        (no host read: capturable)."""
        column = self.counter.clone()
        index = self.full_rows.index_select(0, self.counter).view(self.batch_size)
        self.counter.add_(1)
        return index, column


class EpochBuffers:
    """The members' statistics of one epoch, written in place by every step."""

    def __init__(self, k: int, batches: int, device: torch.device):
        self.losses = torch.zeros(k, batches, device=device)
        self.correct = torch.zeros(k, dtype=torch.int64, device=device)
        self.columns = torch.arange(batches, device=device)

    def reset(self) -> None:
        self.losses.zero_()
        self.correct.zero_()


def full_step_body(statics: StaticBatches, buffers: EpochBuffers, data: DeviceData, step: Step,
                   streams: list | None) -> None:
    """What one graph records: the gather, every member's step, the statistics."""
    index, column = statics.next_full_batch()
    x = data.train_x.index_select(0, index).contiguous(memory_format=settings.MEMORY_FORMAT)
    y = data.train_y.index_select(0, index)
    losses, hits = step(x, y, streams)
    buffers.losses.copy_(torch.where(buffers.columns == column, losses[:, None], buffers.losses))
    buffers.correct.add_(hits)


def partial_step(statics: StaticBatches, buffers: EpochBuffers, data: DeviceData, step: Step,
                 streams: list | None) -> None:
    """The last, partial batch (another shape), eager, from the host-known tail of `order`."""
    x = data.train_x.index_select(0, statics.partial).contiguous(memory_format=settings.MEMORY_FORMAT)
    y = data.train_y.index_select(0, statics.partial)
    losses, hits = step(x, y, streams)
    buffers.losses[:, statics.full] = losses
    buffers.correct.add_(hits)


class GraphEngine:
    """The static buffers (and on CUDA the graphs) of the current cohort composition."""

    def __init__(self, data: DeviceData, training: Training, device: torch.device):
        self.data, self.training, self.device = data, training, device
        self.cuda = device.type == "cuda"
        self.key: tuple[int, ...] | None = None
        if self.cuda:
            self.stream = torch.cuda.Stream(device)
            self.side = [torch.cuda.Stream(device) for _ in range(SIDE_STREAMS)]

    def _compose(self, key: tuple[int, ...]) -> None:
        """New buffers and graphs for a new set of members (the old graphs and their pool are let go)."""
        n, bs = len(self.data.train_y), self.training.batch_size
        self.key = key
        self.statics = StaticBatches(n, bs, self.device)
        self.buffers = EpochBuffers(len(key), -(-n // bs), self.device)
        self.graphs: dict[float, torch.cuda.CUDAGraph] = {}
        self.warm = False
        self.pool = torch.cuda.graph_pool_handle() if self.cuda else None

    def epoch(self, key: tuple[int, ...], seed: int, epoch: int, lr: float,
              step: Step) -> tuple[torch.Tensor, torch.Tensor]:
        """One epoch of the members `key` (their indices): (K, B) losses and (K,) correct counts."""
        if key != self.key:
            self._compose(key)
        # The first step of a composition is eager: it creates missing momentum buffers and picks and
        # caches every cuDNN plan and cuBLAS workspace on every stream before anything is captured.
        statics, buffers = self.statics, self.buffers
        statics.fill(seed, epoch)
        buffers.reset()
        streams = self.side if self.cuda else None
        origin = torch.cuda.current_stream(self.device) if self.cuda else None
        if self.cuda:
            self.stream.wait_stream(origin)
        body = lambda: full_step_body(statics, buffers, self.data, step, streams)
        with torch.cuda.stream(self.stream) if self.cuda else nullcontext():
            for _ in range(statics.full):
                if not self.cuda or not self.warm:
                    body()
                    self.warm = True
                else:
                    self._replay(lr, body)
            if len(statics.partial):
                partial_step(statics, buffers, self.data, step, streams)
        if self.cuda:
            origin.wait_stream(self.stream)
        return buffers.losses, buffers.correct

    def _replay(self, lr: float, body: Callable[[], None]) -> None:
        """Replay lr's graph, capturing it first if missing (a capture runs nothing, so the step it
        recorded is replayed at once). Persistent state (parameters, momentum buffers, BatchNorm
        statistics, the static buffers) exists before any capture, outside the pool: the graphs
        share only step-local memory, and never run concurrently."""
        graph = self.graphs.get(lr)
        if graph is None:
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=self.pool, stream=self.stream, capture_error_mode="thread_local"):
                body()
            self.graphs[lr] = graph
        graph.replay()
