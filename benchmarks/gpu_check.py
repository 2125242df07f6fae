"""`make gpu-check`: on a machine with a GPU, check that naap's numbers on CUDA are the paper's and that no
engine or launch changes them; measure the engines. One cold command, small runs (minutes on an H100).

1. Versions (torch, CUDA, cuDNN, driver, GPU), naap.rebuild.settings.describe(cuda) and every TF32
   flag read back (a read that raises is a failure).
2. Device images == CPU images, bit for bit (int32 views).
3. naap == the paper's DataLoader loop on CUDA (tests/oracle.py's paper_training, 3 schemes).
4. The smoke recipe, 4 epochs (lr restart) on 1,000 images (a partial last batch), through `naap dataset
   --device cuda` as eager with 1 and 4 trainings per device, cohort K=4, K=1 and K=auto, and cohort-graphs K=4:
   identical Parquet (epoch_seconds aside), with steps/s per network and per GPU for each.
5. Per engine, from the profiler, per network-step (differential: an epoch of 6 batches minus one of
   2): CUDA kernels, host launch calls (cudaLaunchKernel*, cudaGraphLaunch), and the device-to-host
   copies per epoch; the cuDNN/cuBLAS kernel names of eager and the cohorts compared; no OOM raised.
6. The projected NAAP-440 hours: its network-steps over the steps/s per GPU of a cohort of CIFAR-shaped
   NAAP-440 networks (--k of them, --images images, the second epoch timed), per engine; and the K that
   runner.cohort_size auto measures for NAAP-440 on this device (naap.rebuild.cohort_size).
Exit status: 0 all identical, 1 any difference (the first one named), 2 no GPU (one line) or a run failed.

    python benchmarks/gpu_check.py [--k 32] [--images 10240]
    python benchmarks/gpu_check.py --device cpu --k 2 --images 512   # a rehearsal of the checks on the CPU
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

import numpy as np
import torch
import yaml
from torch.profiler import ProfilerActivity, profile

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tests/oracle.py: the paper's loop, the tests' oracle

from naap._io import read_provenance  # noqa: E402
from naap.bench.tables import load_tables  # noqa: E402
from naap.rebuild import settings  # noqa: E402
from naap.rebuild import train as train_module  # noqa: E402
from naap.rebuild.cohort import train_cohort  # noqa: E402
from naap.rebuild.cohort_size import AUTO, plan_cohort_size  # noqa: E402
from naap.rebuild.datasets import load_dataset, write_synthetic_cifar10  # noqa: E402
from naap.rebuild.jobs import make_plan  # noqa: E402
from naap.rebuild.recipe import DATASET_SIZES, DatasetSpec, load_recipe  # noqa: E402
from tests.oracle import SCHEMES, SEED, TRAINING, paper_training  # noqa: E402

SMOKE = REPO / "recipes" / "smoke.yaml"
NAAP440 = REPO / "recipes" / "naap440.yaml"
# Each `naap dataset` run of step 4, compared with the first.
RUNS = {"eager x1": ("--engine", "eager", "--trainings-per-device", "1"),
        "eager x4": ("--engine", "eager", "--trainings-per-device", "4"),
        "cohort K=4": ("--engine", "cohort", "--cohort-size", "4"),
        "cohort K=1": ("--engine", "cohort", "--cohort-size", "1"),
        "cohort K=auto": ("--engine", "cohort", "--cohort-size", "auto"),
        "cohort-graphs K=4": ("--engine", "cohort-graphs", "--cohort-size", "4")}
ENGINES = ("eager", "cohort", "cohort-graphs")
HOST_LAUNCHES = ("cudaLaunchKernel", "cudaLaunchKernelExC", "cuLaunchKernel", "cuLaunchKernelEx", "cudaGraphLaunch")
LIBRARY_KERNELS = ("conv", "gemm", "cudnn", "cutlass", "xmma", "norm", "implicit", "winograd", "fft")


def versions(device: torch.device) -> list[str]:
    """Step 1; returns the failures."""
    failures = []
    describe = settings.describe(device)
    print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {describe['versions']['cudnn']}, "
          f"driver {_driver()}, device {describe['hardware']['device']}")
    print("settings: " + json.dumps({k: v for k, v in describe.items() if k not in ("versions", "hardware")}))
    backends = torch.backends
    flags = {"cuda.matmul.allow_tf32": lambda: backends.cuda.matmul.allow_tf32,
             "cudnn.allow_tf32": lambda: backends.cudnn.allow_tf32,
             "float32_matmul_precision": torch.get_float32_matmul_precision}
    for name in ("", "cuda.matmul", "cudnn", "cudnn.conv", "cudnn.rnn", "mkldnn", "mkldnn.conv", "mkldnn.matmul"):
        owner = backends
        for part in filter(None, name.split(".")):
            owner = getattr(owner, part, None)
        if owner is not None and hasattr(owner, "fp32_precision"):
            flags[f"{name or 'backends'}.fp32_precision"] = lambda owner=owner: owner.fp32_precision
    read = {}
    for name, get in flags.items():
        try:
            read[name] = get()
        except Exception as exc:  # the mixed legacy/new TF32 API raises RuntimeError on read
            read[name] = f"unreadable ({type(exc).__name__})"
            failures.append(f"TF32 flag {name} cannot be read after settings.apply: {exc}")
    print("TF32 flags read back: " + ", ".join(f"{k}={v}" for k, v in read.items()))
    if device.type == "cuda" and read.get("cudnn.conv.fp32_precision", "ieee") != "ieee":
        failures.append(f"cudnn.conv.fp32_precision is {read['cudnn.conv.fp32_precision']}, not ieee")
    return failures


def _driver() -> str:
    try:
        found = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                               capture_output=True, text=True, timeout=30)
        return found.stdout.strip().splitlines()[0] if found.returncode == 0 and found.stdout.strip() else "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def images(device: torch.device, root: Path) -> list[str]:
    """Step 2: the images normalised for `device` equal those normalised on the CPU, bit for bit."""
    spec = DatasetSpec("cifar10-folder", root=str(root))
    here, there = load_dataset(spec, TRAINING, "cpu"), load_dataset(spec, TRAINING, device)
    failures = []
    for name in ("train_x", "test_x"):
        a, b = getattr(here, name), getattr(there, name).cpu()
        differ = int((a.view(torch.int32) != b.view(torch.int32)).sum())
        print(f"device images == CPU images ({name}, {a.numel()} values): {'yes' if not differ else f'{differ} differ'}")
        if differ:
            failures.append(f"{differ} {name} values normalised on {device} differ from the CPU's")
    return failures


def paper_loop(device: torch.device, root: Path) -> list[str]:
    """Step 3: train() against tests/oracle.py's paper_training on `device`."""
    data = load_dataset(DatasetSpec("cifar10-folder", root=str(root)), TRAINING, device)
    failures = []
    for name, scheme in SCHEMES.items():
        naap = [(e.train_loss_mean, e.train_loss_median, e.test_accuracy)
                for e in train_module.train(scheme, data, TRAINING, SEED).epochs]
        paper = paper_training(scheme, str(root), TRAINING, SEED, device=str(device))
        same = naap == paper
        print(f"naap == the paper's loop on {device}, {name}: {'yes' if same else 'NO'}")
        if not same:
            epoch = next(i for i, (a, b) in enumerate(zip(naap, paper), 1) if a != b) if len(naap) == len(paper) else 0
            failures.append(f"naap != the paper's loop for {name!r} from epoch {epoch}: {naap} vs {paper}")
    return failures


