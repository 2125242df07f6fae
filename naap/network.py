"""The network a scheme describes (SPEC section 3), and its parameter and MAC counts."""
from __future__ import annotations

import torch
from torch import nn

from naap.space import Scheme


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
        """SPEC section 3: Kaiming-normal (fan_out) convs, BatchNorm 1/0, Linear N(0, 0.01)/0."""
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


def count_params(scheme: Scheme, in_channels: int = 3, num_classes: int = 10) -> int:
    """Every learnable parameter: conv weights, BatchNorm weight and bias, Linear weight and bias."""
    total, channels = 0, in_channels
    for layer in scheme:
        total += channels * layer.width * layer.kernel_size ** 2 + 2 * layer.width
        channels = layer.width
    return total + channels * num_classes + num_classes


def count_macs(scheme: Scheme, in_channels: int = 3, input_size: int = 32, num_classes: int = 10) -> int:
    """MACs for one input, in the convention of the published numbers (SPEC section 3)."""
    total, channels, size = 0, in_channels, input_size
    for layer in scheme:
        size = (size + 2 * (layer.kernel_size // 2) - layer.kernel_size) // layer.stride + 1
        outputs = layer.width * size * size
        total += outputs * channels * layer.kernel_size ** 2 + 4 * outputs
        channels = layer.width
    return total + (size * size + 1) * channels + channels * num_classes
