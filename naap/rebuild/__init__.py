"""The builder: a recipe (naap.rebuild.recipe) trained into a dataset folder, one (architecture, seed)
at a time or many at once, on CPUs or GPUs, under torchrun or as a job array, resumable, with the
paper's numbers. Every numeric and device setting is in naap.rebuild.settings."""
from naap._lazy import lazy_exports

_EXPORTS = {
    "load_recipe": "naap.rebuild.recipe:load_recipe", "Recipe": "naap.rebuild.recipe:Recipe",
    "train": "naap.rebuild.train:train", "epoch_order": "naap.rebuild.train:epoch_order",
    "load_dataset": "naap.rebuild.datasets:load_dataset", "settings": "naap.rebuild.settings",
    "make_plan": "naap.rebuild.jobs:make_plan", "merge": "naap.rebuild.merge:merge",
    "compute_proxies": "naap.rebuild.proxies:compute_proxies",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