def engines(device: torch.device, folder: Path) -> list[str]:
    """Step 4: the smoke variant through `naap dataset` per engine, compared with eager x1."""
    raw = yaml.safe_load(SMOKE.read_text())
    raw["name"], raw["training"]["epochs"], raw["dataset"]["train_size"] = "smoke-gpu-check", 4, 1000
    recipe_path = folder / "smoke-gpu-check.yaml"
    recipe_path.write_text(yaml.safe_dump(raw))
    recipe = load_recipe(recipe_path)
    steps = math.ceil(recipe.dataset.train_size / recipe.training.batch_size)
    outs = {}
    for name, args in RUNS.items():
        out = folder / name.replace(" ", "-").replace("=", "")
        command = [sys.executable, "-m", "naap", "dataset", str(recipe_path), "--out", str(out),
                   "--device", device.type, *args]
        run = subprocess.run(command, cwd=folder, capture_output=True, text=True)
        if run.returncode != 0:
            print(f"gpu-check: `{' '.join(command)}` failed:\n{run.stderr.strip()}", file=sys.stderr)
            raise SystemExit(2)
        outs[name] = out
    print(f"{recipe.name}: {len(make_plan(recipe).jobs)} trainings x {recipe.training.epochs} epochs, "
          f"{steps} steps per epoch (the last partial)")
    failures = []
    first = next(iter(outs))
    for name, out in outs.items():
        epochs = load_tables(out).epochs
        per_network = float((steps / epochs["epoch_seconds"]).median())
        per_gpu = steps * len(epochs) / read_provenance(out / "epochs.parquet")["wall_seconds"]
        difference = first_difference(outs[first], out)
        print(f"  {name:18s} {per_network:9.1f} steps/s per network {per_gpu:9.1f} steps/s per GPU   "
              f"{'identical to ' + first if difference is None else 'DIFFERS from ' + first + ': ' + difference}")
        if difference is not None:
            failures.append(f"{name} differs from {first}: {difference}")
    return failures


