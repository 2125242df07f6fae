"""The query API: `naap.load()` opens a dataset directory as a `Benchmark`, queried with pandas frames.

    bench = naap.load()                                  # the shipped NAAP-440
    bench.query("k3w12s2 k3w16s2 k1w16s1r", epoch=9)     # one row per seed
    bench.query(None, epoch=9)                           # all architectures at once
    bench.curves([1, 2])                                 # every epoch of arch 1 and 2

Every method takes architectures as one key or a list of keys, a key being an arch_id, a string
in the notation of naap.bench.arch, an `Arch`, a list of layers, or an arch_hash; None means all.
The columns and their units are in docs/benchmark.md, section Units.

One index: every frame and series a Benchmark returns is indexed by `arch_id`, so `.loc[k]` is
architecture k. It is unique where there is one row per architecture (`architectures`,
`final_accuracy()`, `cost()`) and repeats where there is one row per run or per epoch (`epochs`,
`query()`, `curves()`, whose `seed` and `epoch` stay columns).
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
from naap.errors import InvalidType, InvalidValue, NaapError, UnknownKey
from naap.extras import needs
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


def _is_layer_like(item) -> bool:
    """A layer, or what was meant as one: a mapping, or a short tuple of plain numbers (a layer
    that lacks a field is refused by Arch.from_layers, which names the field)."""
    return _is_layer(item) or (isinstance(item, (tuple, list)) and 0 < len(item) <= 4 and all(
        isinstance(value, (int, np.integer, bool, np.bool_)) for value in item))


def _is_one_arch(key) -> bool:
    """A single key, not a list of keys: a list of layers is one architecture."""
    if isinstance(key, (str, Arch, int, np.integer)):
        return True
    return (isinstance(key, (list, tuple)) and len(key) > 0 and all(_is_layer_like(item) for item in key)
            and any(not isinstance(item, (int, np.integer)) for item in key))


class Benchmark:
    """The two tables of a dataset directory, with look-ups by architecture.

    architectures: one row per architecture, indexed by arch_id (in order); epochs: one row per
    architecture, seed and epoch, indexed by arch_id; provenance: the JSON the tables carry; path:
    the directory.
    """

    def __init__(self, tables: Tables, provenance: dict, path: Path):
        self.architectures = tables.architectures.sort_values("arch_id").set_index("arch_id")
        self.epochs = tables.epochs.sort_values(["arch_id", "seed", "epoch"]).set_index("arch_id")
        self.provenance = provenance
        self.path = Path(path)
        recipe = provenance.get("recipe")
        name = recipe.get("name") if isinstance(recipe, dict) else None
        self.name = name if isinstance(name, str) else self.path.name
        self.num_epochs = int(self.epochs["epoch"].max()) if len(self.epochs) else 0  # 0: every run diverged at once
        self.seeds = sorted(int(s) for s in self.epochs["seed"].unique())
        self._id_of_hash = dict(zip(self.architectures["arch_hash"], self.architectures.index.tolist()))
        self._ids = self.architectures.index.to_numpy()
        self._id_set = frozenset(self._ids.tolist())

    def __len__(self) -> int:
        return len(self.architectures)

    def __repr__(self) -> str:
        return (f"<Benchmark {self.name}: {len(self)} architectures, {len(self.seeds)} seed(s), "
                f"{self.num_epochs} epochs, from {self.path}>")

    # --- architectures ---------------------------------------------------------------------

    def arch(self, key) -> Arch:
        """The architecture a key names."""
        return Arch.from_layers(self.architectures.at[self.arch_id(key), "layers"])

    def arch_id(self, key) -> int:
        """The arch_id of one key (an id, a string, an Arch, a list of layers or an arch_hash)."""
        if isinstance(key, (bool, np.bool_)) or not _is_one_arch(key):
            raise InvalidType(f"{key!r} is not one architecture: give an arch_id, a string such as "
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
        raise InvalidType(f"{archs!r}: give one architecture or a list of them")

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

    def network(self, arch, seed: int | None = None):
        """The torch module of `arch` (any key) with the weights its training starts from under
        `seed` (default: the dataset's first seed), for the dataset's image shape and classes;
        its parameter and MAC counts are the architectures table's. Needs naap[build] (PyTorch)."""
        scheme = self.arch(arch).layers
        seed = self.seeds[0] if seed is None else seed
        if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**63:
            raise InvalidValue(f"seed {seed!r}: must be an integer from 0 to 2**63 - 1 (this dataset's: "
                               f"{', '.join(map(str, self.seeds))})")
        # PyTorch loads here, on the first network: the data and the queries do not need it
        with needs("Benchmark.network", "build"):
            from naap.bench.network import initial_network
        in_channels, _, num_classes = self.shape
        return initial_network(scheme, int(seed), in_channels, num_classes)

    # --- metrics ---------------------------------------------------------------------------

    def query(self, archs=None, epoch: int | None = None, columns=None) -> pd.DataFrame:
        """The epochs table at one 1-based `epoch` (default: the last): one row per architecture
        and seed, indexed by arch_id, architectures in the order given. A run that diverged before
        `epoch` has no row. `columns`: only those (default: all)."""
        epoch = self.valid_epoch(epoch)
        rows = self.epochs[self.epochs["epoch"].to_numpy() == epoch]
        rows = rows if columns is None else rows[self.valid_columns(columns)]
        return rows if archs is None else self._select(rows, archs)

    def curves(self, archs=None, columns=None) -> pd.DataFrame:
        """Every epoch of `archs`: one row per architecture, seed and epoch, indexed by arch_id.
        `columns`: only those (default: all)."""
        rows = self.epochs if columns is None else self.epochs[self.valid_columns(columns)]
        return rows.copy() if archs is None else self._select(rows, archs)

    def final_accuracy(self, archs=None) -> pd.Series:
        """Test accuracy after the last epoch, mean over the seeds, indexed by arch_id; NaN where a
        run did not reach the last epoch (it diverged)."""
        last = self.epochs[self.epochs["epoch"] == self.num_epochs]
        by_seed = last.set_index("seed", append=True)["test_accuracy"].unstack("seed").reindex(
            index=self._ids, columns=self.seeds)
        final = by_seed.mean(axis=1, skipna=False).rename("final_accuracy").rename_axis("arch_id")
        return final if archs is None else final.loc[self.ids(archs)]

    def cost(self, archs=None) -> pd.DataFrame:
        """What one epoch of each architecture costs, indexed by arch_id: num_params, num_macs (per
        image), epoch_flop (2 FLOP per MAC, training at three times the forward cost on the
        training images plus a forward pass over the test images) and epoch_seconds (the mean
        measured epoch, NaN where no time was recorded, as in the published release)."""
        n_train, n_test = self.images
        frame = self.architectures[["num_params", "num_macs"]].copy()
        frame["epoch_flop"] = epoch_flop(frame["num_macs"], n_train, n_test)
        frame["epoch_seconds"] = self.epochs.groupby(level="arch_id")["epoch_seconds"].mean()
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

    @property
    def shape(self) -> tuple[int, int, int]:
        """(in_channels, input_size, num_classes) of the images: as recorded by a rebuild, else CIFAR-10's."""
        return recorded_shape(self.path / "architectures.parquet", self.provenance)

    # --- helpers -----------------------------------------------------------------------------

    def objective(self, budget: float | None = None, cost: str = "auto", resume: bool = True) -> Objective:
        """A simulated-search objective on this benchmark (naap.bench.search.Objective): `budget` in
        its cost unit or None; `cost` "auto", "seconds" or "flop"; `resume=False` charges every
        evaluation from the first epoch."""
        return Objective(self, budget=budget, cost=cost, resume=resume)

    def plot_curves(self, archs, axes=None):
        """Test accuracy and training loss against epoch: naap.bench.plot.learning_curves(self, archs, axes)."""
        return learning_curves(self, archs, axes)

    def valid_epoch(self, epoch: int | None) -> int:
        """`epoch` checked against the recorded epochs (1-based); None: the last."""
        if epoch is None:
            return self.num_epochs
        if isinstance(epoch, (bool, np.bool_)) or not isinstance(epoch, (int, np.integer)) \
                or not 1 <= epoch <= self.num_epochs:
            raise InvalidValue(f"epoch {epoch!r}: {self.name} records epochs 1 to {self.num_epochs} (1-based)")
        return int(epoch)

    def valid_columns(self, columns) -> list[str]:
        """`columns` (one name or a list) checked against the epochs table's; None: all of them."""
        known = list(self.epochs.columns)
        if columns is None:
            return known
        columns = [columns] if isinstance(columns, str) else list(columns)
        unknown = [c for c in columns if c not in known]
        if unknown:
            raise UnknownKey(f"column {unknown[0]!r} is not in {self.name}'s epochs table; its columns are "
                             f"{', '.join(known)} (arch_id is the index)")
        return columns

    def _select(self, rows: pd.DataFrame, archs) -> pd.DataFrame:
        """The rows of `archs` (rows sorted by arch_id), architectures in the order given, repeated
        where asked twice: positions found by binary search, as a merge would but keeping the index."""
        ids, index = self.ids(archs), rows.index.to_numpy()
        left, right = np.searchsorted(index, ids, "left"), np.searchsorted(index, ids, "right")
        counts = right - left
        starts = np.repeat(left - (np.cumsum(counts) - counts), counts)
        return rows.iloc[starts + np.arange(counts.sum())]


def _fields(arch: Arch, depth: int) -> list[int]:
    """The layer fields of `arch` as integers, padded with -1 to `depth` layers."""
    values = [int(getattr(layer, name)) for layer in arch.layers for name in FIELDS]
    return values + [-1] * (4 * (depth - len(arch.layers)))
