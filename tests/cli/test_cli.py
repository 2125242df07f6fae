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


def test_schemes_limit_lists_the_first_of_a_space_too_large_to_list(tmp_path):
    """A space of 1.3e17 schemes: refused whole, its first ones listed with --limit, in the order of
    the full listing (checked against the naap440 space, whose 440 are listed in full)."""
    import yaml

    raw = yaml.safe_load((REPO / "recipes" / "naap440.yaml").read_text())
    raw["search_space"].update(min_layers=12, max_stride2_layers=12, positions=[
        {"kernel_size": [1, 3, 5], "width": [8, 16, 24, 32], "stride": [1, 2], "residual": [False, True]}
        for _ in range(12)])
    (tmp_path / "huge.yaml").write_text(yaml.safe_dump(raw))
    refused = naap("schemes", tmp_path / "huge.yaml")
    assert refused.returncode == 2 and "1.3e17 schemes" in refused.stderr and "--limit" in refused.stderr
    listed = naap("schemes", tmp_path / "huge.yaml", "--limit", 2, "--json")
    assert listed.returncode == 0, listed.stderr
    plain = {"kernel_size": 1, "width": 8, "stride": 1, "residual": False}
    assert [r["layers"] for r in json.loads(listed.stdout)] == [
        [plain] * 12, [plain] * 11 + [{**plain, "residual": True}]]
    full = json.loads(naap("schemes", "recipes/naap440.yaml", "--json").stdout)
    assert json.loads(naap("schemes", "recipes/naap440.yaml", "--json", "--limit", 7).stdout) == full[:7]
