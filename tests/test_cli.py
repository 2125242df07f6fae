import json
import subprocess
import sys

import pandas as pd
import pytest

from tests.conftest import REPO

DATA = REPO / "data" / "naap440"


def naap(*args, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "naap", *map(str, args)], cwd=cwd, capture_output=True, text=True)


def test_schemes_json_lists_every_architecture_with_its_counts(release_dir):
    out = naap("schemes", "recipes/naap440.yaml", "--json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    published = json.loads((release_dir / "generated_schemes.json").read_text())
    wide = pd.read_csv(release_dir / "naap440.csv")
    assert [r["arch_id"] for r in rows] == list(range(1, 441))
    assert [r["layers"] for r in rows] == published
    assert [r["num_params"] for r in rows] == wide["NumParams"].tolist()
    assert [r["num_macs"] for r in rows] == wide["NumMACs"].tolist()


def test_info_summarises_the_dataset():
    out = naap("info", DATA)
    assert out.returncode == 0, out.stderr
    assert "440 architectures (40 test), 1 seed(s), 90-90 epochs" in out.stdout
    assert "0.5291 to 0.7504" in out.stdout and "NAAP-440" in out.stdout


def test_import_then_export_round_trips_through_the_command_line(release_dir, tmp_path):
    assert naap("import-release", release_dir, "--out", tmp_path / "d").returncode == 0
    assert naap("export-csv", tmp_path / "d", tmp_path / "x.csv").returncode == 0
    assert (tmp_path / "x.csv").read_bytes() == (release_dir / "naap440.csv").read_bytes()


@pytest.mark.parametrize("args,message", [
    (("info", "no/such/dir"), "no/such/dir: dataset directory not found"),
    (("schemes", "no/such.yaml"), "no/such.yaml: recipe file not found"),
    (("export-csv", "no/such/dir", "x.csv"), "no/such/dir: dataset directory not found"),
    (("import-release", "no/such/dir", "--out", "/tmp/naap-unused"), "no/such/dir/naap440.csv: file not found"),
])
def test_errors_are_one_clear_line_and_a_nonzero_exit(args, message):
    out = naap(*args)
    assert out.returncode == 2
    assert out.stderr.strip() == f"naap: error: {message}"
    assert "Traceback" not in out.stderr


def test_corrupt_parquet_is_one_line(tmp_path):
    (tmp_path / "architectures.parquet").write_bytes(b"garbage")
    out = naap("info", tmp_path)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1
    assert "architectures.parquet: not a readable Parquet file" in out.stderr


def test_dataset_commands_do_not_import_pytorch():
    code = ("import sys; from naap.cli import main; "
            "assert main(['info', 'data/naap440']) == 0; assert 'torch' not in sys.modules, 'torch imported'")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_help_lists_every_command():
    out = naap("--help")
    assert out.returncode == 0
    for command in ("schemes", "info", "import-release", "export-csv", "dataset", "leaderboard"):
        assert command in out.stdout
