"""What a run costs: optimizer steps and FLOP (docs/benchmark.md, section Scale), and on a CPU a timed estimate."""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from naap.bench.counts import count_macs, epoch_flop
from naap.rebuild.card import duration
from naap.rebuild.datasets import DeviceData
from naap.rebuild.jobs import Job
from naap.rebuild.recipe import Training
from naap.rebuild.train import train


def cost(jobs: list[Job], shape: tuple[int, int, int], n_train: int, n_test: int,
         training: Training) -> tuple[int, float]:
    """Optimizer steps and FLOP of `jobs` (counts.epoch_flop per epoch)."""
    macs = sum(count_macs(j.scheme, *shape) for j in jobs)
    steps = len(jobs) * math.ceil(n_train / training.batch_size) * training.epochs
    return steps, epoch_flop(macs, n_train, n_test) * training.epochs


def cpu_epoch_seconds(jobs: list[Job], data: DeviceData, training: Training) -> np.ndarray:
    """Seconds per epoch of each job on this CPU, one training at a time, measured on the smallest
    and the largest network (2048 training images, 1024 test images, the second epoch) and
    interpolated in MACs."""
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


def describe_cost(jobs: list[Job], data: DeviceData, training: Training, trainings_at_once: int,
                  measure: bool) -> tuple[str, float | None]:
    """What the run costs, as text; with `measure`, on a CPU, also the hours it takes with
    `trainings_at_once` single-threaded trainings over all processes (the cores they use)."""
    n_train, n_test = len(data.train_y), len(data.test_y)
    steps, flop = cost(jobs, data.shape, n_train, n_test, training)
    text = (f"cost: {len(jobs)} trainings x {training.epochs} epochs on {n_train} + {n_test} images = "
            f"{steps:,} optimizer steps, {flop:.3g} FLOP")
    if not measure or data.train_x.device.type != "cpu":
        return text, None
    seconds = cpu_epoch_seconds(jobs, data, training)
    hours = seconds.sum() * training.epochs / trainings_at_once / 3600
    low, high = seconds.min(), seconds.max()
    text += (f"\nthis CPU (one thread per training): an epoch takes {low:.1f} s "
             f"({n_train / low:,.0f} images/s, smallest network) to {high:.1f} s ({n_train / high:,.0f} images/s, "
             f"largest); about {duration(hours * 3600)} with {trainings_at_once} training(s) at once")
    return text, hours

