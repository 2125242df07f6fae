"""A package's public names, imported on first use, so that importing the package stays light
(the tables load pandas and pyarrow, training PyTorch, the leaderboard scikit-learn)."""
from __future__ import annotations

import importlib


def lazy_exports(package: str, exports: dict[str, str]):
    """(__getattr__, __dir__) for `package`: `exports` maps each public name to "module:attribute",
    or to "module" where the name is a module."""
    def __getattr__(name: str):
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, _, attribute = exports[name].partition(":")
        loaded = importlib.import_module(module)
        return getattr(loaded, attribute) if attribute else loaded

    def __dir__() -> list[str]:
        return sorted(exports)

    return __getattr__, __dir__
