"""Datasets: the CIFAR-10 format round trip, md5 checks and their messages, Fashion-MNIST, normalisation."""
import codecs
import gzip
import hashlib
import json
import os
import pickle
import shutil
import subprocess
import sys
import tarfile
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from torchvision import transforms
from torchvision.datasets import CIFAR10
from torchvision.datasets.mnist import read_sn3_pascalvincent_tensor

from naap.errors import NaapError
from naap.rebuild import datasets
from naap.rebuild.datasets import load_dataset, write_synthetic_cifar10
from naap.rebuild.recipe import DatasetSpec, Training
from tests.conftest import REPO

TRAINING = Training(epochs=1, batch_size=64, lr=0.1, momentum=0.9, weight_decay=1e-4, nesterov=False,
                    lr_factor=0.1, lr_cycle=3, mean=0.5, std=0.5, seeds=(0,))
FASHION = Path(datasets.DEFAULT_ROOTS["fashion-mnist"])  # where Debian installs it
SMOKE = REPO / "recipes" / "smoke.yaml"


def read_batch(path: Path) -> dict:
    """A fixture's batch (the tests' own files), read as torchvision reads CIFAR-10."""
    with open(path, "rb") as f:
        return pickle.load(f, encoding="latin1")


def as_uint8(x: torch.Tensor, training: Training = TRAINING) -> torch.Tensor:
    return ((x * training.std + training.mean) * 255).round().to(torch.uint8)


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthetic")
    write_synthetic_cifar10(root, train_size=203, test_size=51, seed=3)
    return root


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_synthetic_files_have_the_cifar10_layout(synthetic_root):
    folder = synthetic_root / "cifar-10-batches-py"
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == sorted(datasets.CIFAR10_FILES)
    train = [read_batch(folder / f"data_batch_{i}") for i in range(1, 6)]
    assert [len(b["labels"]) for b in train] == [41, 41, 41, 40, 40]
    for batch in train + [read_batch(folder / "test_batch")]:
        assert batch["data"].dtype == np.uint8 and batch["data"].shape[1] == 3072
        assert all(isinstance(label, int) and 0 <= label < 10 for label in batch["labels"])
    assert len(read_batch(folder / "batches.meta")["label_names"]) == 10
    marker = json.loads((folder / ".naap-synthetic.json").read_text())
    assert marker == {"train_size": 203, "test_size": 51, "seed": 3, "complete": True}


def test_synthetic_set_round_trips_through_the_cifar10_folder_loader(synthetic_root):
    folder = synthetic_root / "cifar-10-batches-py"
    data = load_dataset(DatasetSpec("cifar10-folder", root=str(synthetic_root)), TRAINING)
    train = [read_batch(folder / f"data_batch_{i}") for i in range(1, 6)]
    expected_x = np.concatenate([b["data"] for b in train]).reshape(-1, 3, 32, 32)
    assert torch.equal(as_uint8(data.train_x), torch.from_numpy(expected_x))
    assert data.train_y.tolist() == sum((b["labels"] for b in train), [])
    assert data.test_y.tolist() == read_batch(folder / "test_batch")["labels"]
    assert (data.name, data.in_channels, data.input_size, data.num_classes) == ("cifar10-folder", 3, 32, 10)
    assert data.train_x.dtype == torch.float32 and data.train_y.dtype == torch.int64


def test_synthetic_writer_is_seeded(tmp_path):
    a, b, c = (write_synthetic_cifar10(tmp_path / name, 20, 10, seed=seed) for name, seed in zip("abc", (1, 1, 2)))
    assert md5(a / "data_batch_1") == md5(b / "data_batch_1") != md5(c / "data_batch_1")


