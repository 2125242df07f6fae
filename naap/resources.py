"""Files shipped with naap: the NAAP-440 dataset (data/naap440/) and the recipes (recipes/).

In the repository they sit at the top level. A wheel carries them inside the package, at the
same relative paths under naap/ (pyproject.toml maps them there); an editable install imports
naap from the repository, where they are one folder up. `shipped` finds them either way, so
`naap.load()` works from any working directory.
"""
from __future__ import annotations

from pathlib import Path

from naap.errors import NaapError

PACKAGE = Path(__file__).resolve().parent
NAAP440 = "data/naap440"


def shipped(relative: str) -> Path:
    """The path of a shipped file or folder, given by its path in the repository."""
    for root in (PACKAGE, PACKAGE.parent):
        if (root / relative).exists():
            return root / relative
    raise NaapError(f"{relative}: not found in this installation of naap (looked under {PACKAGE} and {PACKAGE.parent})")
