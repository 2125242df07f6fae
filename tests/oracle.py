"""The oracle of naap's training: the paper's training loop, written the way the published
create_dataset.py trains, and the schemes and recipe it is checked on.

torchvision's CIFAR10 with ToTensor + Normalize, DataLoader(shuffle=True, num_workers=1) for
training and an unshuffled one for the test pass, the network built after seeding torch, NumPy
and random, torch.manual_seed again right before the loaders, SGD, the cyclic learning rate,
`loss.item()` per batch before the step, NumPy's mean and median, test accuracy in eval mode.
tests/rebuild/test_reference_loop.py (CPU), tests/rebuild/test_cuda.py (GPU),
tests/rebuild/test_train.py and benchmarks/bench_training.py (the plain baseline) use it.
"""
import random

import numpy as np
import torch
from torch import nn, optim
from torch.utils.data import DataLoader
from torchvision import transforms
from torchvision.datasets import CIFAR10

from naap.bench.network import build_network
from naap.bench.space import Layer
from naap.rebuild.recipe import Training

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
