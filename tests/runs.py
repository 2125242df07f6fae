"""Helpers of the `naap dataset` tests: start real processes as a user would, compare their tables.

The environment is the user's, less OMP_NUM_THREADS and MKL_NUM_THREADS: naap.rebuild.settings fixes
the threads itself, and a test must not hide what happens without them.
"""
import os
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

from naap.bench.tables import load_tables
from tests.conftest import REPO

SMOKE = REPO / "recipes" / "smoke.yaml"
FMNIST_MINI = REPO / "recipes" / "fmnist-mini.yaml"
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
ENV = {name: value for name, value in os.environ.items() if name not in THREAD_VARIABLES}
TIMEOUT = 600


def naap(workdir: Path, *args, ranks: int = 0, **popen) -> subprocess.Popen:
    """Start `naap ...` in `workdir`, alone or under torchrun with `ranks` processes on one node."""
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={ranks}",
                 "-m", "naap"] if ranks else [sys.executable, "-m", "naap"])
    return subprocess.Popen([*launcher, *map(str, args)], cwd=workdir, env=ENV, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen)


def naap_on_two_nodes(workdir: Path, *args) -> list[subprocess.Popen]:
    """`naap ...` as two torchrun agents of one rendezvous, each a node with one process: the
    ranks share no node (LOCAL_WORLD_SIZE 1), only the rendezvous store and the folder."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc-per-node=1",
                "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{port}", "--rdzv-id=naap-test", "-m", "naap"]
    return [subprocess.Popen([*launcher, *map(str, args)], cwd=workdir, env=ENV, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]


def finish(process: subprocess.Popen) -> str:
    out, err = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 0, err
    return out


def dataset(workdir: Path, recipe: Path, out: str | Path, *args, ranks: int = 0) -> Path:
    """`naap dataset RECIPE --out OUT ARGS...` run to its end in `workdir` (it must succeed): the folder."""
    finish(naap(workdir, "dataset", recipe, "--out", out, *args, ranks=ranks))
    return workdir / out


def recipe_variant(workdir: Path, name: str, base: Path = SMOKE, recipe_name: str | None = None, **changes) -> Path:
    """A copy of a recipe with some `section__key` values changed (and its name, where given)."""
    raw = yaml.safe_load(base.read_text())
    if recipe_name is not None:
        raw["name"] = recipe_name
    for dotted, value in changes.items():
        section, key = dotted.split("__")
        raw[section][key] = value
    path = workdir / name
    path.write_text(yaml.safe_dump(raw))
    return path


def assert_same_data(dir_a: Path, dir_b: Path) -> None:
    """Bit-identical tables, the measured epoch_seconds aside."""
    a, b = load_tables(dir_a), load_tables(dir_b)
    pd.testing.assert_frame_equal(a.architectures, b.architectures, check_exact=True)
    pd.testing.assert_frame_equal(a.epochs.drop(columns="epoch_seconds"), b.epochs.drop(columns="epoch_seconds"),
                                  check_exact=True)


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder below `folder`, with its size and mtime: compare before and after."""
    return {str(p.relative_to(folder)): (p.lstat().st_size, p.lstat().st_mtime_ns)
            for p in [folder, *folder.rglob("*")]}
