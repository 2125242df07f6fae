"""Image datasets by name, loaded once per process and kept on the device as tensors.

Every dataset goes the same way: read the files into uint8 tensors (N, C, H, W),
normalise them on the CPU with torchvision's own float32 operations (ToTensor, then
Normalize: (x / 255 - mean) / std), and move them to the device once. Training then
indexes these tensors directly: no per-image Python, no DataLoader.

Names (recipe.DATASETS):
- `cifar10`: torchvision's download of CIFAR-10, every file checked against its md5.
- `fashion-mnist`: the original idx .gz files from a folder (Debian's
  dataset-fashion-mnist installs them in /usr/share/datasets/fashion-mnist).
- `cifar10-folder`: a folder in CIFAR-10's on-disk format, read without md5 checks
  (test fixtures).
- `synthetic`: a small learnable set written in CIFAR-10's format if missing,
  then read as `cifar10-folder`. naap writes it only into a folder it creates, or an
  empty one, and marks the folder as its own (.naap-synthetic.json); it never writes
  into a folder holding files it did not write.

CIFAR-format files are pickles: they are read with an unpickler that can build only what
the format holds (dicts, lists, strings, numbers, NumPy arrays) and refuses any other
function or class a file names, so a data file cannot run code.

A relative dataset.root is taken from the working directory, as --out is.
"""
from __future__ import annotations

import contextlib
import fcntl
import functools
import gzip
import json
import os
import pickle
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torchvision.datasets import CIFAR10
from torchvision.datasets.utils import check_integrity, download_url, extract_archive

from naap._io import atomic_write
from naap.errors import NaapError
from naap.rebuild.recipe import DatasetSpec, Training

DEFAULT_ROOTS = {"cifar10": "data/cifar10", "fashion-mnist": "/usr/share/datasets/fashion-mnist",
                 "synthetic": "data/synthetic"}
SYNTHETIC_DEFAULT_SIZES = (5000, 1000)
CIFAR10_FOLDER = CIFAR10.base_folder  # "cifar-10-batches-py"
CIFAR10_TRAIN_FILES = tuple(name for name, _ in CIFAR10.train_list)
CIFAR10_FILES = {name: md5 for name, md5 in CIFAR10.train_list + CIFAR10.test_list}
CIFAR10_FILES[CIFAR10.meta["filename"]] = CIFAR10.meta["md5"]
FASHION_MNIST_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                       "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
CLASSES = 10
SYNTHETIC_MARKER = ".naap-synthetic.json"