def first_difference(a: Path, b: Path) -> str | None:
    """The first (table, row keys, column) where two datasets differ, epoch_seconds aside; None if none."""
    ta, tb = load_tables(a), load_tables(b)
    for table, keys in (("architectures", ["arch_id"]), ("epochs", ["arch_id", "seed", "epoch"])):
        x = getattr(ta, table).drop(columns="epoch_seconds", errors="ignore").sort_values(keys).reset_index(drop=True)
        y = getattr(tb, table).drop(columns="epoch_seconds", errors="ignore").sort_values(keys).reset_index(drop=True)
        if x.shape != y.shape or list(x.columns) != list(y.columns):
            return f"{table}: shapes {x.shape} and {y.shape}"
        for i in range(len(x)):
            for column in x.columns:
                if not _same(x.at[i, column], y.at[i, column]):
                    where = ", ".join(f"{k}={x.at[i, k]}" for k in keys)
                    return f"{table} ({where}), column {column}: {x.at[i, column]} vs {y.at[i, column]}"
    return None


def _same(u, v) -> bool:
    """Equal cells: floats bit for bit (NaN equal to NaN), arrays (the scheme columns) item by item."""
    if isinstance(u, float) and isinstance(v, float):
        return u == v or (math.isnan(u) and math.isnan(v))
    return bool(np.array_equal(np.asarray(u, dtype=object), np.asarray(v, dtype=object)))


def kernels(device: torch.device, folder: Path) -> list[str]:
    """Step 5 (CUDA): kernels, host launches and device-to-host copies per network-step, per engine."""
    recipe = load_recipe(SMOKE)
    training = dataclasses.replace(recipe.training, epochs=1, batch_size=32)
    write_synthetic_cifar10(folder, train_size=6 * 32, test_size=64)
    full = load_dataset(DatasetSpec("cifar10-folder", root=str(folder)), training, device)
    small = dataclasses.replace(full, train_x=full.train_x[:64], train_y=full.train_y[:64])
    schemes = [job.scheme for job in make_plan(recipe).jobs][::len(recipe.training.seeds)]
    seed, k = training.seeds[0], len(schemes)
    ooms = torch.cuda.memory_stats(device).get("num_ooms", 0)
    library, failures = {}, []
    print(f"per network-step (profiler; K={k}, batch 32; an epoch of 6 batches minus one of 2):")
    for engine in ENGINES:
        counts = []
        for data in (full, small):
            with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
                if engine == "eager":
                    for scheme in schemes:
                        train_module.train(scheme, data, training, seed)
                else:
                    train_cohort(schemes, data, training, seed, engine=engine)
                torch.cuda.synchronize(device)
            events = prof.events()
            gpu = Counter(e.name for e in events if e.device_type == torch.autograd.DeviceType.CUDA)
            host = sum(1 for e in events if e.device_type == torch.autograd.DeviceType.CPU and e.name in HOST_LAUNCHES)
            counts.append((gpu, host))
        (gpu6, host6), (gpu2, host2) = counts
        steps = 4 * k
        device_to_host = sum(n for name, n in gpu6.items() if "DtoH" in name or "Device -> Pageable" in name)
        print(f"  {engine:14s} {(sum(gpu6.values()) - sum(gpu2.values())) / steps:7.1f} CUDA kernels "
              f"{(host6 - host2) / steps:7.2f} host launches   {device_to_host} device-to-host copies in "
              f"an epoch ({k if engine == 'eager' else 1} expected)")
        library[engine] = {name for name in gpu6 if any(word in name.lower() for word in LIBRARY_KERNELS)}
    for engine in ENGINES[1:]:
        if library[engine] and library[engine] != library["eager"]:
            failures.append(f"{engine} ran other cuDNN/cuBLAS kernels than eager: "
                            f"{sorted(library[engine] ^ library['eager'])[:6]}")
        elif not library[engine]:
            print(f"  {engine}: the profiler shows no library kernel (graph replays hidden from it?)")
    if torch.cuda.memory_stats(device).get("num_ooms", 0) != ooms:
        failures.append("an allocation ran out of memory (caught inside PyTorch): cuDNN may have changed kernels")
    return failures


