"""`bench.network(arch, seed)` is the network training starts from: the same weights as the one
naap.rebuild.train builds for that seed (watched inside train), and the counts of the table
(recounted with hooks on a forward pass, by the rules of docs/benchmark.md)."""
import pytest
import torch
from torch import nn

import naap
from naap.errors import InvalidValue
from naap.rebuild import settings
from naap.rebuild import train as train_module
from naap.rebuild.datasets import load_dataset, write_synthetic_cifar10
from naap.rebuild.recipe import DatasetSpec, Training

TRAINING = Training(epochs=1, batch_size=64, lr=0.1, momentum=0.9, weight_decay=1e-4, nesterov=False,
                    lr_factor=0.1, lr_cycle=3, mean=0.5, std=0.5, seeds=(7,))


@pytest.fixture(scope="module")
def bench():
    return naap.load()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    settings.apply("cpu")
    root = tmp_path_factory.mktemp("synthetic")
    write_synthetic_cifar10(root, train_size=128, test_size=64)
    return load_dataset(DatasetSpec("cifar10-folder", root=str(root)), TRAINING)


def weights_training_starts_from(monkeypatch, scheme, data, seed) -> dict:
    """The state of the network train() builds, copied right after it is built."""
    started = {}
    build = train_module.build_network

    def build_and_copy(*args, **kwargs):
        net = build(*args, **kwargs)
        started.update({k: v.clone() for k, v in net.state_dict().items()})
        return net
    monkeypatch.setattr(train_module, "build_network", build_and_copy)
    train_module.train(scheme, data, TRAINING, seed)
    return started


@pytest.mark.parametrize("arch_id, seed", [(10, None), (10, 7), (440, 20220819), (211, 3)])
def test_the_network_is_the_one_training_starts_from(bench, data, monkeypatch, arch_id, seed):
    torch.manual_seed(12345)
    before = torch.random.get_rng_state()
    net = bench.network(arch_id, seed=seed)
    assert torch.equal(torch.random.get_rng_state(), before)  # the caller's generator is left as it was
    started = weights_training_starts_from(monkeypatch, bench.arch(arch_id).layers, data,
                                           bench.seeds[0] if seed is None else seed)
    mine = net.state_dict()
    assert list(mine) == list(started)
    assert all(torch.equal(mine[k], started[k]) for k in mine)
    other = bench.network(arch_id, seed=(seed or 0) + 1).state_dict()
    assert not all(torch.equal(mine[k], other[k]) for k in mine)


def macs_by_hooks(net: nn.Module) -> int:
    """MACs of one 1x3x32x32 forward pass, recounted from the modules' real inputs and outputs by
    the table of docs/benchmark.md (section Parameter and MAC counts)."""
    total, last = [0], {}

    def hook(module, inputs, output):
        if isinstance(module, nn.Conv2d):
            total[0] += output.numel() * module.in_channels * module.kernel_size[0] * module.kernel_size[1]
        elif isinstance(module, nn.BatchNorm2d):
            total[0] += 4 * output.numel()
        elif isinstance(module, nn.Linear):
            total[0] += module.in_features * module.out_features
        elif module is net.blocks:
            last["shape"] = output.shape
    handles = [m.register_forward_hook(hook) for m in net.modules()]
    with torch.no_grad():
        net.eval()(torch.zeros(1, 3, 32, 32))
    for handle in handles:
        handle.remove()
    _, channels, height, width = last["shape"]
    return total[0] + (height * width + 1) * channels  # global average pooling


def test_every_network_has_the_tables_parameter_and_mac_counts(bench):
    for arch_id, row in bench.architectures.iterrows():
        net = bench.network(arch_id)
        assert sum(p.numel() for p in net.parameters()) == row["num_params"], arch_id
        assert macs_by_hooks(net) == row["num_macs"], arch_id


@pytest.mark.parametrize("seed", [-1, 2**63, 1.5, True])
def test_a_bad_seed_says_the_range(bench, seed):
    with pytest.raises(InvalidValue, match="must be an integer from 0 to 2\\*\\*63 - 1"):
        bench.network(10, seed=seed)
