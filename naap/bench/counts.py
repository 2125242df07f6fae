"""Parameter and MAC counts of a scheme, without building it (docs/benchmark.md, section Parameter and MAC counts).

Torch-free, so listing or describing thousands of schemes stays fast."""
from __future__ import annotations

from naap.bench.space import Scheme


def count_params(scheme: Scheme, in_channels: int = 3, num_classes: int = 10) -> int:
    """Every learnable parameter: conv weights, BatchNorm weight and bias, Linear weight and bias."""
    total, channels = 0, in_channels
    for layer in scheme:
        total += channels * layer.width * layer.kernel_size ** 2 + 2 * layer.width
        channels = layer.width
    return total + channels * num_classes + num_classes


def count_macs(scheme: Scheme, in_channels: int = 3, input_size: int = 32, num_classes: int = 10) -> int:
    """MACs for one input, in the convention of the published numbers (docs/benchmark.md, section Parameter and MAC counts)."""
    total, channels, size = 0, in_channels, input_size
    for layer in scheme:
        size = (size + 2 * (layer.kernel_size // 2) - layer.kernel_size) // layer.stride + 1
        outputs = layer.width * size * size
        total += outputs * channels * layer.kernel_size ** 2 + 4 * outputs
        channels = layer.width
    return total + (size * size + 1) * channels + channels * num_classes


def count_activations(scheme: Scheme, input_size: int = 32) -> int:
    """Output elements of the convolutions for one input: what a training step's activations (each
    convolution's output, its BatchNorm's and ReLU's) grow with."""
    total, size = 0, input_size
    for layer in scheme:
        size = (size + 2 * (layer.kernel_size // 2) - layer.kernel_size) // layer.stride + 1
        total += layer.width * size * size
    return total


def epoch_flop(macs, train_images: int, test_images: int):
    """FLOP of one epoch for `macs` per image (a number or an array; docs/benchmark.md, section
    Scale): 2 FLOP per MAC, a training image at three times the forward cost, plus a forward pass
    over the test images."""
    return 2.0 * macs * (3 * train_images + test_images)
