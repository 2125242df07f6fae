from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The published release, byte for byte, inside the repository: no test depends on a file outside it.
RELEASE_DIR = REPO / "data" / "naap440-release"


@pytest.fixture(scope="session")
def release_dir() -> Path:
    return RELEASE_DIR


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, request) -> Path:
    """The working directory of one test module's runs, named after it; a run of the smoke recipe
    writes its synthetic images there (data/synthetic)."""
    return tmp_path_factory.mktemp(request.module.__name__.rpartition(".")[2])


@pytest.fixture(scope="module")
def smoke_run(workdir) -> Path:
    """recipes/smoke.yaml built by one plain `naap dataset` process into workdir/smoke (4
    architectures x 2 seeds, 2 epochs): the reference run of a module."""
    from tests.runs import SMOKE, dataset  # tests.runs imports this module for REPO

    return dataset(workdir, SMOKE, "smoke")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: an end-to-end run of a minute or more (still part of `make test`)")