def test_synthetic_dataset_is_written_once_and_rewritten_for_other_sizes(tmp_path):
    load_dataset(DatasetSpec("synthetic", root=str(tmp_path), train_size=30, test_size=10), TRAINING)
    first = tmp_path / "cifar-10-batches-py" / "test_batch"
    stamp = first.stat().st_mtime_ns
    datasets._load.cache_clear()  # read the folder again, not the process cache
    data = load_dataset(DatasetSpec("synthetic", root=str(tmp_path), train_size=30, test_size=10), TRAINING)
    assert first.stat().st_mtime_ns == stamp and len(data.train_y) == 30
    data = load_dataset(DatasetSpec("synthetic", root=str(tmp_path), train_size=40, test_size=12), TRAINING)
    assert (len(data.train_y), len(data.test_y)) == (40, 12)


def checksums(folder: Path) -> dict[str, str]:
    """Every entry under `folder` (hidden ones too) with its content's md5."""
    return {str(p.relative_to(folder)): md5(p) if p.is_file() else "folder" for p in sorted(folder.rglob("*"))}


@pytest.mark.parametrize("meta", ["kept", "missing"])
def test_synthetic_dataset_never_writes_into_someone_elses_cifar_folder(tmp_path, synthetic_root, meta):
    """Someone's CIFAR-format batches (with or without batches.meta), no naap marker: refused, untouched."""
    folder = shutil.copytree(synthetic_root / "cifar-10-batches-py", tmp_path / "cifar-10-batches-py")
    (folder / ".naap-synthetic.json").unlink()
    if meta == "missing":
        (folder / "batches.meta").unlink()
    before = checksums(tmp_path)
    spec = DatasetSpec("synthetic", root=str(tmp_path), train_size=30, test_size=10)
    with pytest.raises(NaapError) as error:
        load_dataset(spec, TRAINING, source="recipe.yaml")
    assert str(error.value).startswith(f"recipe.yaml: dataset.root: {folder}: holds files naap did not write")
    assert "\n" not in str(error.value)
    with pytest.raises(NaapError, match="holds files naap did not write"):
        write_synthetic_cifar10(tmp_path, 30, 10)
    assert checksums(tmp_path) == before


def test_synthetic_dataset_takes_an_empty_folder_and_redoes_a_set_cut_off_half_way(tmp_path):
    (tmp_path / "cifar-10-batches-py").mkdir()
    spec = DatasetSpec("synthetic", root=str(tmp_path), train_size=30, test_size=10)
    whole = load_dataset(spec, TRAINING)
    folder = tmp_path / "cifar-10-batches-py"
    marker = json.loads((folder / ".naap-synthetic.json").read_text())
    (folder / ".naap-synthetic.json").write_text(json.dumps(marker | {"complete": False}))
    (folder / "test_batch").unlink()
    (folder / "data_batch_2").write_bytes(b"half a file")
    datasets._load.cache_clear()
    assert torch.equal(load_dataset(spec, TRAINING).train_x, whole.train_x)
    assert json.loads((folder / ".naap-synthetic.json").read_text())["complete"]


def test_synthetic_classes_are_distinguishable(synthetic_root):
    """Learnable: nearest class mean on the training images beats chance by far on the test images."""
    data = load_dataset(DatasetSpec("cifar10-folder", root=str(synthetic_root)), TRAINING)
    means = torch.stack([data.train_x[data.train_y == c].mean(0) for c in range(10)]).flatten(1)
    predicted = torch.cdist(data.test_x.flatten(1), means).argmin(1)
    assert (predicted == data.test_y).float().mean() > 0.5


def test_normalisation_equals_torchvision_totensor_and_normalize(synthetic_root):
    training = Training(**{**TRAINING.__dict__, "mean": 0.4914, "std": 0.247})
    data = load_dataset(DatasetSpec("cifar10-folder", root=str(synthetic_root)), training)
    raw = read_batch(synthetic_root / "cifar-10-batches-py" / "test_batch")["data"].reshape(-1, 3, 32, 32)
    pipeline = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.4914,) * 3, (0.247,) * 3)])
    expected = torch.stack([pipeline(Image.fromarray(image.transpose(1, 2, 0))) for image in raw])
    assert torch.equal(data.test_x, expected)


