"""runner.cohort_size auto: how many networks a cohort thread steps in lockstep (naap.rebuild.cohort).

On CUDA, K comes from measured memory. One eager training step (forward, loss, backward on a full
batch) of the member with the largest activations (naap.bench.counts.count_activations; every member
trains on batches of the same size) runs under torch.cuda.reset_peak_memory_stats. A member then needs its peak
allocation above what was allocated before it was built (parameters, gradients, activations, the
step's workspaces), plus its optimizer state (SGD's momentum buffers: one more copy of the
parameters). Every member is counted as holding its activations at once, as a cohort's CUDA graphs
do (their step-local memory lives in one pool), so the eager cohort is on the safe side. Then

    K = min(jobs of one seed, (available - headroom - streams x cuBLAS workspace) // trainings_per_device
                              // per-member bytes)

where available is the device's free memory plus what the caching allocator holds unused, and the
headroom is naap.rebuild.cuda_memory's (cuDNN workspaces: a failed one would silently change the
kernels). A device on which even one member does not fit is refused in one line. On the CPU memory
is not the limit, a cohort shares one core: K is CPU_COHORT_SIZE.
"""
from __future__ import annotations

import gc
from collections import Counter
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

from naap.bench.counts import count_activations, count_macs
from naap.bench.space import Scheme
from naap.errors import NaapError
from naap.rebuild import settings
from naap.rebuild import train as T
from naap.rebuild.cohort_graphs import SIDE_STREAMS
from naap.rebuild.cuda_memory import headroom_bytes
from naap.rebuild.datasets import DeviceData
from naap.rebuild.jobs import Job
from naap.rebuild.recipe import Training

AUTO = "auto"
# K of runner.cohort_size auto on the CPU (as the fixed default was before auto).
CPU_COHORT_SIZE = 4
GiB = 1 << 30


@dataclass(frozen=True)
class CohortSize:
    """The K a rank trains with, and how it was chosen (recorded in every part's provenance)."""

    k: int
    rule: str            # "fixed" (a number was asked for), "auto: cpu" or "auto: measured"
    detail: dict | None = None  # auto on CUDA: the measurement behind K

    def describe(self, device: torch.device) -> str:
        """One line for the log."""
        if self.detail is None:
            return f"cohort size {self.k} ({self.rule}) on {device}"
        d = self.detail
        return (f"cohort size {self.k} ({self.rule}) on {device}: {d['member_bytes'] / 2**20:.1f} MiB per member "
                f"(largest: {d['largest']}), {d['usable_bytes'] / GiB:.1f} GiB usable of "
                f"{d['available_bytes'] / GiB:.1f} GiB available (headroom {d['headroom_bytes'] / GiB:.1f} GiB, "
                f"{d['streams']} cuBLAS workspace(s)), {d['trainings_per_device']} cohort(s) at once, "
                f"at most {d['jobs']} job(s) of one seed")


def largest_member(jobs: Sequence[Job], data: DeviceData) -> Job:
    """The job whose network has the largest activations per image (every member trains on batches
    of the same size), the most MACs among equals (the largest cuDNN workspaces), then the first."""
    return max(jobs, key=lambda j: (count_activations(j.scheme, data.input_size),
                                    count_macs(j.scheme, data.in_channels, data.input_size, data.num_classes)))


def member_bytes(scheme: Scheme, data: DeviceData, training: Training, seed: int, device: torch.device) -> int:
    """The device memory one cohort member of `scheme` needs, measured by one eager training step
    (after a first, unmeasured one that creates cuBLAS's and cuDNN's per-stream handles and workspaces)."""
    settings.apply(device)  # the training's kernels (deterministic cuDNN, fp32), so its workspaces
    torch.cuda.synchronize(device)
    batch = torch.arange(min(training.batch_size, len(data.train_y)), device=device)

    def step() -> torch.nn.Module:
        """A fresh member's forward, loss and backward on a full batch: its model (with gradients)."""
        model, optimizer, _ = T.new_training(scheme, data, training, seed, device, 1, "cohort")
        x = data.train_x[batch].contiguous(memory_format=settings.MEMORY_FORMAT)
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), data.train_y[batch]).backward()
        torch.cuda.synchronize(device)
        return model

    step()  # the warm-up: its model is let go on return
    gc.collect()
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    model = step()
    peak = torch.cuda.max_memory_allocated(device) - base
    state = sum(p.numel() * p.element_size() for p in model.parameters()) if training.momentum != 0 else 0
    del model
    gc.collect()
    return peak + state


def available_bytes(device: torch.device) -> tuple[int, int]:
    """(bytes PyTorch can still allocate on `device`: free plus what its allocator holds unused, total)."""
    free, total = torch.cuda.mem_get_info(device)
    stats = torch.cuda.memory_stats(device)
    unused = stats.get("reserved_bytes.all.current", 0) - stats.get("allocated_bytes.all.current", 0)
    return free + unused, total


def cohort_streams(engine: str, trainings_per_device: int) -> int:
    """The CUDA streams the cohort threads of one device launch on, each with its own cuBLAS
    workspace: the thread's own (naap.rebuild.strategies.on_device), and for cohort-graphs its
    capture stream and side streams (naap.rebuild.cohort_graphs)."""
    return trainings_per_device * (1 + (1 + SIDE_STREAMS if engine == "cohort-graphs" else 0))


def plan_cohort_size(asked: int | str, jobs: Sequence[Job], data: DeviceData, training: Training,
                     device: torch.device, engine: str, trainings_per_device: int, source: str) -> CohortSize:
    """The cohort size for `asked` (a number, or AUTO) for a rank that may train `jobs`; `source`
    names what asked (a recipe file, --cohort-size) in the error line."""
    if asked != AUTO:
        return CohortSize(int(asked), "fixed")
    if device.type != "cuda":
        return CohortSize(CPU_COHORT_SIZE, "auto: cpu")
    largest = largest_member(jobs, data)
    most = max(Counter(job.seed for job in jobs).values())  # no cohort mixes seeds
    per_member = member_bytes(largest.scheme, data, training, largest.seed, device)
    available, total = available_bytes(device)
    headroom = headroom_bytes(total)
    streams = cohort_streams(engine, trainings_per_device)
    usable = available - headroom - streams * settings.CUBLAS_WORKSPACE_BYTES
    per_thread = max(usable, 0) // trainings_per_device
    fits = per_thread // per_member
    if fits < 1:
        raise NaapError(f"{source}: auto: one member ({largest.name}) needs "
                        f"{per_member / 2**20:.1f} MiB on {device}, and {per_thread / 2**20:.1f} MiB per cohort "
                        f"thread is left of {available / GiB:.1f} GiB after the headroom of {headroom / GiB:.1f} GiB: "
                        f"free the device, or train fewer at once (--trainings-per-device)")
    detail = {"member_bytes": per_member, "largest": largest.name, "available_bytes": available,
              "total_bytes": total, "headroom_bytes": headroom, "streams": streams, "usable_bytes": usable,
              "trainings_per_device": trainings_per_device, "jobs": most}
    return CohortSize(int(min(most, fits)), "auto: measured", detail)