@dataclass
class DeviceData:
    """A dataset on one device: normalised float32 images and int64 labels (read-only, shared)."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    name: str
    in_channels: int
    input_size: int
    num_classes: int

    @property
    def shape(self) -> tuple[int, int, int]:
        """(in_channels, input_size, num_classes), as recipe.DatasetSpec.shape."""
        return self.in_channels, self.input_size, self.num_classes


def load_dataset(spec: DatasetSpec, training: Training, device: torch.device | str = "cpu", *,
                 source: Path | str | None = None) -> DeviceData:
    """The dataset a recipe names, on `device`, normalised with training.mean/std.

    A relative root is taken from the working directory. An error names the recipe file
    `source` (where given) and the field: `<source>: dataset.root: <what is wrong>`.
    """
    try:
        if spec.root is None and spec.name not in DEFAULT_ROOTS:
            raise NaapError(f"dataset.root: required for {spec.name} (the folder holding {CIFAR10_FOLDER}/)")
        root = Path(spec.root or DEFAULT_ROOTS[spec.name])
        return _load(spec.name, root.resolve(), spec.train_size, spec.test_size, spec.download,
                     training.mean, training.std, str(torch.device(device)))
    except NaapError as error:
        if source is None:
            raise
        raise NaapError(f"{source}: {error}") from None


@functools.lru_cache(maxsize=4)
def _load(name, root, train_size, test_size, download, mean, std, device) -> DeviceData:
    if name == "synthetic":
        train_size = train_size or SYNTHETIC_DEFAULT_SIZES[0]
        test_size = test_size or SYNTHETIC_DEFAULT_SIZES[1]
        _ensure_synthetic(root, train_size, test_size)
    elif name == "cifar10":
        _ensure_cifar10(root, download)
    if name == "fashion-mnist":
        raw = _read_fashion_mnist(root)
    else:
        raw = _read_cifar10_folder(root / CIFAR10_FOLDER)
    train_x, train_y = _first(raw[:2], train_size, "train_size", root)
    test_x, test_y = _first(raw[2:], test_size, "test_size", root)
    normalise = lambda x: normalise_on_host(x, mean, std).to(device)
    data = DeviceData(normalise(train_x), train_y.to(device), normalise(test_x), test_y.to(device),
                      name=name, in_channels=train_x.shape[1], input_size=train_x.shape[2], num_classes=CLASSES)
    if torch.device(device).type == "cuda":  # the copies are done before any other stream reads the data
        torch.cuda.current_stream(device).synchronize()
    return data


def normalise_on_host(images: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    """uint8 images (N, C, H, W) as float32 on the CPU, by torchvision's own operations: ToTensor's
    `x.to(float32).div(255)`, then Normalize's `sub_(mean).div_(std)` by per-channel float32 tensors.
    Not on the device: CUDA divides by a CPU scalar as a multiplication by its reciprocal
    (BinaryDivTrueKernel.cu), which gives another float32 for 126 of the 256 pixel values."""
    x = images.to(torch.float32).div(255)
    channels = x.shape[1]
    means = torch.as_tensor([mean] * channels, dtype=torch.float32).view(-1, 1, 1)
    stds = torch.as_tensor([std] * channels, dtype=torch.float32).view(-1, 1, 1)
    return x.sub_(means).div_(stds)


@contextlib.contextmanager
def _locked(folder: Path):
    """Hold folder/.naap.lock: the ranks of one run download or write a dataset one at a time."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock = open(folder / ".naap.lock", "a")
    except OSError as exc:
        raise NaapError(f"dataset.root: {folder}: cannot write the dataset there ({exc.strerror})") from None
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
        except OSError as exc:  # e.g. Lustre mounted without -o flock
            raise NaapError(f"dataset.root: {folder}: no file locks on this filesystem ({exc.strerror}); put the "
                            f"dataset there beforehand (`naap dataset RECIPE --estimate` in one process does) "
                            f"or choose a node-local dataset.root") from None
        yield


def _first(images_labels: tuple[torch.Tensor, ...], n: int | None, key: str, root: Path) -> tuple[torch.Tensor, ...]:
    """The first n images and labels (all of them for None)."""
    if n is not None and n > len(images_labels[0]):
        raise NaapError(f"dataset.{key}: {n} images asked for, {root} has only {len(images_labels[0])}")
    return tuple(t[:n] for t in images_labels)


# --- CIFAR-10 -----------------------------------------------------------------

def _where_to_put(root: Path) -> str:
    return (f"put {CIFAR10.filename} (from {CIFAR10.url}, md5 {CIFAR10.tgz_md5}) into {root}/, "
            f"or its extracted folder as {root / CIFAR10_FOLDER}/ "
            f"({', '.join(CIFAR10_FILES)}); dataset.root in the recipe chooses another folder")


def _ensure_cifar10(root: Path, download: bool) -> None:
    """Make root/cifar-10-batches-py complete and md5-verified, downloading only what is missing.

    A file that is present but fails its md5 is never replaced or used: it is named.
    """
    folder = root / CIFAR10_FOLDER
    missing = lambda: [name for name in CIFAR10_FILES if not (folder / name).exists()]
    if missing():
        with _locked(root):
            if missing():
                _fetch_cifar10(root, download, missing())
    for name, md5 in CIFAR10_FILES.items():
        if not check_integrity(str(folder / name), md5):
            raise NaapError(f"dataset.root: {folder / name}: corrupt (md5 differs from CIFAR-10's {md5}); "
                            f"delete it and run again to restore it from {CIFAR10.filename}")


