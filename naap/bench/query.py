"""The query API: `naap.load()` opens a dataset directory as a `Benchmark`, queried with pandas frames.

    bench = naap.load()                                  # the shipped NAAP-440
    bench.query("k3w12s2 k3w16s2 k1w16s1r", epoch=9)     # one row per seed
    bench.query(None, epoch=9)                           # all architectures at once
    bench.curves([1, 2])                                 # every epoch of arch 1 and 2

Every method takes architectures as one key or a list of keys, a key being an arch_id, a string
in the notation of naap.bench.arch, an `Arch`, a list of layers, or an arch_hash; None means all.
The columns and their units are in docs/benchmark.md, section Units.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from naap._io import read_provenance
from naap.bench.arch import FIELDS, Arch, UnknownArchitecture, outside_space, search_space
from naap.bench.counts import epoch_flop
from naap.bench.plot import learning_curves
from naap.bench.search import Objective
from naap.bench.space import Layer
from naap.bench.tables import IMPORTED, Tables, load_tables, recorded_shape
from naap.errors import NaapError
from naap.resources import NAAP440, shipped

_HASH = re.compile(r"[0-9a-f]{16}")
# Training and test images of one epoch, for datasets whose provenance does not record them: the
# imported release was trained on all of CIFAR-10 (docs/benchmark.md, section Training).
RELEASE_IMAGES = (50_000, 10_000)


def load(path: str | Path | None = None) -> Benchmark:
    """The dataset directory at `path` (default: the NAAP-440 shipped with naap) as a Benchmark."""
    path = shipped(NAAP440) if path is None else Path(path)
    return Benchmark(load_tables(path), read_provenance(path / "architectures.parquet"), path)


def _is_layer(item) -> bool:
    return isinstance(item, (Layer, Mapping)) or (
        isinstance(item, (tuple, list)) and len(item) == 4 and isinstance(item[3], (bool, np.bool_)))


def _is_one_arch(key) -> bool:
    """A single key, not a list of keys: a list of layers is one architecture."""
    if isinstance(key, (str, Arch, int, np.integer)):
        return True
    return isinstance(key, (list, tuple)) and len(key) > 0 and all(_is_layer(item) for item in key)


class Benchmark:
    """The two tables of a dataset directory, with look-ups by architecture.

    architectures: one row per architecture (arch_id order); epochs: one row per architecture,
    seed and epoch; provenance: the JSON the tables carry; path: the directory.
    """

    def __init__(self, tables: Tables, provenance: dict, path: Path):
        self.architectures = tables.architectures.sort_values("arch_id", ignore_index=True)
        self.epochs = tables.epochs.sort_values(["arch_id", "seed", "epoch"], ignore_index=True)
        self.provenance = provenance
        self.path = Path(path)
        recipe = provenance.get("recipe")
        name = recipe.get("name") if isinstance(recipe, dict) else None
        self.name = name if isinstance(name, str) else self.path.name
        self.num_epochs = int(self.epochs["epoch"].max()) if len(self.epochs) else 0  # 0: every run diverged at once
        self.seeds = sorted(int(s) for s in self.epochs["seed"].unique())
        self._id_of_hash = dict(zip(self.architectures["arch_hash"], self.architectures["arch_id"].tolist()))
        self._ids = self.architectures["arch_id"].to_numpy()
        self._id_set = frozenset(self._ids.tolist())

    def __len__(self) -> int:
        return len(self.architectures)

    def __repr__(self) -> str:
        return (f"<Benchmark {self.name}: {len(self)} architectures, {len(self.seeds)} seed(s), "
                f"{self.num_epochs} epochs, from {self.path}>")

    # --- architectures ---------------------------------------------------------------------

    def arch(self, key) -> Arch:
        """The architecture a key names."""
        row = self.architectures.iloc[int(np.searchsorted(self._ids, self.arch_id(key)))]
        return Arch.from_layers(row["layers"])

    def arch_id(self, key) -> int:
        """The arch_id of one key (an id, a string, an Arch, a list of layers or an arch_hash)."""
        if isinstance(key, (bool, np.bool_)) or not _is_one_arch(key):
            raise TypeError(f"{key!r} is not one architecture: give an arch_id, a string such as "
                            f"'k3w12s2 k3w16s2 k1w16s1r', an Arch, a list of layers or an arch_hash")
        if isinstance(key, (int, np.integer)):
            if key not in self._id_set:
                raise UnknownArchitecture(f"arch_id {key} is not in {self.name} "
                                          f"(its arch_ids run from {self._ids.min()} to {self._ids.max()})")
            return int(key)
        if isinstance(key, str) and _HASH.fullmatch(key):
            if key not in self._id_of_hash:
                raise UnknownArchitecture(f"arch_hash {key} is not in {self.name}")
            return self._id_of_hash[key]
        arch = key if isinstance(key, Arch) else Arch.parse(key) if isinstance(key, str) else Arch.from_layers(key)
        if arch.hash not in self._id_of_hash:
            raise UnknownArchitecture(self._why_unknown(arch))
        return self._id_of_hash[arch.hash]

    def ids(self, archs=None) -> np.ndarray:
        """The arch_ids of `archs` (one key or a list of keys) in the order given; None: all."""
        if archs is None:
            return self._ids.copy()
        if _is_one_arch(archs):
            return np.array([self.arch_id(archs)])
        if isinstance(archs, (np.ndarray, pd.Series, pd.Index)) and archs.dtype.kind in "iu":
            ids = np.asarray(archs)
            unknown = ids[~np.isin(ids, self._ids)]
            if unknown.size:
                self.arch_id(int(unknown[0]))  # raises, naming it
            return ids
        if isinstance(archs, Iterable) and not isinstance(archs, Mapping):
            return np.array([self.arch_id(key) for key in archs], dtype=np.int64)
        raise TypeError(f"{archs!r}: give one architecture or a list of them")

    def nearest(self, arch: Arch) -> tuple[int, int]:
        """(arch_id, changed fields) of the dataset's architecture closest to `arch`: the fewest
        layer fields that differ, position by position, a missing or extra layer counting its four
        fields; among those, the smallest total difference of the values (width 32 is nearer to
        31 than width 16), then the smallest arch_id."""
        archs = [Arch.from_layers(layers) for layers in self.architectures["layers"]]
        depth = max(len(arch.layers), *(len(a.layers) for a in archs))
        matrix, target = np.array([_fields(a, depth) for a in archs]), np.array(_fields(arch, depth))
        changed = (matrix != target).sum(axis=1)
        best = int(np.lexsort((self._ids, np.abs(matrix - target).sum(axis=1), changed))[0])
        return int(self._ids[best]), int(changed[best])

    def _why_unknown(self, arch: Arch) -> str:
        recipe = self.provenance.get("recipe")
        recipe = recipe.get("contents") if isinstance(recipe, dict) else None
        recipe = recipe if isinstance(recipe, dict) else None
        reason = outside_space(arch, search_space(recipe)) if recipe else None
        if reason is None:
            reason = (f"it is in the search space but not among the {len(self)} architectures of the dataset"
                      if recipe else "it is not among its architectures")
        nearest, changed = self.nearest(arch)
        return (f"'{arch}' is not in {self.name}: {reason}; the nearest architecture in it is arch_id {nearest} "
                f"'{self.arch(nearest)}' ({changed} field(s) changed)")

    # --- metrics ---------------------------------------------------------------------------

    def query(self, archs=None, epoch: int | None = None) -> pd.DataFrame:
        """The epochs table at one 1-based `epoch` (default: the last): one row per architecture
        and seed, architectures in the order given. A run that diverged before `epoch` has no row."""
        epoch = self.valid_epoch(epoch)
        rows = self.epochs[self.epochs["epoch"].to_numpy() == epoch]
        return rows.reset_index(drop=True) if archs is None else self._select(rows, archs)

    def curves(self, archs=None) -> pd.DataFrame:
        """Every epoch of `archs`: one row per architecture, seed and epoch."""
        return self.epochs.copy() if archs is None else self._select(self.epochs, archs)

    def final_accuracy(self, archs=None) -> pd.Series:
        """Test accuracy after the last epoch, mean over the seeds, indexed by arch_id; NaN where a
        run did not reach the last epoch (it diverged)."""
        last = self.epochs[self.epochs["epoch"] == self.num_epochs]
        by_seed = last.pivot(index="arch_id", columns="seed", values="test_accuracy").reindex(
            index=self._ids, columns=self.seeds)
        final = by_seed.mean(axis=1, skipna=False).rename("final_accuracy").rename_axis("arch_id")
        return final if archs is None else final.loc[self.ids(archs)]

    def cost(self, archs=None) -> pd.DataFrame:
        """What one epoch of each architecture costs, indexed by arch_id: num_params, num_macs (per
        image), epoch_flop (2 FLOP per MAC, training at three times the forward cost on the
        training images plus a forward pass over the test images) and epoch_seconds (the mean
        measured epoch, NaN where no time was recorded, as in the published release)."""
        n_train, n_test = self.images
        frame = self.architectures.set_index("arch_id")[["num_params", "num_macs"]].copy()
        frame["epoch_flop"] = epoch_flop(frame["num_macs"], n_train, n_test)
        frame["epoch_seconds"] = self.epochs.groupby("arch_id")["epoch_seconds"].mean()
        return frame if archs is None else frame.loc[self.ids(archs)]

    @property
    def images(self) -> tuple[int, int]:
        """(training images, test images) of one epoch: as recorded by a rebuild, else CIFAR-10's."""
        recorded_shape(self.path / "architectures.parquet", self.provenance)  # a malformed `dataset` is one line
        recorded = self.provenance.get("dataset")
        if recorded and "train_size" in recorded and "test_size" in recorded:
            return int(recorded["train_size"]), int(recorded["test_size"])
        if self.provenance.get("kind") == IMPORTED:
            return RELEASE_IMAGES
        raise NaapError(f"{self.path / 'architectures.parquet'}: provenance: no dataset sizes recorded, "
                        f"so the FLOP of an epoch are unknown")

    # --- helpers -----------------------------------------------------------------------------

    def objective(self, **options):
        """A simulated-search objective on this benchmark: naap.bench.search.Objective(self, **options)."""
        return Objective(self, **options)

    def plot_curves(self, archs, axes=None):
        """Test accuracy and training loss against epoch: naap.bench.plot.learning_curves(self, archs, axes)."""
        return learning_curves(self, archs, axes)

    def valid_epoch(self, epoch: int | None) -> int:
        """`epoch` checked against the recorded epochs (1-based); None: the last."""
        if epoch is None:
            return self.num_epochs
        if isinstance(epoch, (bool, np.bool_)) or not isinstance(epoch, (int, np.integer)) \
                or not 1 <= epoch <= self.num_epochs:
            raise ValueError(f"epoch {epoch!r}: {self.name} records epochs 1 to {self.num_epochs} (1-based)")
        return int(epoch)

    def _select(self, rows: pd.DataFrame, archs) -> pd.DataFrame:
        wanted = pd.DataFrame({"arch_id": self.ids(archs).astype(rows["arch_id"].dtype)})
        return wanted.merge(rows, on="arch_id", how="inner")


def _fields(arch: Arch, depth: int) -> list[int]:
    """The layer fields of `arch` as integers, padded with -1 to `depth` layers."""
    values = [int(getattr(layer, name)) for layer in arch.layers for name in FIELDS]
    return values + [-1] * (4 * (depth - len(arch.layers)))
