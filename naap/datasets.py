"""Image datasets by name, loaded once per process and kept on the device as tensors.

Every dataset goes the same way: read the files into uint8 tensors (N, C, H, W),
move them to the device once, normalise there as (x / 255 - mean) / std, the same
float32 operations as torchvision's ToTensor + Normalize. Training then indexes
these tensors directly: no per-image Python, no DataLoader.

Names (recipe.DATASETS):
- `cifar10`: torchvision's download of CIFAR-10, every file checked against its md5.
- `fashion-mnist`: the original idx .gz files from a folder (Debian's
  dataset-fashion-mnist installs them in /usr/share/datasets/fashion-mnist).
- `cifar10-folder`: a folder in CIFAR-10's on-disk format, read without md5 checks
  (test fixtures).
- `synthetic`: a small learnable set written in CIFAR-10's format if missing,
  then read as `cifar10-folder`.
"""
from __future__ import annotations

import contextlib
import fcntl
import functools
import gzip
import os
import pickle
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torchvision.datasets import CIFAR10
from torchvision.datasets.utils import check_integrity, download_url, extract_archive

from naap.errors import NaapError
from naap.recipe import DatasetSpec, Training
from naap.tables import atomic_write

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


def load_dataset(spec: DatasetSpec, training: Training, device: torch.device | str = "cpu") -> DeviceData:
    """The dataset a recipe names, on `device`, normalised with training.mean/std."""
    if spec.root is None and spec.name not in DEFAULT_ROOTS:
        raise NaapError(f"dataset.root: required for {spec.name} (the folder holding {CIFAR10_FOLDER}/)")
    root = Path(spec.root or DEFAULT_ROOTS[spec.name])
    return _load(spec.name, root.resolve(), spec.train_size, spec.test_size, spec.download,
                 training.mean, training.std, str(torch.device(device)))


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
    normalise = lambda x: x.to(device).float().div_(255).sub_(mean).div_(std)
    return DeviceData(normalise(train_x), train_y.to(device), normalise(test_x), test_y.to(device),
                      name=name, in_channels=train_x.shape[1], input_size=train_x.shape[2], num_classes=CLASSES)


