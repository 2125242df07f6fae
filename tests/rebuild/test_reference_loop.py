"""naap's training against the paper's own training loop: bit-identical, epoch by epoch.

The oracle is tests/oracle.py's paper_training, the published create_dataset.py's loop.
Both sides run in this process, under the same settings and thread count (on CUDA:
tests/rebuild/test_cuda.py).
"""

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from naap.rebuild import settings
from naap.rebuild.datasets import load_dataset, write_synthetic_cifar10
from naap.rebuild.recipe import DatasetSpec
from naap.rebuild.train import epoch_order, train
from tests.oracle import SCHEMES, SEED, TRAINING, paper_training


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
