"""Images per second of one architecture's training: naap's loop against the plain way, same run.

Both train the same network (same seed, the naap440 recipe's batch size, SGD and learning
rates) on the same synthetic CIFAR-10-format images for the same epochs, on the same device
under naap.settings, each epoch followed by a test pass:
- naap: naap.train.train on naap.datasets tensors (normalised once, on the device, indexed
  per batch, one host synchronisation per epoch);
- plain: torchvision's CIFAR10 dataset (PIL image, ToTensor, Normalize per image),
  a DataLoader, each batch copied to the device, `.item()` after every step, as the original
  NAAP-440 code did.
Both give the same numbers (the paper's data order): the benchmark says whether they did.

    python benchmarks/bench_training.py [--images 10000] [--epochs 2] [--threads 1] [--device cuda]
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torchvision import transforms
from torchvision.datasets import CIFAR10, VisionDataset

import numpy as np

from naap import settings
from naap.counts import count_macs
from naap.datasets import load_dataset, write_synthetic_cifar10
from naap.network import build_network
from naap.recipe import DatasetSpec, load_recipe
from naap.space import generate_schemes
from naap.train import seed_everything, train

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "naap440.yaml"


class ArrayCIFAR10(CIFAR10):
    """torchvision's CIFAR10 (its __getitem__: PIL image, then the transforms) over uint8 HWC arrays."""

    def __init__(self, images, labels, transform):
        VisionDataset.__init__(self, root=None, transform=transform)
        self.data, self.targets, self.train = images, labels, True


def plain_training(scheme, train_set, test_set, training, seed: int, workers: int,
                   device: torch.device) -> tuple[list[float], list[tuple[float, float, float]]]:
    """The plain loop: each epoch's wall seconds (training and test pass) and (loss mean, median, accuracy)."""
    seed_everything(seed)
    model = build_network(scheme).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=training.lr, momentum=training.momentum,
                                weight_decay=training.weight_decay, nesterov=training.nesterov)
    seed_everything(seed)
    train_loader = DataLoader(train_set, batch_size=training.batch_size, shuffle=True, num_workers=workers)
    test_loader = DataLoader(test_set, batch_size=training.batch_size, num_workers=workers)
    seconds, metrics = [], []
    for epoch in range(1, training.epochs + 1):
        start = time.perf_counter()
        for group in optimizer.param_groups:
            group["lr"] = training.lr_at(epoch)
        model.train()
        losses = []
        for x, y in train_loader:
            x, y = x.to(device), y.to(device)
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        model.eval()
        correct = 0
        with torch.no_grad():
            for x, y in test_loader:
                correct += (model(x.to(device)).argmax(1) == y.to(device)).sum().item()
        seconds.append(time.perf_counter() - start)
        metrics.append((float(np.mean(losses)), float(np.median(losses)), correct / len(test_set)))
    return seconds, metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10000, help="training images (test: a fifth)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (docs/benchmark.md, Scale, quotes one core)")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers of the plain loop")
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
        naap_seconds = [e.epoch_seconds for e in naap_epochs]

        normalize = transforms.Compose([transforms.ToTensor(), transforms.Normalize((training.mean,) * 3,
                                                                                     (training.std,) * 3)])
        as_hwc = lambda x: (((x.cpu() * training.std + training.mean) * 255).round().to(torch.uint8)
                            .permute(0, 2, 3, 1).numpy())
        train_set = ArrayCIFAR10(as_hwc(data.train_x), data.train_y.tolist(), normalize)
        test_set = ArrayCIFAR10(as_hwc(data.test_x), data.test_y.tolist(), normalize)
        plain_seconds, plain_metrics = plain_training(scheme, train_set, test_set, training, seed, args.workers,
                                                      device)

    naap_rate = args.images / statistics.median(naap_seconds)
    plain_rate = args.images / statistics.median(plain_seconds)
    print(f"architecture: {[dataclasses.astuple(l) for l in scheme]} ({count_macs(scheme) / 1e6:.2f} M MACs)")
    print(f"{args.images} training + {args.images // 5} test images, batch {training.batch_size}, "
          f"{args.epochs} epochs, on {settings.describe(device)['hardware']['device']}, {args.threads} thread(s), "
          f"median epoch (training + test pass)")
    print(f"naap  (device tensors, one sync per epoch): {naap_rate:8.0f} images/s  "
          f"(data loaded once in {load_seconds:.2f} s)")
    print(f"plain (torchvision dataset, DataLoader, per-step .item()): {plain_rate:8.0f} images/s")
    print(f"ratio naap / plain: {naap_rate / plain_rate:.2f}x")
    same = [(e.train_loss_mean, e.train_loss_median, e.test_accuracy) for e in naap_epochs] == plain_metrics
    print(f"loss mean, loss median and test accuracy of every epoch identical: {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()
