"""Zero-cost proxies: scores of an untrained network that the NAS literature uses to rank
architectures before any training (`naap proxies DIR`).

Each proxy is computed on the network naap.bench.network.build_network makes right after
`torch.manual_seed(seed)`: with the recipe's first seed (the default, 20220819) that is the very
network the recorded training run started from. Settings, all recorded in the provenance:

    synflow    Tanaka et al. 2020: |theta| weights, BatchNorm in eval mode (an identity at
               initialisation, as the reference code's copy without BatchNorm), float64, one
               all-ones input; sum over conv and linear weights of |theta * dR/dtheta|, R the
               summed output. Data-free by definition.
    snip       Lee et al. 2019: sum over conv and linear weights of |w * dL/dw|, L the
               cross-entropy of one batch (train mode).
    grad_norm  Abdelfattah et al. 2021: sum over conv and linear layers of ||dL/dw||_2, same batch.
    jacob_cov  Mellor et al. 2020 (v1): the correlations of the per-image input gradients of the
               summed output; -sum(log(v + 1e-5) + 1 / (v + 1e-5)) over their eigenvalues v
               (eigenvalues below 0 from rounding are taken as 0).
    naswot     Mellor et al. 2021: log |det K|, K[i, j] = the number of ReLUs on which images i and
               j agree (both active or both inactive), summed over layers; train mode.
    zen        Lin et al. 2021: weights redrawn from N(0, 1) (BatchNorm 1/0), train mode;
               log E|f(x) - f(x + 0.01 eps)| (f: the features before global pooling, summed
               over channels and positions) + sum over BatchNorm layers of
               log sqrt(mean running_var). Data-free by definition (x, eps Gaussian).

Data: snip, grad_norm, jacob_cov and naswot read one batch of `batch_size` images and labels.
With `images` given (the recipe's real training images, normalised as for training) they read
those; data-free (NAAP-440's published release has no images here) they read standard Gaussian
images and uniformly drawn labels from a torch.Generator seeded with `seed`.

Computed on the CPU with one thread, so the numbers are the same on every run of one PyTorch
version (tests/rebuild/test_proxies.py recomputes stored rows: exactly where the CPU and PyTorch match).
"""
from __future__ import annotations

import contextlib
import copy

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from naap.bench.network import GLOBAL_RNG_LOCK, build_network
from naap.bench.space import scheme_from_dicts
from naap.bench.tables import PROXIES

SEED = 20220819
BATCH_SIZE = 64
ZEN_MIXUP = 0.01
JACOB_COV_EPS = 1e-5


def _weighted_layers(net: nn.Module) -> list[nn.Module]:
    return [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def synflow(net: nn.Module, shape: tuple[int, int, int]) -> float:
    net = copy.deepcopy(net).double().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    net(torch.ones((1, *shape), dtype=torch.float64)).sum().backward()
    return float(sum((m.weight.detach() * m.weight.grad).abs().sum() for m in _weighted_layers(net)))


def _loss_gradients(net: nn.Module, images, labels) -> list[nn.Module]:
    net = copy.deepcopy(net).train()
    F.cross_entropy(net(images), labels).backward()
    return _weighted_layers(net)


def snip(net: nn.Module, images, labels) -> float:
    return float(sum((m.weight.detach() * m.weight.grad).abs().sum() for m in _loss_gradients(net, images, labels)))


def grad_norm(net: nn.Module, images, labels) -> float:
    return float(sum(m.weight.grad.norm() for m in _loss_gradients(net, images, labels)))


def jacob_cov(net: nn.Module, images) -> float:
    net = copy.deepcopy(net).train()
    x = images.clone().requires_grad_(True)
    out = net(x)
    out.backward(torch.ones_like(out))
    correlations = np.corrcoef(x.grad.reshape(len(x), -1).double().numpy())
    eigenvalues = np.clip(np.linalg.eigvalsh(correlations), 0.0, None)
    return float(-np.sum(np.log(eigenvalues + JACOB_COV_EPS) + 1.0 / (eigenvalues + JACOB_COV_EPS)))


def naswot(net: nn.Module, images) -> float:
    """The ReLU codes are read off each BatchNorm's output (the ReLU's input: active where > 0)."""
    net = copy.deepcopy(net).train()
    kernel = torch.zeros(len(images), len(images), dtype=torch.float64)

    def record(module, inputs, output):
        codes = (output > 0).flatten(1).double()
        kernel.add_(codes @ codes.T + (1 - codes) @ (1 - codes).T)

    hooks = [m.register_forward_hook(record) for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        net(images)
    for hook in hooks:
        hook.remove()
    return float(torch.linalg.slogdet(kernel)[1])


def zen(net: nn.Module, shape: tuple[int, int, int], generator: torch.Generator, batch_size: int) -> float:
    net = copy.deepcopy(net).train()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.normal_(generator=generator)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        x = torch.randn((batch_size, *shape), generator=generator)
        noise = torch.randn((batch_size, *shape), generator=generator)
        difference = (net.blocks(x) - net.blocks(x + ZEN_MIXUP * noise)).abs().sum(dim=(1, 2, 3)).mean()
        scaling = sum(torch.log(torch.sqrt(m.running_var.mean())) for m in net.modules()
                      if isinstance(m, nn.BatchNorm2d))
    return float(torch.log(difference) + scaling)


@contextlib.contextmanager
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def compute_proxies(scheme, images: torch.Tensor | None = None, labels: torch.Tensor | None = None, *,
                    in_channels: int = 3, input_size: int = 32, num_classes: int = 10,
                    batch_size: int = BATCH_SIZE, seed: int = SEED) -> dict[str, float]:
    """The six proxies of one scheme (see the module docstring). `images` (N x C x H x W, normalised
    as for training) and `labels` (N) replace the Gaussian batch of the data-reading proxies."""
    shape = (in_channels, input_size, input_size)
    with _one_thread():
        with GLOBAL_RNG_LOCK:
            torch.manual_seed(seed)
            net = build_network(scheme, in_channels, num_classes)
        generator = torch.Generator().manual_seed(seed)
        if images is None:
            images = torch.randn((batch_size, *shape), generator=generator)
            labels = torch.randint(0, num_classes, (batch_size,), generator=generator)
        elif labels is None or len(labels) != len(images) or tuple(images.shape[1:]) != shape:
            raise ValueError(f"images must be N x {' x '.join(map(str, shape))} with N labels")
        images = images.float()
        return {"synflow": synflow(net, shape), "snip": snip(net, images, labels),
                "grad_norm": grad_norm(net, images, labels), "jacob_cov": jacob_cov(net, images),
                "naswot": naswot(net, images),
                "zen": zen(net, shape, torch.Generator().manual_seed(seed), batch_size)}


def proxy_table(architectures: pd.DataFrame, images=None, labels=None, progress: bool = True, **options) -> pd.DataFrame:
    """One row per architecture (arch_id and the six proxies), from architectures.parquet's layers."""
    rows = [{"arch_id": arch_id, **compute_proxies(scheme_from_dicts(layers), images, labels, **options)}
            for arch_id, layers in tqdm(list(zip(architectures["arch_id"], architectures["layers"])),
                                        desc="proxies", unit="arch", disable=not progress)]
    return pd.DataFrame(rows, columns=["arch_id", *PROXIES])