def projection(device: torch.device, folder: Path, k: int, images: int) -> list[str]:
    """Step 6: steps/s per GPU of K CIFAR-shaped NAAP-440 networks (epoch 2 timed), per engine, and the
    hours NAAP-440 would take at that rate."""
    recipe = load_recipe(NAAP440)
    training = dataclasses.replace(recipe.training, epochs=2)
    train_size = recipe.dataset.train_size or DATASET_SIZES["cifar10"][0]
    total = len(make_plan(recipe).jobs) * recipe.training.epochs * math.ceil(train_size / recipe.training.batch_size)
    write_synthetic_cifar10(folder, train_size=images, test_size=max(images // 5, 1))
    data = load_dataset(DatasetSpec("cifar10-folder", root=str(folder)), training, device)
    schemes = [job.scheme for job in make_plan(recipe).jobs][:k]
    sized = plan_cohort_size(AUTO, make_plan(recipe).jobs, data, training, device, "cohort-graphs", 1, "NAAP-440")
    print(f"runner.cohort_size auto for NAAP-440 with cohort-graphs: {sized.describe(device)}")
    steps = math.ceil(images / training.batch_size)
    seed = training.seeds[0]
    print(f"NAAP-440: {total:,} network-steps; measured on {k} of its networks, {images} CIFAR-shaped images:")
    failures = []
    for engine in ENGINES:
        started = time.perf_counter()
        try:
            if engine == "eager":
                seconds = sum(train_module.train(s, data, training, seed).epochs[1].epoch_seconds for s in schemes)
            else:
                seconds = train_cohort(schemes, data, training, seed, engine=engine)[0].epochs[1].epoch_seconds
        except Exception as exc:  # report and go on: the other engines still measure
            failures.append(f"{engine} failed on the NAAP-440 networks: {type(exc).__name__}: {exc}")
            traceback.print_exc()
            continue
        rate = k * steps / seconds
        how = "one training at a time" if engine == "eager" else f"a cohort of {k}"
        print(f"  {engine:14s} {rate:9.1f} network-steps/s per GPU ({how}): NAAP-440 in {total / rate / 3600:6.2f} h"
              f"  [measured in {time.perf_counter() - started:.0f} s]")
    return failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                        help="cpu: a rehearsal of the checks, which proves nothing about CUDA")
    parser.add_argument("--k", type=int, default=32, help="networks in the projection's cohort (default 32)")
    parser.add_argument("--images", type=int, default=10240, help="images in the projection (default 10240)")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu-check: PyTorch sees no CUDA GPU here; nothing to check (run it on a machine with one)")
        return 2
    device = torch.device("cuda", 0) if args.device == "cuda" else torch.device("cpu")
    started = time.perf_counter()
    settings.apply(device)
    failures = versions(device)
    with tempfile.TemporaryDirectory(prefix="naap-gpu-check-") as tmp:
        tmp = Path(tmp)
        write_synthetic_cifar10(tmp / "oracle", train_size=300, test_size=100)  # tests/oracle.py's size
        steps = [("images", lambda: images(device, tmp / "oracle")),
                 ("paper loop", lambda: paper_loop(device, tmp / "oracle")),
                 ("engines", lambda: engines(device, tmp)),
                 ("kernels", lambda: kernels(device, tmp / "kernels") if device.type == "cuda" else []),
                 ("projection", lambda: projection(device, tmp / "projection", args.k, args.images))]
        for name, step in steps:
            try:
                failures += step()
            except SystemExit:
                raise
            except Exception as exc:
                traceback.print_exc()
                failures.append(f"{name}: {type(exc).__name__}: {exc}")
    print(f"gpu-check: {time.perf_counter() - started:.0f} s")
    for failure in failures:
        print(f"gpu-check: FAILED: {failure}")
    if not failures:
        print("gpu-check: every check identical")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
