"""This process's place in a launch: rank, world size, node, device, and the store every rank shares.

Without torchrun a process is rank 0 of 1, with an in-memory store. Under torchrun (RANK,
WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE set) it joins the process group (gloo for CPU
tensors, object collectives and barriers; NCCL for CUDA tensors where there is a GPU) and
shares the group's own store, the rendezvous store of torchrun that every node reaches:
claims (naap.rebuild.claims), the progress counters and a failure are kept there under "naap/".

Errors that every rank meets alike are printed once: `agree` runs a step on every rank and,
if it failed anywhere, rank 0 prints the failure and the others exit quietly.
"""
from __future__ import annotations

import os
import socket
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Callable, TypeVar

import torch
import torch.distributed as dist
from torch.distributed import distributed_c10d

from naap.errors import NaapError
from naap.rebuild import settings

# Collectives wait at most this long: a rank that ran out of work waits for the others' last job.
COLLECTIVE_TIMEOUT = timedelta(days=2)
T = TypeVar("T")


@dataclass(frozen=True)
class Cluster:
    rank: int
    world: int
    local_rank: int
    local_world: int  # processes on this node
    device: torch.device
    store: dist.Store

    @property
    def single_node(self) -> bool:
        return self.local_world == self.world

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def broadcast(self, value: T) -> T:
        """Rank 0's `value`, on every rank."""
        if self.world == 1:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def agree(self, step: Callable[[], T]) -> T:
        """Run `step` on every rank; return this rank's result. If it raised NaapError on any
        rank, every rank stops: rank 0 raises the first failure (naming its rank if another's),
        the others exit quietly with code 2, so that a run prints one line, not one per rank."""
        try:
            value, failure = step(), None
        except NaapError as exc:
            if self.world == 1:
                raise
            value, failure = None, (socket.gethostname(), str(exc))
        if self.world == 1:
            return value
        failures = [None] * self.world
        dist.all_gather_object(failures, failure)
        for rank, found in enumerate(failures):
            if found is not None:
                if self.rank != 0:
                    raise SystemExit(2)
                host, message = found
                raise NaapError(message if rank == 0 else f"rank {rank} ({host}): {message}")
        return value

    def check_sees(self, path: Path) -> None:
        """Every rank must see the files of DIR (on several nodes: one shared filesystem), or the
        parts would not be shared: each rank finds rank 0's `path` there, the same file."""
        if self.world == 1:
            return
        mine = _identity(path)
        ranks0 = self.broadcast(mine)

        def step() -> None:
            if mine != ranks0:
                raise NaapError(f"{path.parent}: rank {self.rank} on {socket.gethostname()} does not see the files "
                                f"rank 0 writes there; --out must be a folder every node shares (NFS or the like)")
        self.agree(step)

    def tell_failure(self, message: str) -> None:
        """Let every rank know that this one failed: they stop at their next epoch, quietly."""
        self.store.set("failed", message)

    def failed_elsewhere(self) -> bool:
        return self.world > 1 and self.store.check(["failed"])

    def leave(self) -> None:
        if self.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def join_cluster(device: str) -> Cluster:
    """This process's Cluster, on cuda:LOCAL_RANK or the CPU (`device`: auto, cpu or cuda), with
    naap.rebuild.settings applied for that device before its first use."""
    if "RANK" in os.environ:
        if not dist.is_initialized():
            dist.init_process_group("cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo",
                                    timeout=COLLECTIVE_TIMEOUT)
        env = os.environ
        cluster = Cluster(dist.get_rank(), dist.get_world_size(), int(env["LOCAL_RANK"]),
                          int(env["LOCAL_WORLD_SIZE"]), torch.device("cpu"),
                          dist.PrefixStore("naap/", distributed_c10d._get_default_store()))
    else:
        cluster = Cluster(0, 1, 0, 1, torch.device("cpu"), dist.HashStore())
    chosen = cluster.agree(lambda: _choose_device(device, cluster.local_rank))
    settings.apply(chosen)
    if chosen.type == "cuda":
        torch.cuda.set_device(chosen)
    return replace(cluster, device=chosen)


def _choose_device(device: str, local_rank: int) -> torch.device:
    if device == "cuda" and not torch.cuda.is_available():
        raise NaapError("--device cuda: PyTorch sees no CUDA device here")
    if device == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    if local_rank >= torch.cuda.device_count():
        raise NaapError(f"LOCAL_RANK {local_rank}: this node has only {torch.cuda.device_count()} GPU(s); "
                        f"start at most that many processes per node")
    return torch.device("cuda", local_rank)


def _identity(path: Path) -> tuple[int, int, int] | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_size, stat.st_mtime_ns