@pytest.mark.parametrize("mean, std", [(0.5, 0.5), (0.4914, 0.247)])
def test_every_pixel_value_normalises_as_torchvision_does_bit_for_bit(mean, std):
    """All 256 values in each of three channels, against torchvision's ToTensor + Normalize of a PIL image."""
    hwc = np.stack([np.arange(256, dtype=np.uint8).reshape(16, 16) + channel for channel in range(3)], axis=-1)
    pipeline = transforms.Compose([transforms.ToTensor(), transforms.Normalize((mean,) * 3, (std,) * 3)])
    theirs = pipeline(Image.fromarray(hwc))
    ours = datasets.normalise_on_host(torch.from_numpy(hwc).permute(2, 0, 1)[None].contiguous(), mean, std)[0]
    assert ours.dtype == torch.float32 and torch.equal(ours.view(torch.int32), theirs.view(torch.int32))
    # What CUDA computes for a division by a CPU scalar, a multiplication by the reciprocal
    # (BinaryDivTrueKernel.cu), fails this comparison: the test can tell the two apart.
    by_reciprocal = torch.from_numpy(hwc).permute(2, 0, 1).float().mul(1 / torch.tensor(255.0)).sub(mean).div(std)
    assert not torch.equal(by_reciprocal.view(torch.int32), theirs.view(torch.int32))


def test_sizes_keep_the_first_images_and_too_many_is_an_error(synthetic_root):
    full = load_dataset(DatasetSpec("cifar10-folder", root=str(synthetic_root)), TRAINING)
    part = load_dataset(DatasetSpec("cifar10-folder", root=str(synthetic_root), train_size=50, test_size=7), TRAINING)
    assert torch.equal(part.train_x, full.train_x[:50]) and torch.equal(part.test_y, full.test_y[:7])
    with pytest.raises(NaapError, match="dataset.train_size: 500 images asked for.*only 203"):
        load_dataset(DatasetSpec("cifar10-folder", root=str(synthetic_root), train_size=500), TRAINING)


