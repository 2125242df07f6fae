"""The network a scheme describes (docs/benchmark.md, section Network); its counts are in naap.bench.counts.

`Benchmark.network(arch, seed)` builds it as training starts it (`initial_network`); naap.rebuild.train
seeds the generators and calls `build_network` under GLOBAL_RNG_LOCK, and the build draws only from
torch's generator, so both give the same weights (tests/rebuild/test_initial_network.py)."""
from __future__ import annotations

import threading

import torch
from torch import nn

from naap.bench.space import Scheme

# Seeding and building a network use the global RNGs: code that does both in threads (trainings,
# proxies) holds this lock across the two.
GLOBAL_RNG_LOCK = threading.Lock()


class ConvBlock(nn.Module):
    """Conv (no bias) -> BatchNorm -> ReLU; a residual block adds its input after the ReLU."""

    def __init__(self, in_channels: int, kernel_size: int, width: int, stride: int, residual: bool):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, width, kernel_size, stride, padding=kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(width)
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn(self.conv(x)))
        return x + y if self.residual else y


class SchemeNet(nn.Module):
    def __init__(self, scheme: Scheme, in_channels: int = 3, num_classes: int = 10):
        super().__init__()
        blocks, channels = [], in_channels
        for layer in scheme:
            blocks.append(ConvBlock(channels, layer.kernel_size, layer.width, layer.stride, layer.residual))
            channels = layer.width
        self.blocks = nn.Sequential(*blocks)
        self.classifier = nn.Linear(channels, num_classes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """docs/benchmark.md, section Network: Kaiming-normal (fan_out) convs, BatchNorm 1/0, Linear N(0, 0.01)/0."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.blocks(x).mean(dim=(2, 3)))


def build_network(scheme: Scheme, in_channels: int = 3, num_classes: int = 10) -> SchemeNet:
    return SchemeNet(scheme, in_channels, num_classes)


def initial_network(scheme: Scheme, seed: int, in_channels: int = 3, num_classes: int = 10) -> SchemeNet:
    """The network of `scheme` with the weights training starts from under `seed`: torch's global
    generator seeded with `seed`, then the network built. The caller's generator state is restored."""
    with GLOBAL_RNG_LOCK, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_network(scheme, in_channels, num_classes)
