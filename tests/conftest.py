import shutil
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


@pytest.fixture(scope="session")
def smoke_built(tmp_path_factory) -> Path:
    """recipes/smoke.yaml built once per session by one plain `naap dataset` process (4
    architectures x 2 seeds, 2 epochs)."""
    from tests.runs import SMOKE, dataset  # tests.runs imports this module for REPO

    return dataset(tmp_path_factory.mktemp("smoke-built"), SMOKE, "smoke")


@pytest.fixture(scope="module")
def smoke_run(workdir, smoke_built) -> Path:
    """The smoke run as a module's own folder, workdir/smoke (a copy of the session's one run,
    with the synthetic images it was trained on in workdir/data/synthetic): the reference run of
    a module, which its tests may change."""
    shutil.copytree(smoke_built.parent / "data", workdir / "data", dirs_exist_ok=True)
    return Path(shutil.copytree(smoke_built, workdir / "smoke", symlinks=True))


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: an end-to-end run of a minute or more (still part of `make test`)")
