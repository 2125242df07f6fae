from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The published release, byte for byte, inside the repository: no test depends on a file outside it.
RELEASE_DIR = REPO / "data" / "naap440-release"


@pytest.fixture(scope="session")
def release_dir() -> Path:
    return RELEASE_DIR
