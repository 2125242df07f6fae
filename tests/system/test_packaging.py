"""The wheel carries the dataset and the recipes; installed into a fresh environment, naap loads
NAAP-440 from any folder. (The editable install of `make install` is the one the other tests run
under: tests/bench/test_api.py loads NAAP-440 there from a temporary folder.)"""
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO

# What building a wheel reads: pyproject.toml and the files it names.
BUILD_INPUTS = ("pyproject.toml", "README.md", "LICENSE", "naap", "recipes", "data/naap440")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built from a copy of the build inputs (no build/ or egg-info in the checkout)."""
    source, out = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("wheel")
    for name in BUILD_INPUTS:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(REPO / name, source / name)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(out), str(source)], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    return next(out.glob("naap-*.whl"))


def test_the_wheel_carries_every_file_of_the_dataset_and_the_recipes_and_not_the_csv(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = [f"naap/data/naap440/{p.name}" for p in (REPO / "data" / "naap440").iterdir() if p.is_file()]
    shipped += [f"naap/recipes/{p.name}" for p in (REPO / "recipes").glob("*.yaml")]
    assert "naap/data/naap440/LICENSE-NAAP440" in shipped and "naap/recipes/naap440.yaml" in shipped
    assert set(shipped) <= names
    assert not [n for n in names if "naap440-release" in n or n.endswith(".csv")]
    assert any(n.endswith("licenses/LICENSE") for n in names)


def test_an_installed_wheel_loads_naap440_from_another_folder(wheel, tmp_path):
    """A fresh virtual environment that sees this interpreter's packages through a .pth file (no
    network needed), with only the wheel installed into it; run from an empty folder, with no
    PYTHONPATH that could lead to a checkout."""
    clean = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
    env = tmp_path / "env"
    venv.EnvBuilder(with_pip=False).create(env)
    python = env / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          capture_output=True, text=True, check=True).stdout.strip()
    parents = [p for p in sys.path if p.endswith("site-packages")] or [sysconfig.get_path("purelib")]
    (Path(site) / "parent-environment.pth").write_text("\n".join(parents) + "\n")
    installed = subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "-q", str(wheel)],
                               capture_output=True, text=True)
    assert installed.returncode == 0, installed.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = ("import naap; b = naap.load(); "
            "assert naap.__file__.startswith(%r), naap.__file__; "
            "assert b.arch_id('k3w12s2 k3w16s2 k1w16s1r') == b.arch_id(10) == 10; "
            "assert len(b.query(None, epoch=9)) == 440; print(b.path)") % site
    out = subprocess.run([str(python), "-c", code], cwd=elsewhere, capture_output=True, text=True, env=clean)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(Path(site) / "naap" / "data" / "naap440")
    help_ = subprocess.run([str(env / "bin" / "naap"), "--help"], cwd=elsewhere, capture_output=True, text=True,
                           env=clean)
    assert help_.returncode == 0 and "predictors" in help_.stdout
    schemes = subprocess.run([str(env / "bin" / "naap"), "schemes", "naap440", "--limit", "1"], cwd=elsewhere,
                             capture_output=True, text=True, env=clean)  # a shipped recipe by name
    assert schemes.returncode == 0 and schemes.stdout.split()[-3:] == ["k3w12s2", "k3w16s2", "k1w16s1"], schemes.stderr
    assert not list(elsewhere.iterdir())
    figure = tmp_path / "figure.png"
    example = subprocess.run([str(python), "-m", "naap.examples.search", "--seeds", "2", "--out", str(figure)],
                             cwd=elsewhere, capture_output=True, text=True, env=clean)
    assert example.returncode == 0 and "Hyperband" in example.stdout, example.stderr
    assert figure.stat().st_size > 10_000 and not list(elsewhere.iterdir())


def test_the_release_licence_travels_with_the_data(release_dir, tmp_path):
    licence = (release_dir / "LICENSE").read_bytes()
    assert (REPO / "data" / "naap440" / "LICENSE-NAAP440").read_bytes() == licence
    assert "its text in LICENSE-NAAP440" in (REPO / "data" / "naap440" / "DATASET.md").read_text()
    naap = [sys.executable, "-m", "naap", "import-release"]
    out = subprocess.run([*naap, str(release_dir), "--out", str(tmp_path / "d")], cwd=REPO, capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "d" / "LICENSE-NAAP440").read_bytes() == licence
    unlicensed = tmp_path / "unlicensed"
    shutil.copytree(release_dir, unlicensed)
    (unlicensed / "LICENSE").unlink()
    out = subprocess.run([*naap, str(unlicensed), "--out", str(tmp_path / "e")], cwd=REPO, capture_output=True,
                         text=True)
    assert out.returncode == 2 and out.stderr.strip() == (
        f"naap: error: {unlicensed / 'LICENSE'}: file not found (the release's licence travels with its data)")
    assert not (tmp_path / "e").exists()


def test_citation_cites_the_paper_and_this_version_of_the_software():
    import tomllib

    import yaml

    import naap

    citation = yaml.safe_load((REPO / "CITATION.cff").read_text())
    assert citation["cff-version"] == "1.2.0" and citation["type"] == "software" and citation["license"] == "MIT"
    assert str(citation["version"]) == naap.__version__ == tomllib.loads(
        (REPO / "pyproject.toml").read_text())["project"]["version"]
    paper = citation["preferred-citation"]
    assert paper["doi"] == "10.48550/arXiv.2209.06626" and paper["year"] == 2022
    assert paper["title"] == "NAAP-440 Dataset and Baseline for Neural Architecture Accuracy Prediction"
    assert paper["authors"][0]["family-names"] == "Hakim"
    assert (REPO / "LICENSE").read_text().splitlines()[2] == "Copyright (c) 2026 the naap developers"
