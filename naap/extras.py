"""The optional parts of naap (pyproject.toml's extras) and a guard that turns a missing library of
one into a one-line error naming the extra to install.

`pip install naap` is the data, the query API, search and plots; `naap[build]` adds PyTorch for
`naap dataset`, proxies and networks; `naap[board]` the regressors of `naap leaderboard`.
"""
from __future__ import annotations

from contextlib import contextmanager

from naap.errors import MissingExtra

# extra -> {module imported: the distribution pip installs}; tests/system/test_packaging.py checks
# that these are the extras of pyproject.toml.
EXTRAS = {
    "build": {"torch": "torch", "torchvision": "torchvision", "tqdm": "tqdm"},
    "board": {"sklearn": "scikit-learn", "xgboost": "xgboost", "lightgbm": "lightgbm", "scipy": "scipy",
              "joblib": "joblib", "threadpoolctl": "threadpoolctl", "tqdm": "tqdm"},
}


@contextmanager
def needs(what: str, extra: str | None = None):
    """Raise MissingExtra ("`what` needs scikit-learn: pip install 'naap[board]'") where the block
    fails to import a library of an extra: of `extra`, or of the first extra that has it."""
    try:
        yield
    except ModuleNotFoundError as error:
        module = (error.name or "").split(".")[0]
        owners = [name for name, modules in EXTRAS.items() if module in modules]
        if not owners:
            raise
        chosen = extra if extra in owners else owners[0]
        raise MissingExtra(f"{what} needs {EXTRAS[chosen][module]}: pip install 'naap[{chosen}]'") from None