def test_cifar10_folder_errors_name_the_file(tmp_path, synthetic_root):
    with pytest.raises(NaapError, match="dataset.root: required"):
        load_dataset(DatasetSpec("cifar10-folder"), TRAINING)
    with pytest.raises(NaapError, match=f"{tmp_path}/cifar-10-batches-py: not found"):
        load_dataset(DatasetSpec("cifar10-folder", root=str(tmp_path)), TRAINING)
    folder = shutil.copytree(synthetic_root / "cifar-10-batches-py", tmp_path / "cifar-10-batches-py")
    (folder / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(NaapError, match="data_batch_3: not a CIFAR-10 batch file"):
        load_dataset(DatasetSpec("cifar10-folder", root=str(tmp_path)), TRAINING)


# --- cifar10: torchvision's archive and md5 checks, exercised offline on a synthetic archive ----------

@pytest.fixture
def fake_cifar10(tmp_path, synthetic_root, monkeypatch) -> Path:
    """A CIFAR-10 archive of the synthetic set; the md5 tables are pointed at its files."""
    archive = tmp_path / "source" / CIFAR10.filename
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(synthetic_root / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    monkeypatch.setattr(CIFAR10, "tgz_md5", md5(archive))
    for name in datasets.CIFAR10_FILES:
        monkeypatch.setitem(datasets.CIFAR10_FILES, name, md5(synthetic_root / "cifar-10-batches-py" / name))
    return archive


def test_cifar10_without_files_or_network_says_where_to_put_them(tmp_path, monkeypatch):
    root = tmp_path / "cifar"
    with pytest.raises(NaapError) as error:
        load_dataset(DatasetSpec("cifar10", root=str(root), download=False), TRAINING)
    assert f"into {root}/" in str(error.value) and f"{root}/cifar-10-batches-py/" in str(error.value)
    assert "cifar-10-python.tar.gz" in str(error.value) and "data_batch_5" in str(error.value)

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")
    monkeypatch.setattr(datasets, "download_url", offline)
    with pytest.raises(NaapError, match=f"download failed .*no network.*into {root}/"):
        load_dataset(DatasetSpec("cifar10", root=str(root)), TRAINING)


def test_cifar10_download_is_checked_extracted_and_loaded(tmp_path, fake_cifar10, synthetic_root, monkeypatch):
    def download(url, root, filename, md5):
        assert (url, md5) == (CIFAR10.url, CIFAR10.tgz_md5)
        shutil.copy(fake_cifar10, Path(root) / filename)
    monkeypatch.setattr(datasets, "download_url", download)
    root = tmp_path / "cifar"
    data = load_dataset(DatasetSpec("cifar10", root=str(root)), TRAINING)
    expected = load_dataset(DatasetSpec("cifar10-folder", root=str(synthetic_root)), TRAINING)
    assert torch.equal(data.train_x, expected.train_x) and torch.equal(data.test_y, expected.test_y)
    assert (root / CIFAR10.filename).exists() and not (root / (CIFAR10.filename + ".part")).exists()


def test_cifar10_corrupt_file_is_named_and_never_used(tmp_path, fake_cifar10, monkeypatch):
    root = tmp_path / "cifar"
    root.mkdir()
    shutil.copy(fake_cifar10, root)
    load_dataset(DatasetSpec("cifar10", root=str(root), download=False), TRAINING)
    batch = root / "cifar-10-batches-py" / "test_batch"
    batch.write_bytes(batch.read_bytes()[:-1] + b"\0")
    with pytest.raises(NaapError, match=f"{batch}: corrupt"):
        load_dataset(DatasetSpec("cifar10", root=str(root), download=False, train_size=10), TRAINING)
    batch.unlink()  # a missing file is restored from the verified archive
    data = load_dataset(DatasetSpec("cifar10", root=str(root), download=False, train_size=11), TRAINING)
    assert len(data.train_y) == 11


def test_cifar10_corrupt_archive_is_named(tmp_path, fake_cifar10):
    root = tmp_path / "cifar"
    root.mkdir()
    (root / CIFAR10.filename).write_bytes(fake_cifar10.read_bytes()[:1000])
    with pytest.raises(NaapError, match=f"{root / CIFAR10.filename}: corrupt"):
        load_dataset(DatasetSpec("cifar10", root=str(root)), TRAINING)


# --- Fashion-MNIST ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fashion_root() -> Path:
    if not all((FASHION / name).exists() for name in datasets.FASHION_MNIST_FILES):
        pytest.skip(f"Fashion-MNIST is not in {FASHION} (Debian package dataset-fashion-mnist, `make system-deps`)")
    return FASHION


def test_fashion_mnist_loads_like_torchvisions_reader(fashion_root, tmp_path):
    data = load_dataset(DatasetSpec("fashion-mnist"), TRAINING)
    assert data.train_x.shape == (60000, 1, 28, 28) and data.test_x.shape == (10000, 1, 28, 28)
    assert (data.in_channels, data.input_size, data.num_classes) == (1, 28, 10)
    assert data.train_y.bincount().tolist() == [6000] * 10 and data.test_y.bincount().tolist() == [1000] * 10
    for split, x, y in (("t10k", data.test_x, data.test_y), ("train", data.train_x, data.train_y)):
        for kind, ours in (("images-idx3", as_uint8(x).squeeze(1)), ("labels-idx1", y)):
            plain = tmp_path / f"{split}-{kind}"
            plain.write_bytes(gzip.decompress((fashion_root / f"{split}-{kind}-ubyte.gz").read_bytes()))
            assert torch.equal(ours, read_sn3_pascalvincent_tensor(str(plain)).to(ours.dtype))


def test_fashion_mnist_missing_or_corrupt_file_is_named(fashion_root, tmp_path):
    for name in datasets.FASHION_MNIST_FILES[1:]:
        shutil.copy(fashion_root / name, tmp_path)
    with pytest.raises(NaapError, match="train-images-idx3-ubyte.gz: missing.*dataset-fashion-mnist"):
        load_dataset(DatasetSpec("fashion-mnist", root=str(tmp_path)), TRAINING)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes((fashion_root / "train-images-idx3-ubyte.gz").read_bytes()[:5000])
    with pytest.raises(NaapError, match="train-images-idx3-ubyte.gz: corrupt gzip"):
        load_dataset(DatasetSpec("fashion-mnist", root=str(tmp_path)), TRAINING)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"\0\0\x08\x03" + b"\0" * 20))
    with pytest.raises(NaapError, match="train-images-idx3-ubyte.gz: not an idx file"):
        load_dataset(DatasetSpec("fashion-mnist", root=str(tmp_path)), TRAINING)


