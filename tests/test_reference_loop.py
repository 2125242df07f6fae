"""naap's training against the paper's own training loop: bit-identical, epoch by epoch.

The oracle below is written the way the published create_dataset.py trains: torchvision's
CIFAR10 with ToTensor + Normalize, DataLoader(shuffle=True, num_workers=1) for training and
an unshuffled one for the test pass, the network built after seeding torch, NumPy and random,
torch.manual_seed again right before the loaders, SGD, the cyclic learning rate,
`loss.item()` per batch before the step, NumPy's mean and median, test accuracy in eval mode.
Both sides run in this process, under the same settings and thread count (on CUDA:
tests/test_cuda.py).
"""
import random

import numpy as np
import pytest
import torch
from torch import nn, optim
from torch.utils.data import DataLoader, TensorDataset
from torchvision import transforms
from torchvision.datasets import CIFAR10

from naap import settings
from naap.datasets import load_dataset, write_synthetic_cifar10
from naap.network import build_network
from naap.recipe import DatasetSpec, Training
from naap.space import Layer
from naap.train import epoch_order, train

SCHEMES = {
    "3 layers, residual": (Layer(3, 12, 2, False), Layer(3, 16, 2, False), Layer(1, 16, 1, True)),
    "4 layers, 1x1 stride 2": (Layer(3, 16, 2, False), Layer(3, 24, 2, False), Layer(3, 24, 1, False),
                               Layer(1, 32, 2, False)),
    "4 layers, two residual": (Layer(3, 12, 2, False), Layer(3, 12, 1, True), Layer(1, 24, 2, False),
                               Layer(3, 24, 1, True)),
}
# 300 training images in batches of 64: five batches, the last one partial; four epochs, the
# fourth after the learning-rate restart.
TRAINING = Training(epochs=4, batch_size=64, lr=0.1, momentum=0.9, weight_decay=1e-4, nesterov=False,
                    lr_factor=0.1, lr_cycle=3, mean=0.5, std=0.5, seeds=(20220819,))
SEED = 20220819


class FixtureCIFAR10(CIFAR10):
    """torchvision's CIFAR10 on a CIFAR-format fixture: its md5 checks are for the real files only."""

    def _check_integrity(self) -> bool:
        return True

    def _load_meta(self) -> None:
        self.classes = list(range(10))


def paper_training(scheme, root, training: Training, seed: int, device: str = "cpu") -> list[tuple[float, float, float]]:
    """The paper's loop: per epoch (loss mean, loss median, test accuracy); on a GPU, the network
    built on the CPU and moved, each batch moved as the loader gives it."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    net = build_network(scheme).to(device)
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.SGD(net.parameters(), lr=training.lr, momentum=training.momentum,
                          weight_decay=training.weight_decay)
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))])
    torch.manual_seed(seed)
    trainset = FixtureCIFAR10(root=root, train=True, transform=transform)
    trainloader = DataLoader(trainset, batch_size=training.batch_size, shuffle=True, num_workers=1)
    testset = FixtureCIFAR10(root=root, train=False, transform=transform)
    testloader = DataLoader(testset, batch_size=training.batch_size, shuffle=False, num_workers=1)
    log = []
    for epoch in range(training.epochs):
        lr = training.lr * training.lr_factor ** (epoch % training.lr_cycle)
        for group in optimizer.param_groups:
            group["lr"] = lr
        net.train()
        losses = []
        for inputs, labels in trainloader:
            inputs, labels = inputs.to(device), labels.to(device)
            optimizer.zero_grad()
            outputs = net(inputs)
            loss = criterion(outputs, labels)
            losses.append(loss.item())
            loss.backward()
            optimizer.step()
        net.eval()
        correct = total = 0
        with torch.no_grad():
            for images, labels in testloader:
                images, labels = images.to(device), labels.to(device)
                _, predicted = torch.max(net(images), 1)
                total += labels.size(0)
                correct += (predicted == labels).sum().item()
        log.append((np.mean(losses), np.median(losses), correct / total))
    return log


@pytest.fixture(scope="module")
def fixture_root(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("cifar-format")
    write_synthetic_cifar10(root, train_size=300, test_size=100)
    return str(root)


@pytest.fixture(params=[1, 2], ids=["1 thread", "2 threads"])
def threads(request):
    """Both sides at the same intra-op thread count: 1 (what naap runs) and 2."""
    settings.apply("cpu")
    before = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(before)


@pytest.mark.parametrize("scheme", SCHEMES.values(), ids=SCHEMES.keys())
def test_naap_trains_bit_identically_to_the_papers_loop(scheme, fixture_root, threads):
    data = load_dataset(DatasetSpec("cifar10-folder", root=fixture_root), TRAINING)
    naap = [(e.train_loss_mean, e.train_loss_median, e.test_accuracy)
            for e in train(scheme, data, TRAINING, SEED).epochs]
    paper = paper_training(scheme, fixture_root, TRAINING, SEED)
    assert len(naap) == len(paper) == 4
    for epoch, (ours, theirs) in enumerate(zip(naap, paper), 1):
        assert ours == theirs, f"epoch {epoch}"


def test_the_data_order_is_the_one_the_papers_dataloader_draws():
    """epoch_order(seed, epoch) against the index order of the paper's loaders, over 7 epochs."""
    n, batch = 103, 16
    torch.manual_seed(SEED)
    trainloader = DataLoader(TensorDataset(torch.arange(n)), batch_size=batch, shuffle=True, num_workers=1)
    testloader = DataLoader(TensorDataset(torch.arange(10)), batch_size=batch, shuffle=False, num_workers=1)
    orders = []
    for _ in range(7):
        orders.append(torch.cat([index for index, in trainloader]))
        for _ in testloader:
            pass
    assert all(torch.equal(epoch_order(SEED, epoch, n), order) for epoch, order in enumerate(orders, 1))
    assert not torch.equal(orders[0], orders[1]) and not torch.equal(epoch_order(SEED + 1, 1, n), orders[0])
