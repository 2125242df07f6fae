"""`make gpu-check`: on a machine with a GPU, check that threaded training changes no number.

Runs a recipe (default recipes/smoke.yaml) through `naap dataset --device cuda` twice, with 1
and with 4 trainings per device, in a scratch folder; compares the two datasets bit for bit
(epoch_seconds aside) and prints steps/s per network and per GPU for each.
Exit status: 0 identical, 1 different, 2 no GPU (or a run failed).

    python benchmarks/gpu_check.py [--recipe recipes/smoke.yaml]
"""
from __future__ import annotations

import argparse
import math
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from naap.rebuild.recipe import load_recipe
from naap.bench.tables import load_tables
from naap._io import read_provenance

SMOKE = Path(__file__).resolve().parents[1] / "recipes" / "smoke.yaml"
TRAININGS_PER_DEVICE = (1, 4)


def build(recipe: Path, out: Path, per_device: int) -> None:
    """One `naap dataset` run on CUDA; its output goes to the terminal."""
    command = [sys.executable, "-m", "naap", "dataset", str(recipe), "--out", str(out), "--device", "cuda",
               "--trainings-per-device", str(per_device)]
    if subprocess.run(command, cwd=out.parent).returncode != 0:
        print(f"gpu-check: `{' '.join(command)}` failed", file=sys.stderr)
        sys.exit(2)


def speed(out: Path, steps_per_epoch: int) -> tuple[float, float]:
    """Median steps/s of one network (its epochs, test pass included) and steps/s of the GPU
    (every training's steps over the wall time from the first training's start to the last one's end)."""
    epochs = load_tables(out).epochs
    per_network = float((steps_per_epoch / epochs["epoch_seconds"]).median())
    wall = read_provenance(out / "epochs.parquet")["wall_seconds"]
    return per_network, steps_per_epoch * len(epochs) / wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", type=Path, default=SMOKE, help="recipe to build (default: the smoke recipe)")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("gpu-check: PyTorch sees no CUDA GPU here; nothing to check (run it on a machine with one)")
        return 2
    recipe = load_recipe(args.recipe)
    with tempfile.TemporaryDirectory(prefix="naap-gpu-check-") as tmp:
        outs = {n: Path(tmp) / f"per-device-{n}" for n in TRAININGS_PER_DEVICE}
        for n, out in outs.items():
            build(args.recipe.resolve(), out, n)
        train_size = read_provenance(outs[TRAININGS_PER_DEVICE[0]] / "epochs.parquet")["dataset"]["train_size"]
        steps_per_epoch = math.ceil(train_size / recipe.training.batch_size)
        tables = {n: load_tables(out) for n, out in outs.items()}
        first, second = (tables[n] for n in TRAININGS_PER_DEVICE)
        same = (first.architectures.equals(second.architectures)
                and first.epochs.drop(columns="epoch_seconds").equals(second.epochs.drop(columns="epoch_seconds")))
        print(f"{torch.cuda.get_device_name(0)}, {recipe.name}: {len(first.epochs)} epoch rows, "
              f"{steps_per_epoch} steps per epoch")
        for n, out in outs.items():
            network, gpu = speed(out, steps_per_epoch)
            print(f"  {n} training(s) per device: {network:8.1f} steps/s per network, {gpu:8.1f} steps/s per GPU")
    if not same:
        print("gpu-check: FAILED: 1 and 4 trainings per device gave different numbers")
        return 1
    print("gpu-check: identical numbers with 1 and 4 trainings per device (epoch_seconds aside)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