# --- hostile and foreign pickles --------------------------------------------------------------

class Runs:
    """Pickles as a call of `function(*args)`: what a crafted data file asks the unpickler to run."""

    def __init__(self, function, *args):
        self.function, self.args = function, args

    def __reduce__(self):
        return self.function, self.args


def hostile_batches(marker: Path) -> dict[str, object]:
    """Batch contents that would each create `marker` (or run code) if loaded with pickle.load."""
    return {
        "os.system": Runs(os.system, f"touch {marker}"),
        "builtins.eval": Runs(eval, f"open({str(marker)!r}, 'w').close()"),
        "builtins.exec": Runs(exec, f"open({str(marker)!r}, 'w').close()"),
        "subprocess.call": Runs(subprocess.call, ["touch", str(marker)]),
        "codecs with another codec": Runs(codecs.encode, "data", "rot13"),
    }


def cifar_folder_with(tmp_path: Path, synthetic_root: Path, name: str, payload: bytes) -> Path:
    root = tmp_path / "data"
    shutil.copytree(synthetic_root / "cifar-10-batches-py", root / "cifar-10-batches-py")
    (root / "cifar-10-batches-py" / name).write_bytes(payload)
    return root


@pytest.mark.parametrize("kind", ["os.system", "builtins.eval", "builtins.exec", "subprocess.call",
                                  "codecs with another codec"])
@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_a_crafted_batch_cannot_run_code(tmp_path, synthetic_root, kind, protocol):
    marker = tmp_path / "ran"
    payload = pickle.dumps({"data": hostile_batches(marker)[kind], "labels": [0]}, protocol=protocol)
    root = cifar_folder_with(tmp_path, synthetic_root, "data_batch_2", payload)
    with pytest.raises(NaapError) as error:
        load_dataset(DatasetSpec("cifar10-folder", root=str(root)), TRAINING, source="r.yaml")
    batch = root / "cifar-10-batches-py" / "data_batch_2"
    assert str(error.value).startswith(f"r.yaml: dataset.root: {batch}: refused: the file asks to run ")
    assert not marker.exists()
    pickle.loads(payload)  # the oracle: plain pickle would have run it
    assert marker.exists() or kind == "codecs with another codec"


def test_a_batch_naming_an_unknown_module_is_one_clear_error(tmp_path, synthetic_root):
    payload = b"cno_such_module\nthing\n(tR."  # protocol 0: no_such_module.thing()
    root = cifar_folder_with(tmp_path, synthetic_root, "test_batch", payload)
    with pytest.raises(NaapError, match=r"test_batch: refused: the file asks to run no_such_module\.thing"):
        load_dataset(DatasetSpec("cifar10-folder", root=str(root)), TRAINING)


def test_a_crafted_batch_is_refused_by_the_command_under_estimate_too(tmp_path, synthetic_root):
    marker = tmp_path / "ran"
    payload = pickle.dumps({"data": Runs(os.system, f"touch {marker}"), "labels": [0]}, protocol=2)
    root = cifar_folder_with(tmp_path, synthetic_root, "data_batch_1", payload)
    recipe = tmp_path / "hostile.yaml"
    raw = yaml.safe_load(SMOKE.read_text())
    recipe.write_text(yaml.safe_dump(raw | {"dataset": {"name": "cifar10-folder", "root": str(root)}}))
    for args in (["--estimate"], ["--out", tmp_path / "out"]):
        run = subprocess.run([sys.executable, "-m", "naap", "dataset", recipe, *args], cwd=tmp_path,
                             capture_output=True, text=True, timeout=300)
        assert (run.returncode, run.stdout) == (2, "")
        assert run.stderr.startswith("naap: error: ") and run.stderr.count("\n") == 1
        assert "data_batch_1: refused: the file asks to run posix.system" in run.stderr
        assert not marker.exists()


