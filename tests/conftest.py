from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The published release, byte for byte, inside the repository: no test depends on a file outside it.
RELEASE_DIR = REPO / "data" / "naap440-release"


@pytest.fixture(scope="session")
def release_dir() -> Path:
    return RELEASE_DIR


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: an end-to-end run of a minute or more (still part of `make test`)")
