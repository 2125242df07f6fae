"""Images per second of one architecture's training: naap's loop against the plain way, same run.

Both train the same network (same seed, the naap440 recipe's batch size, SGD and learning
rates) on the same synthetic CIFAR-10-format images for the same epochs, on the same device
under naap.rebuild.settings, each epoch followed by a test pass:
- naap: naap.rebuild.train.train on naap.rebuild.datasets tensors (normalised once, on the device, indexed
  per batch, one host synchronisation per epoch);
- plain: the paper's loop, tests/oracle.py's paper_training (the tests' oracle): torchvision's
  CIFAR10 dataset (PIL image, ToTensor, Normalize per image), a DataLoader with one worker, each
  batch copied to the device, `.item()` after every step, as the original NAAP-440 code did.
Both give the same numbers (the paper's data order): the benchmark says whether they did.

    python benchmarks/bench_training.py [--images 10000] [--epochs 2] [--threads 1] [--device cuda]
"""
from __future__ import annotations

import argparse
import sys
import dataclasses
import tempfile
import time
from pathlib import Path

import torch


from naap.rebuild import settings
from naap.bench.counts import count_macs
from naap.rebuild.datasets import load_dataset, write_synthetic_cifar10
from naap.rebuild.recipe import DatasetSpec, load_recipe
from naap.bench.space import generate_schemes
from naap.rebuild.train import train

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the oracle lives with the tests
from tests.oracle import paper_training  # noqa: E402

RECIPE = REPO / "recipes" / "naap440.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10000, help="training images (test: a fifth)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (docs/benchmark.md, Scale, quotes one core)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        help="cpu or cuda (default: cuda where there is one)")
    args = parser.parse_args()
    device = torch.device(args.device)
    settings.apply(device)
    torch.set_num_threads(args.threads)

    recipe = load_recipe(RECIPE)
    training = dataclasses.replace(recipe.training, epochs=args.epochs)
    seed = training.seeds[0]
    schemes = sorted(generate_schemes(recipe.search_space, recipe.generator), key=count_macs)
    scheme = schemes[len(schemes) // 2]  # the median architecture by MACs
    with tempfile.TemporaryDirectory() as tmp:
        write_synthetic_cifar10(Path(tmp), args.images, args.images // 5)
        start = time.perf_counter()
        data = load_dataset(DatasetSpec("cifar10-folder", root=tmp), training, device)
        load_seconds = time.perf_counter() - start
        naap_epochs = train(scheme, data, training, seed).epochs
        naap_seconds = sum(e.epoch_seconds for e in naap_epochs)
        start = time.perf_counter()
        plain_metrics = paper_training(scheme, tmp, training, seed, device=str(device))
        plain_seconds = time.perf_counter() - start

    naap_rate = args.images * args.epochs / naap_seconds
    plain_rate = args.images * args.epochs / plain_seconds
    print(f"architecture: {[dataclasses.astuple(l) for l in scheme]} ({count_macs(scheme) / 1e6:.2f} M MACs)")
    print(f"{args.images} training + {args.images // 5} test images, batch {training.batch_size}, "
          f"{args.epochs} epochs, on {settings.describe(device)['hardware']['device']}, {args.threads} thread(s), "
          f"training and test passes")
    print(f"naap  (device tensors, one sync per epoch): {naap_rate:8.0f} images/s  "
          f"(data loaded once in {load_seconds:.2f} s)")
    print(f"plain (torchvision dataset, DataLoader, per-step .item()): {plain_rate:8.0f} images/s")
    print(f"ratio naap / plain: {naap_rate / plain_rate:.2f}x")
    same = [(e.train_loss_mean, e.train_loss_median, e.test_accuracy) for e in naap_epochs] == plain_metrics
    print(f"loss mean, loss median and test accuracy of every epoch identical: {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()