@contextlib.contextmanager
def _locked(root: Path):
    """Hold root/.naap.lock: the ranks of one run download or write a dataset one at a time."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        lock = open(root / ".naap.lock", "a")
    except OSError as exc:
        raise NaapError(f"{root}: cannot write the dataset there ({exc.strerror}); set dataset.root") from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
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
            raise NaapError(f"{folder / name}: corrupt (md5 differs from CIFAR-10's {md5}); "
                            f"delete it and run again to restore it from {CIFAR10.filename}")


def _fetch_cifar10(root: Path, download: bool, missing: list[str]) -> None:
    archive = root / CIFAR10.filename
    if archive.exists():
        if not check_integrity(str(archive), CIFAR10.tgz_md5):
            raise NaapError(f"{archive}: corrupt (md5 differs from {CIFAR10.tgz_md5}); delete it and run again")
    elif not download:
        raise NaapError(f"CIFAR-10 not found and dataset.download is false: {_where_to_put(root)}")
    else:
        _download_archive(root, archive)
    _extract_missing(archive, root / CIFAR10_FOLDER, missing)


def _download_archive(root: Path, archive: Path) -> None:
    part = archive.with_name(archive.name + ".part")
    try:
        download_url(CIFAR10.url, str(root), filename=part.name, md5=CIFAR10.tgz_md5)
    except (OSError, RuntimeError) as exc:
        raise NaapError(f"CIFAR-10 not found and the download failed ({exc}): {_where_to_put(root)}") from None
    os.replace(part, archive)


def _extract_missing(archive: Path, folder: Path, missing: list[str]) -> None:
    """Extract next to the folder, then move in only the missing files (each move is atomic)."""
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=".extract-") as tmp:
        try:
            extract_archive(str(archive), tmp)
        except (OSError, EOFError) as exc:
            raise NaapError(f"{archive}: cannot be extracted ({exc})") from None
        for name in missing:
            os.replace(Path(tmp) / CIFAR10_FOLDER / name, folder / name)


def _read_cifar10_folder(folder: Path) -> tuple[torch.Tensor, ...]:
    """Read data_batch_1..5 and test_batch (pickled dicts with b"data" (N, 3072) uint8 and b"labels")."""
    if not folder.is_dir():
        raise NaapError(f"{folder}: not found; a CIFAR-10-format folder holds {', '.join(CIFAR10_FILES)}")
    train = [_read_cifar10_batch(folder / name) for name in CIFAR10_TRAIN_FILES]
    test = _read_cifar10_batch(folder / "test_batch")
    return (torch.cat([x for x, _ in train]), torch.cat([y for _, y in train]), *test)


def _read_cifar10_batch(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        with open(path, "rb") as f:
            entry = pickle.load(f, encoding="bytes")
        data = np.asarray(entry[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(entry[b"labels"], dtype=np.int64)
    except FileNotFoundError:
        raise NaapError(f"{path}: missing from the CIFAR-10-format folder") from None
    except (pickle.UnpicklingError, EOFError, KeyError, ValueError, TypeError) as exc:
        raise NaapError(f"{path}: not a CIFAR-10 batch file ({type(exc).__name__}: {exc})") from None
    if len(labels) != len(data) or (len(labels) and not 0 <= labels.min() <= labels.max() < CLASSES):
        raise NaapError(f"{path}: {len(data)} images but {len(labels)} labels, or labels outside 0..9")
    return torch.from_numpy(data.copy()), torch.from_numpy(labels)


# --- Fashion-MNIST --------------------------------------------------------------

def _read_idx(path: Path, dims: int) -> np.ndarray:
    """One idx file (big-endian header: magic 0x00000800 + dims, then the sizes; uint8 data)."""
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise NaapError(f"{path}: missing; Fashion-MNIST needs {', '.join(FASHION_MNIST_FILES)} "
                        f"(Debian: apt-get install dataset-fashion-mnist)") from None
    except (OSError, EOFError) as exc:
        raise NaapError(f"{path}: corrupt gzip file ({exc})") from None
    header = np.frombuffer(raw[:4 + 4 * dims], dtype=">u4") if len(raw) >= 4 + 4 * dims else None
    if header is None or header[0] != 0x800 + dims or len(raw) != 4 + 4 * dims + int(np.prod(header[1:])):
        raise NaapError(f"{path}: not an idx file of {dims} dimension(s) with uint8 data")
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims).reshape(header[1:].astype(int))


def _read_fashion_mnist(root: Path) -> tuple[torch.Tensor, ...]:
    out = []
    for images_file, labels_file in zip(FASHION_MNIST_FILES[::2], FASHION_MNIST_FILES[1::2]):
        images, labels = _read_idx(root / images_file, 3), _read_idx(root / labels_file, 1)
        if len(images) != len(labels) or labels.max() >= CLASSES:
            raise NaapError(f"{root / labels_file}: {len(labels)} labels for {len(images)} images, "
                            f"or labels outside 0..9")
        out += [torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64))]
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
    """Write a small learnable 10-class set in CIFAR-10's on-disk format; return its folder.

    Each class has a smooth random colour pattern (8x8 upsampled to 32x32); an image is its
    class pattern, shifted, plus noise. batches.meta records the sizes and seed, so an
    existing set is reused only when it is the one asked for.
    """
    rng = np.random.default_rng(seed)
    low = rng.uniform(32, 224, (CLASSES, 3, 8, 8)).astype(np.float32)
    prototypes = low.repeat(4, axis=2).repeat(4, axis=3)
    train_x, train_y = _synthetic_images(train_size, rng, prototypes)
    test_x, test_y = _synthetic_images(test_size, rng, prototypes)
    folder = Path(root) / CIFAR10_FOLDER
    (folder / "batches.meta").unlink(missing_ok=True)  # written last: a half-rewritten set has none
    batches = zip(CIFAR10_TRAIN_FILES, np.array_split(train_x, 5), np.array_split(train_y, 5))
    for name, x, y in [*batches, ("test_batch", test_x, test_y)]:
        _write_pickle(folder / name, {b"batch_label": name.encode(), b"data": x, b"labels": y.tolist()})
    _write_pickle(folder / "batches.meta", {
        b"label_names": [f"class{i}".encode() for i in range(CLASSES)],
        b"num_vis": 3072, b"num_cases_per_batch": len(train_x) // 5,
        b"naap_synthetic": {b"train_size": train_size, b"test_size": test_size, b"seed": seed}})
    return folder


def _write_pickle(path: Path, obj: dict) -> None:
    def write(tmp):
        with open(tmp, "wb") as f:
            pickle.dump(obj, f, protocol=2)
    atomic_write(path, write)


def _ensure_synthetic(root: Path, train_size: int, test_size: int) -> None:
    """Write the synthetic set into root unless the one there has these sizes."""
    meta_path = root / CIFAR10_FOLDER / "batches.meta"
    wanted = {b"train_size": train_size, b"test_size": test_size, b"seed": 0}

    def present() -> bool:
        if not meta_path.exists():
            return False
        try:
            with open(meta_path, "rb") as f:
                written = pickle.load(f, encoding="bytes")[b"naap_synthetic"]
        except (pickle.UnpicklingError, EOFError, KeyError, ValueError, TypeError):
            raise NaapError(f"{meta_path}: a CIFAR-10-format set naap did not generate; "
                            f"the synthetic dataset needs its own dataset.root") from None
        return written == wanted
    if not present():
        with _locked(root):
            if not present():
                write_synthetic_cifar10(root, train_size, test_size)
