import pandas as pd
import pytest
import torch

from naap.bench.counts import count_macs, count_params
from naap.bench.network import build_network
from naap.bench.space import enumerate_schemes
from naap.rebuild.recipe import load_recipe
from tests.conftest import REPO

SCHEMES = enumerate_schemes(load_recipe(REPO / "recipes" / "naap440.yaml").search_space)


def test_counts_equal_all_440_published_rows(release_dir):
    wide = pd.read_csv(release_dir / "naap440.csv")
    assert [count_params(s) for s in SCHEMES] == wide["NumParams"].tolist()
    assert [count_macs(s) for s in SCHEMES] == wide["NumMACs"].tolist()


@pytest.mark.parametrize("index", [0, 1, 57, 211, 439])
@pytest.mark.parametrize("in_channels,size", [(3, 32), (1, 28)])
def test_built_network_has_the_counted_parameters_and_shapes(index, in_channels, size):
    net = build_network(SCHEMES[index], in_channels=in_channels)
    assert sum(p.numel() for p in net.parameters()) == count_params(SCHEMES[index], in_channels)
    assert net(torch.zeros(2, in_channels, size, size)).shape == (2, 10)


def test_residual_layer_adds_its_input_after_the_relu():
    scheme = next(s for s in SCHEMES if s[-1].residual)
    block = build_network(scheme).blocks[-1]
    x = torch.randn(1, scheme[-1].width, 4, 4)
    assert torch.allclose(block(x), x + torch.relu(block.bn(block.conv(x))))


def test_initialisation_follows_the_spec():
    torch.manual_seed(0)
    net = build_network(SCHEMES[-1])
    for block in net.blocks:
        fan_out = block.conv.out_channels * block.conv.kernel_size[0] ** 2
        std = (2.0 / fan_out) ** 0.5  # kaiming normal, fan_out, leaky_relu(0) gain sqrt(2)
        assert abs(block.conv.weight.std().item() / std - 1) < 0.25
        assert torch.equal(block.bn.weight, torch.ones_like(block.bn.weight))
        assert torch.equal(block.bn.bias, torch.zeros_like(block.bn.bias))
        assert block.conv.bias is None and block.conv.padding[0] == block.conv.kernel_size[0] // 2
    assert abs(net.classifier.weight.std().item() - 0.01) < 0.002
    assert torch.equal(net.classifier.bias, torch.zeros(10))


def test_mac_count_follows_the_convention_on_a_hand_worked_scheme():
    from naap.bench.space import Layer

    scheme = (Layer(3, 12, 2, False), Layer(3, 16, 2, False), Layer(1, 16, 1, True))
    conv = 12 * 16 * 16 * 3 * 9 + 16 * 8 * 8 * 12 * 9 + 16 * 8 * 8 * 16
    bn = 4 * (12 * 16 * 16 + 16 * 8 * 8 * 2)
    assert count_macs(scheme) == conv + bn + (8 * 8 + 1) * 16 + 16 * 10
