"""`make bench-launches`: what the host launches per network-step, eager against cohorts, on any machine.

Counted with a TorchDispatchMode over one epoch of real training (naap.rebuild.train.train for eager,
naap.rebuild.cohort.train_cohort for cohorts of K = 1, 4, 32; smoke architectures cycled):
- kernel-launching ops per network-step: every aten op except views, detach and allocation-only
  ops (each counted op is one or more kernel launches on CUDA). SGD is forced to its foreach
  implementation, as on CUDA. Per step, differentially: (ops of an epoch of 6 batches - ops of an
  epoch of 2 batches) / 4, so per-epoch work cancels; a network-step is a cohort step / K.
- host syncs inside a step (must be 0): .item() (aten._local_scalar_dense) and the ops whose output
  shape depends on the data (nonzero, masked_select, ...), counted differentially too.
- device-to-host reads per epoch (must be 1 per training for eager, 1 per cohort): calls of
  Tensor.cpu/.item/.tolist, epoch_order's draws on its CPU generator aside.
For cohort-graphs the body runs eagerly here: its count is what one CUDA graph replay launches (the
host then launches 1 graph per cohort step). Then the cohort-vs-eager speed per core, measured in the
same run (one thread, best of 3, interleaved), with the numbers checked bit-identical.
Exit 1 if an invariant fails or the numbers differ.

    python benchmarks/bench_launches.py [--speed-k 8] [--speed-images 5120]
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from unittest import mock

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from naap.rebuild import settings
from naap.rebuild import train as train_module
from naap.rebuild.cohort import train_cohort
from naap.rebuild.datasets import DeviceData, load_dataset, write_synthetic_cifar10
from naap.rebuild.jobs import make_plan
from naap.rebuild.recipe import DatasetSpec, Training, load_recipe

SMOKE = Path(__file__).resolve().parents[1] / "recipes" / "smoke.yaml"
NO_KERNEL = {"aten.empty.memory_format", "aten.empty_strided.default", "aten.empty_like.default",
             "aten.new_empty.default", "aten.new_empty_strided.default", "aten.set_.source_Storage_storage_offset",
             "aten.lift_fresh.default"}
SYNCS = {"aten._local_scalar_dense.default", "aten.nonzero.default", "aten.masked_select.default",
         "aten._unique2.default", "aten.unique_dim.default", "aten.equal.default", "aten.is_nonzero.default",
         "aten.repeat_interleave.Tensor", "aten.index.Tensor_bool"}
RUNS = (("eager", 1), ("cohort", 1), ("cohort", 4), ("cohort", 32), ("cohort-graphs", 32))


class Count(TorchDispatchMode):
    """Kernel-launching ops and host-syncing ops dispatched while active."""

    def __init__(self):
        super().__init__()
        self.launches, self.syncs = Counter(), Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = str(func)
        if name in SYNCS:
            self.syncs[name] += 1
        elif not func.is_view and name not in NO_KERNEL and not name.startswith("aten.detach"):
            self.launches[name] += 1
        return func(*args, **(kwargs or {}))


def count(engine: str, schemes: list, data: DeviceData, training: Training, seed: int) -> tuple[Counter, Counter, int]:
    """One run of `schemes` (training.epochs epochs): (launching ops, syncing ops, host reads)."""
    reads, in_order = [0], [False]
    real = {name: getattr(torch.Tensor, name) for name in ("cpu", "tolist", "item")}

    def counted(name):
        def method(self, *args, **kwargs):
            if not in_order[0]:
                reads[0] += 1
            return real[name](self, *args, **kwargs)
        return method

    order = train_module.epoch_order

    def quiet_order(*args):  # its .item() calls draw seeds from a CPU generator: no device read
        in_order[0] = True
        try:
            return order(*args)
        finally:
            in_order[0] = False

    with ExitStack() as stack:
        for name in real:
            stack.enter_context(mock.patch.object(torch.Tensor, name, counted(name)))
        stack.enter_context(mock.patch.object(train_module, "epoch_order", quiet_order))
        stack.enter_context(mock.patch("torch.optim.sgd._default_to_fused_or_foreach", lambda *a, **k: (False, True)))
        mode = stack.enter_context(Count())
        if engine == "eager":
            for scheme in schemes:
                train_module.train(scheme, data, training, seed)
        else:
            train_cohort(schemes, data, training, seed, engine=engine)
    return mode.launches, mode.syncs, reads[0]


def per_step(engine: str, k: int, pool: list, full: DeviceData, small: DeviceData, training: Training,
             seed: int) -> dict:
    """The counts of one (engine, K), per network-step and per epoch, from an epoch of 6 batches and one of 2."""
    schemes = [pool[i % len(pool)] for i in range(k)]
    big, syncs_big, reads = count(engine, schemes, full, training, seed)
    little, syncs_little, _ = count(engine, schemes, small, training, seed)
    steps = (len(full.train_y) - len(small.train_y)) // training.batch_size
    by_op = Counter(big)
    by_op.subtract(little)
    return {"ops": (sum(big.values()) - sum(little.values())) / steps / k,
            "syncs": (sum(syncs_big.values()) - sum(syncs_little.values())) / steps,
            "reads": reads / training.epochs / (k if engine == "eager" else 1), "by_op": by_op}


def tiny_case(folder: Path, batch_size: int = 32) -> tuple[list, DeviceData, DeviceData, Training, int]:
    """The smoke recipe's architectures on synthetic images: 6 full batches, and the same data cut to 2."""
    recipe = load_recipe(SMOKE)
    training = dataclasses.replace(recipe.training, epochs=1, batch_size=batch_size)
    pool = [job.scheme for job in make_plan(recipe).jobs][::len(recipe.training.seeds)]
    write_synthetic_cifar10(folder, train_size=6 * batch_size, test_size=2 * batch_size)
    full = load_dataset(DatasetSpec("cifar10-folder", root=str(folder)), training)
    small = dataclasses.replace(full, train_x=full.train_x[:2 * batch_size], train_y=full.train_y[:2 * batch_size])
    return pool, full, small, training, training.seeds[0]