def _fetch_cifar10(root: Path, download: bool, missing: list[str]) -> None:
    archive = root / CIFAR10.filename
    if archive.exists():
        if not check_integrity(str(archive), CIFAR10.tgz_md5):
            raise NaapError(f"dataset.root: {archive}: corrupt (md5 differs from {CIFAR10.tgz_md5}); "
                            f"delete it and run again")
    elif not download:
        raise NaapError(f"dataset.download: false, and CIFAR-10 is not in dataset.root: {_where_to_put(root)}")
    else:
        _download_archive(root, archive)
    _extract_missing(archive, root / CIFAR10_FOLDER, missing)


def _download_archive(root: Path, archive: Path) -> None:
    part = archive.with_name(archive.name + ".part")
    try:
        download_url(CIFAR10.url, str(root), filename=part.name, md5=CIFAR10.tgz_md5)
    except (OSError, RuntimeError) as exc:
        raise NaapError(f"dataset.root: CIFAR-10 not found and the download failed ({exc}): "
                        f"{_where_to_put(root)}") from None
    os.replace(part, archive)


def _extract_missing(archive: Path, folder: Path, missing: list[str]) -> None:
    """Extract next to the folder, then move in only the missing files (each move is atomic)."""
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=".extract-") as tmp:
        try:
            extract_archive(str(archive), tmp)
        except (OSError, EOFError) as exc:
            raise NaapError(f"dataset.root: {archive}: cannot be extracted ({exc})") from None
        for name in missing:
            os.replace(Path(tmp) / CIFAR10_FOLDER / name, folder / name)


def _read_cifar10_folder(folder: Path) -> tuple[torch.Tensor, ...]:
    """Read data_batch_1..5 and test_batch (pickled dicts with "data" (N, 3072) uint8 and "labels")."""
    if not folder.is_dir():
        raise NaapError(f"dataset.root: {folder}: not found; a CIFAR-10-format folder holds "
                        f"{', '.join(CIFAR10_FILES)}")
    train = [_read_cifar10_batch(folder / name) for name in CIFAR10_TRAIN_FILES]
    test = _read_cifar10_batch(folder / "test_batch")
    return (torch.cat([x for x, _ in train]), torch.cat([y for _, y in train]), *test)


class _Refused(pickle.UnpicklingError):
    """A pickle named a function or class outside the CIFAR-10 format."""


