from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RELEASE_DIR = REPO.parent / "shared" / "naap440-release"


@pytest.fixture
def release_dir() -> Path:
    if not (RELEASE_DIR / "naap440.csv").exists():
        pytest.skip(f"the published release is not at {RELEASE_DIR} (it sits beside the clone in ../shared)")
    return RELEASE_DIR


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: an end-to-end run of a minute or more (still part of `make test`)")
