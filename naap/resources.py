"""Files shipped with naap: the NAAP-440 dataset (data/naap440/) and the recipes (recipes/).

In the repository they sit at the top level. A wheel carries them inside the package, at the
same relative paths under naap/ (pyproject.toml maps them there); an editable install imports
naap from the repository, where they are one folder up. `shipped` finds them either way, so
`naap.load()` works from any working directory.
"""
from __future__ import annotations

from pathlib import Path

from naap.errors import NaapError, UnknownKey

PACKAGE = Path(__file__).resolve().parent
NAAP440 = "data/naap440"
RECIPES = "recipes"


def shipped(relative: str) -> Path:
    """The path of a shipped file or folder, given by its path in the repository."""
    for root in (PACKAGE, PACKAGE.parent):
        if (root / relative).exists():
            return root / relative
    raise NaapError(f"{relative}: not found in this installation of naap (looked under {PACKAGE} and {PACKAGE.parent})")


def shipped_recipes() -> dict[str, Path]:
    """The recipes shipped with naap, by name (the file name without .yaml), sorted."""
    return {path.stem: path for path in sorted(shipped(RECIPES).glob("*.yaml"), key=lambda path: path.stem)}


def recipe_path(recipe: str | Path) -> Path:
    """The file of a recipe given as a path or as the name of a shipped one (`naap440`): a path
    that exists, or that has a folder or a suffix, is a path; a bare name is looked up among the
    shipped recipes."""
    path = Path(recipe)
    if path.exists() or path.suffix or len(path.parts) != 1:
        return path
    known = shipped_recipes()
    if path.name not in known:
        raise UnknownKey(f"{recipe}: no such recipe file, and not the name of a shipped recipe "
                         f"({', '.join(known)}; `naap recipes` lists them)")
    return known[path.name]