def _latin1_encode(text: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """codecs.encode for latin-1 only: how Python 3 writes bytes (NumPy's array data) at protocol 2."""
    if encoding not in ("latin1", "latin-1") or errors != "strict":
        raise _Refused(f"_codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


_NUMPY_CORE = getattr(np, "_core", None) or np.core
# What a CIFAR-10 pickle may name: NumPy's array and scalar reconstruction under NumPy 1's and
# NumPy 2's module names (protocol 5 rebuilds arrays with _frombuffer), and latin-1 bytes.
_CIFAR_PICKLE_GLOBALS = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
    **{(f"numpy.{core}.multiarray", "_reconstruct"): _NUMPY_CORE.multiarray._reconstruct for core in ("core", "_core")},
    **{(f"numpy.{core}.multiarray", "scalar"): _NUMPY_CORE.multiarray.scalar for core in ("core", "_core")},
    **{(f"numpy.{core}.numeric", "_frombuffer"): _NUMPY_CORE.numeric._frombuffer for core in ("core", "_core")},
}


class _CifarUnpickler(pickle.Unpickler):
    """Builds dicts, lists, strings, numbers and NumPy arrays; refuses every other function or
    class a pickle names (find_class is where a pickle gets what it calls)."""

    def find_class(self, module: str, name: str):
        try:
            return _CIFAR_PICKLE_GLOBALS[module, name]
        except KeyError:
            raise _Refused(f"{module}.{name}") from None


def read_cifar_pickle(path: Path):
    """A CIFAR-format pickle's contents (Python 2 strings as bytes), through _CifarUnpickler."""
    with open(path, "rb") as f:
        return _CifarUnpickler(f, encoding="bytes").load()


def _field(entry, name: str):
    """entry[name]: Python 3 files have str keys, the original Python 2 files bytes keys."""
    if not isinstance(entry, dict):
        raise TypeError(f"a {type(entry).__name__}, not a dict")
    return entry[name] if name in entry else entry[name.encode()]


def _read_cifar10_batch(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        entry = read_cifar_pickle(path)
        data, labels = _field(entry, "data"), np.asarray(_field(entry, "labels"))
    except FileNotFoundError:
        raise NaapError(f"dataset.root: {path}: missing from the CIFAR-10-format folder") from None
    except _Refused as refused:
        raise NaapError(f"dataset.root: {path}: refused: the file asks to run {refused}, which no CIFAR-10 "
                        f"batch holds (naap never runs code from a data file)") from None
    except Exception as exc:  # unpickling arbitrary bytes raises many types
        raise NaapError(f"dataset.root: {path}: not a CIFAR-10 batch file ({type(exc).__name__}: {exc})") from None
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2 and data.shape[1] == 3072):
        raise NaapError(f"dataset.root: {path}: not a CIFAR-10 batch file (its data is not uint8 images of 3072 bytes)")
    if labels.ndim != 1 or len(labels) != len(data) or (
            len(labels) and (labels.dtype.kind not in "iu" or not 0 <= labels.min() <= labels.max() < CLASSES)):
        raise NaapError(f"dataset.root: {path}: {len(data)} images but labels that are not {len(data)} "
                        f"integers in 0..9")
    return torch.from_numpy(data.reshape(-1, 3, 32, 32).copy()), torch.from_numpy(labels.astype(np.int64).reshape(-1))


# --- Fashion-MNIST --------------------------------------------------------------

def _read_idx(path: Path, dims: int) -> np.ndarray:
    """One idx file (big-endian header: magic 0x00000800 + dims, then the sizes; uint8 data)."""
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise NaapError(f"dataset.root: {path}: missing; Fashion-MNIST needs {', '.join(FASHION_MNIST_FILES)} "
                        f"(Debian: apt-get install dataset-fashion-mnist)") from None
    except (OSError, EOFError) as exc:
        raise NaapError(f"dataset.root: {path}: corrupt gzip file ({exc})") from None
    header = np.frombuffer(raw[:4 + 4 * dims], dtype=">u4") if len(raw) >= 4 + 4 * dims else None
    if header is None or header[0] != 0x800 + dims or len(raw) != 4 + 4 * dims + int(np.prod(header[1:])):
        raise NaapError(f"dataset.root: {path}: not an idx file of {dims} dimension(s) with uint8 data")
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims).reshape(header[1:].astype(int))


def _read_fashion_mnist(root: Path) -> tuple[torch.Tensor, ...]:
    out = []
    for images_file, labels_file in zip(FASHION_MNIST_FILES[::2], FASHION_MNIST_FILES[1::2]):
        images, labels = _read_idx(root / images_file, 3), _read_idx(root / labels_file, 1)
        if len(images) != len(labels) or labels.max() >= CLASSES:
            raise NaapError(f"dataset.root: {root / labels_file}: {len(labels)} labels for {len(images)} images, "
                            f"or labels outside 0..9")
        out += [torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64).reshape(-1))]
    return tuple(out)


# --- synthetic ------------------------------------------------------------------