def speed(k: int, images: int, folder: Path, repeats: int = 3) -> tuple[float, float, bool]:
    """Best-of-`repeats` seconds of K smoke architectures trained one at a time and as one cohort,
    interleaved, one epoch on `images` synthetic images; and whether their numbers are identical."""
    recipe = load_recipe(SMOKE)
    training = dataclasses.replace(recipe.training, epochs=1)
    write_synthetic_cifar10(folder, train_size=images, test_size=max(images // 5, 1))
    data = load_dataset(DatasetSpec("cifar10-folder", root=str(folder)), training)
    pool = [job.scheme for job in make_plan(recipe).jobs][::len(recipe.training.seeds)]
    schemes = [pool[i % len(pool)] for i in range(k)]
    seed = training.seeds[0]
    rows = lambda r: [{key: v for key, v in dataclasses.asdict(e).items() if key != "epoch_seconds"} for e in r.epochs]
    best = {"eager": float("inf"), "cohort": float("inf")}
    same = True
    for _ in range(repeats):
        start = time.perf_counter()
        eager = [train_module.train(s, data, training, seed) for s in schemes]
        best["eager"] = min(best["eager"], time.perf_counter() - start)
        start = time.perf_counter()
        together = train_cohort(schemes, data, training, seed)
        best["cohort"] = min(best["cohort"], time.perf_counter() - start)
        same = same and [rows(r) for r in eager] == [rows(r) for r in together]
    return best["eager"], best["cohort"], same


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speed-k", type=int, default=8, help="networks in the speed comparison (default 8)")
    parser.add_argument("--speed-images", type=int, default=5120, help="training images in it (default 5120)")
    args = parser.parse_args()
    settings.apply("cpu")
    failed = []
    with tempfile.TemporaryDirectory(prefix="naap-bench-launches-") as tmp:
        case = tiny_case(Path(tmp) / "count")
        print(f"kernel-launching ops per network-step (foreach SGD), host syncs per step, device-to-host reads "
              f"per epoch; smoke architectures cycled, batch {case[3].batch_size}, {torch.get_num_threads()} thread(s)")
        print(f"{'engine':>13s} {'K':>4s} {'ops/network-step':>17s} {'syncs/step':>11s} {'reads/epoch':>12s}")
        for engine, k in RUNS:
            c = per_step(engine, k, *case)
            print(f"{engine:>13s} {k:>4d} {c['ops']:17.1f} {c['syncs']:11.1f} {c['reads']:12.1f}"
                  + ("   (per training)" if engine == "eager" else "   (per cohort)"))
            if c["syncs"] != 0 or c["reads"] != 1:
                failed.append(f"{engine} K={k}: {c['syncs']} syncs per step, {c['reads']} reads per epoch")
        print("cohort-graphs K=32, per network-step by op: " + ", ".join(
            f"{name.removeprefix('aten.')} {n / 4 / 32:.2f}" for name, n in c["by_op"].most_common(10)))
        print("cohort-graphs: the ops counted are what one graph replay launches on CUDA; the host launches "
              "1 graph per cohort step (the first and the partial last step eagerly)")
        eager, cohort, same = speed(args.speed_k, args.speed_images, Path(tmp) / "speed")
    steps = args.speed_k * -(-args.speed_images // load_recipe(SMOKE).training.batch_size)
    print(f"speed per core, K={args.speed_k}, {args.speed_images} images, 1 epoch, best of 3 interleaved: "
          f"eager {eager:.2f} s ({steps / eager:.1f} network-steps/s), cohort {cohort:.2f} s "
          f"({steps / cohort:.1f} network-steps/s): cohort/eager speed ratio {eager / cohort:.3f}; "
          f"{'bit-identical' if same else 'NUMBERS DIFFER'}")
    if not same:
        failed.append("cohort numbers differ from eager")
    for failure in failed:
        print(f"bench-launches: FAILED: {failure}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