def renamed_numpy_module(payload: bytes) -> bytes:
    """A protocol-2 pickle as NumPy 1 (and the original CIFAR-10 files) name the array rebuilder."""
    return payload.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


@pytest.mark.parametrize("protocol", [2, "2, NumPy 1 names", 4, 5])
def test_batches_of_every_pickle_protocol_read_the_same(tmp_path, synthetic_root, protocol):
    folder = synthetic_root / "cifar-10-batches-py"
    expected = load_dataset(DatasetSpec("cifar10-folder", root=str(synthetic_root)), TRAINING)
    copy = shutil.copytree(folder, tmp_path / "cifar-10-batches-py")
    for name in datasets.CIFAR10_TRAIN_FILES + ("test_batch",):
        batch = read_batch(folder / name)
        as_bytes = {key.encode(): value for key, value in batch.items()}  # the original files' keys
        payload = pickle.dumps(as_bytes, protocol=2 if protocol == "2, NumPy 1 names" else protocol)
        (copy / name).write_bytes(renamed_numpy_module(payload) if protocol == "2, NumPy 1 names" else payload)
    if protocol == "2, NumPy 1 names":
        assert b"cnumpy.core.multiarray\n_reconstruct" in (copy / "test_batch").read_bytes()
    data = load_dataset(DatasetSpec("cifar10-folder", root=str(tmp_path)), TRAINING)
    assert torch.equal(data.train_x, expected.train_x) and torch.equal(data.train_y, expected.train_y)
    assert torch.equal(data.test_x, expected.test_x) and torch.equal(data.test_y, expected.test_y)


# --- where a relative dataset.root points ---------------------------------------------------------

def test_a_relative_root_is_taken_from_the_working_directory_by_estimate_and_by_the_run(tmp_path):
    recipes, work = tmp_path / "recipes", tmp_path / "work"
    recipes.mkdir()
    work.mkdir()
    raw = yaml.safe_load(SMOKE.read_text())
    raw["dataset"] = {"name": "synthetic", "root": "data/synthetic", "train_size": 64, "test_size": 32}
    raw["training"] |= {"epochs": 1, "seeds": [1], "batch_size": 32}
    recipe = recipes / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(raw))
    naap = lambda *args: subprocess.run([sys.executable, "-m", "naap", "dataset", recipe, *args, "--limit", "1"],
                                        cwd=work, capture_output=True, text=True, timeout=300)
    estimate = naap("--estimate")
    assert estimate.returncode == 0, estimate.stderr
    marker = work / "data" / "synthetic" / "cifar-10-batches-py" / ".naap-synthetic.json"
    written = marker.stat().st_mtime_ns
    assert not (recipes / "data").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["recipes", "work"]
    run = naap("--out", "out")
    assert run.returncode == 0, run.stderr
    assert marker.stat().st_mtime_ns == written and (work / "out" / "epochs.parquet").exists()
    assert sorted(p.name for p in work.iterdir()) == ["data", "out"]


def test_a_filesystem_without_file_locks_is_one_line_naming_the_recipe_and_the_root(tmp_path, monkeypatch):
    """Lustre without -o flock refuses flock: a missing set cannot be written safely there by several ranks."""
    def no_locks(handle, operation):
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr(datasets.fcntl, "flock", no_locks)
    spec = DatasetSpec("synthetic", root=str(tmp_path / "data"), train_size=64, test_size=32)
    with pytest.raises(NaapError) as error:
        load_dataset(spec, TRAINING, source="recipes/mine.yaml")
    folder = tmp_path / "data" / datasets.CIFAR10_FOLDER
    assert str(error.value).startswith(f"recipes/mine.yaml: dataset.root: {folder}: no file locks")
    assert [p.name for p in folder.iterdir()] == [".naap.lock"]  # not one image written