def _synthetic_images(count: int, rng: np.random.Generator, prototypes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`count` images: a class prototype, randomly shifted by up to 4 pixels, plus Gaussian noise."""
    labels = rng.integers(0, CLASSES, count)
    shifts = rng.integers(-4, 5, (count, 2))
    rows = (np.arange(32)[None, :] - shifts[:, :1]) % 32
    cols = (np.arange(32)[None, :] - shifts[:, 1:]) % 32
    images = prototypes[labels[:, None, None, None], np.arange(3)[None, :, None, None],
                        rows[:, None, :, None], cols[:, None, None, :]]
    images = images + 48 * rng.standard_normal(images.shape, dtype=np.float32)
    return np.clip(images, 0, 255).astype(np.uint8).reshape(count, 3072), labels


def write_synthetic_cifar10(root: Path, train_size: int, test_size: int, seed: int = 0) -> Path:
    """Write a small learnable 10-class set in CIFAR-10's on-disk format into root/cifar-10-batches-py.

    Each class has a smooth random colour pattern (8x8 upsampled to 32x32); an image is its
    class pattern, shifted, plus noise. The folder must be new, empty or one naap wrote: its
    marker (.naap-synthetic.json: the sizes, the seed, complete) is written first, incomplete,
    and completed last, so a set cut off half-way is naap's to rewrite and is never used.
    """
    folder = Path(root) / CIFAR10_FOLDER
    _claim_synthetic(folder)
    _write_synthetic(folder, train_size, test_size, seed)
    return folder


def _claim_synthetic(folder: Path) -> None:
    """Create `folder`, or accept it if it is empty or naap's; refuse any other before writing anything."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        foreign = not (folder / SYNTHETIC_MARKER).exists() and any(not p.name.startswith(".")
                                                                   for p in folder.iterdir())
    except OSError as exc:
        raise NaapError(f"dataset.root: {folder}: cannot write the synthetic set there ({exc.strerror})") from None
    if foreign:
        raise NaapError(f"dataset.root: {folder}: holds files naap did not write (no {SYNTHETIC_MARKER}); "
                        f"the synthetic set needs a folder of its own: name a new one")


def _write_synthetic(folder: Path, train_size: int, test_size: int, seed: int) -> None:
    record = {"train_size": train_size, "test_size": test_size, "seed": seed}
    _write_marker(folder, record | {"complete": False})
    rng = np.random.default_rng(seed)
    low = rng.uniform(32, 224, (CLASSES, 3, 8, 8)).astype(np.float32)
    prototypes = low.repeat(4, axis=2).repeat(4, axis=3)
    train_x, train_y = _synthetic_images(train_size, rng, prototypes)
    test_x, test_y = _synthetic_images(test_size, rng, prototypes)
    batches = zip(CIFAR10_TRAIN_FILES, np.array_split(train_x, 5), np.array_split(train_y, 5))
    for name, x, y in [*batches, ("test_batch", test_x, test_y)]:
        _write_pickle(folder / name, {"batch_label": name, "data": x, "labels": y.tolist()})
    _write_pickle(folder / "batches.meta", {"label_names": [f"class{i}" for i in range(CLASSES)],
                                            "num_vis": 3072, "num_cases_per_batch": len(train_x) // 5})
    _write_marker(folder, record | {"complete": True})


def _write_marker(folder: Path, record: dict) -> None:
    atomic_write(folder / SYNTHETIC_MARKER, lambda tmp: Path(tmp).write_text(json.dumps(record)))


def _read_marker(folder: Path) -> dict | None:
    try:
        return json.loads((folder / SYNTHETIC_MARKER).read_text())
    except (OSError, ValueError):
        return None


def _write_pickle(path: Path, obj: dict) -> None:
    def write(tmp):
        with open(tmp, "wb") as f:
            pickle.dump(obj, f, protocol=4)
    atomic_write(path, write)


def _ensure_synthetic(root: Path, train_size: int, test_size: int) -> None:
    """Write the synthetic set into root/cifar-10-batches-py unless the one there is complete with these sizes."""
    folder = root / CIFAR10_FOLDER
    wanted = {"train_size": train_size, "test_size": test_size, "seed": 0, "complete": True}
    if _read_marker(folder) == wanted:
        return
    _claim_synthetic(folder)
    with _locked(folder):
        if _read_marker(folder) != wanted:
            _write_synthetic(folder, train_size, test_size, seed=0)
