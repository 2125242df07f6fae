"""`naap leaderboard` as a user meets it: the folder it writes into, imperfect rebuilt data (diverged
runs, tiny datasets, several seeds), and SIGTERM with workers running."""
import re
import signal
import subprocess
import sys
import textwrap
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from scipy import stats

from naap import cli, machine
from naap._io import read_provenance
from naap.bench.tables import PROXIES_FILE, WIDE_SCHEME_COLUMNS, load_proxies, load_tables, write_dataset
from tests.conftest import REPO
from tests.board.test_features import diverged_tables

DATA = REPO / "data" / "naap440"
QUICK = ["--predictor-set", "none", "--predictor", "1-NN", "--protocol", "cv", "--budgets", "0", "--cv-repeats", "1",
         "--jobs", "1", "--quiet"]


def leaderboard(capsys, data, out, *argv):
    code = cli.main(["leaderboard", str(data), "--out", str(out), *argv])
    return code, capsys.readouterr()


def snapshot(folder: Path) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


# --- the folder it writes into --------------------------------------------------------------------

@pytest.mark.parametrize("out", ["someone-elses", "."])
def test_a_folder_it_did_not_write_is_refused_and_left_as_it_was(capsys, tmp_path, monkeypatch, out):
    folder = tmp_path / "someone-elses"
    folder.mkdir()
    (folder / "README.md").write_text("my project\n")
    monkeypatch.chdir(folder if out == "." else tmp_path)
    before = snapshot(folder)
    code, output = leaderboard(capsys, DATA, out, *QUICK)
    assert code == 2 and len(output.err.strip().splitlines()) == 1
    assert f"--out {out}: not empty and not written by naap leaderboard" in output.err
    assert snapshot(folder) == before


def test_a_new_an_empty_and_its_own_folder_are_written(capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    for out in (tmp_path / "new", tmp_path / "empty", tmp_path / "new"):  # the last: a folder it wrote
        code, _ = leaderboard(capsys, DATA, out, *QUICK)
        assert code == 0 and (out / ".naap-leaderboard").exists() and (out / "README.md").exists()


def test_the_board_records_what_it_was_computed_with(capsys, tmp_path, monkeypatch):
    """The CPU, the kernel-selecting variables, the libraries' versions and the BLAS: in every
    table's provenance and, as one escaped line, on the page."""
    monkeypatch.setenv("DNNL_MAX_CPU_ISA", "<b>avx2</b>")  # read by oneDNN only, which a board never loads
    code, output = leaderboard(capsys, DATA, tmp_path / "lb", *QUICK)
    assert code == 0, output.err
    for table in ("results", "summary", "predictions"):
        computed_with = read_provenance(tmp_path / "lb" / f"{table}.parquet")["computed_with"]
        assert computed_with["versions"] == {name: version(name) for name in
                                             ("numpy", "scipy", "scikit-learn", "xgboost", "lightgbm")}
        assert computed_with["cpu"] == machine.cpu_model() and computed_with["cpu_flags"] == machine.cpu_flags()
        assert computed_with["kernel_variables"] == machine.kernel_variables() and \
            computed_with["kernel_variables"]["DNNL_MAX_CPU_ISA"] == "<b>avx2</b>"
        assert any(line.startswith("openblas ") for line in computed_with["blas"]), computed_with
    line = next(line for line in (tmp_path / "lb" / "README.md").read_text().splitlines()
                if line.startswith("Computed with "))
    assert f"numpy {version('numpy')}, scipy {version('scipy')}, scikit-learn {version('scikit-learn')}" in line
    assert "=&lt;b&gt;avx2&lt;/b&gt;" in line and "<b>" not in line


# --- imperfect rebuilt data ----------------------------------------------------------------------

@pytest.fixture
def diverged_dir(tmp_path) -> Path:
    """12 architectures over 3 epochs; 4 of them diverged in epoch 2 (their runs stop after epoch 1)."""
    out = tmp_path / "diverged"
    write_dataset(diverged_tables(), out, {"source": "test: 4 of 12 diverged in epoch 2"}, "# diverged")
    return out


def test_diverged_runs_enter_carried_forward_and_the_board_is_written(capsys, diverged_dir, tmp_path):
    out = tmp_path / "lb"
    code, output = leaderboard(capsys, diverged_dir, out, "--protocol", "cv", "--budgets", "0,1,2", "--jobs", "1",
                               "--quiet")
    assert code == 0, output.err
    results = pd.read_parquet(out / "results.parquet")
    assert set(results["budget"]) == {0, 1, 2} and (results["test_items"] == 6).all()
    readme = (out / "README.md").read_text()
    assert "4 architecture(s) diverged in training: their curves are carried forward" in readme
    assert "Cross-validation on 12 architectures: test folds of 6 items; at this size the intervals mean nothing" \
        in readme and "intervals mean nothing" in output.err
    assert "Skipped 7-NN under cv at budget(s) 0, 1, 2: needs at least 7 training rows, has 6." in readme
    code = cli.main(["export-csv", str(diverged_dir), str(tmp_path / "x.csv")])
    assert code == 0


def test_a_nan_target_is_one_clear_line(capsys, diverged_dir, tmp_path):
    table = pq.read_table(diverged_dir / "architectures.parquet")
    accuracy = table.column("max_accuracy").to_numpy().copy()
    accuracy[5] = np.nan  # a NaN value, not a missing one
    table = table.set_column(table.schema.get_field_index("max_accuracy"), "max_accuracy", [accuracy])
    pq.write_table(table, diverged_dir / "architectures.parquet")
    code, output = leaderboard(capsys, diverged_dir, tmp_path / "lb", *QUICK)
    assert code == 2 and len(output.err.strip().splitlines()) == 1 and "max_accuracy" in output.err
    assert "Traceback" not in output.err and not (tmp_path / "lb").exists()


def naap(*argv, cwd: Path, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "naap", *argv], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def test_a_dataset_whose_every_run_diverged_is_one_clear_line(tmp_path):
    """`naap dataset` at a learning rate of 1e30: every run diverges in its first epoch."""
    recipe = (REPO / "recipes" / "smoke.yaml").read_text().replace("lr: 0.1,", "lr: 1.0e+30,")
    assert "lr: 1.0e+30" in recipe
    (tmp_path / "huge.yaml").write_text(recipe)
    built = naap("dataset", "huge.yaml", "--out", "huge", cwd=tmp_path)
    assert built.returncode == 0, built.stderr
    assert load_tables(tmp_path / "huge").architectures["diverged"].all()
    run = naap("leaderboard", "huge", "--out", "lb", "--protocol", "cv", "--budgets", "0", cwd=tmp_path)
    assert run.returncode == 2 and len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert "no epoch" in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "lb").exists()
    # The published layout of such a dataset: the scheme columns, and no epoch column to fill.
    exported = naap("export-csv", "huge", "huge.csv", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    assert pd.read_csv(tmp_path / "huge.csv").columns.tolist() == list(WIDE_SCHEME_COLUMNS.values())


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> Path:
    """recipes/smoke.yaml rebuilt: 4 architectures, 2 seeds each, 2 epochs (seconds)."""
    root = tmp_path_factory.mktemp("smoke")
    built = naap("dataset", str(REPO / "recipes" / "smoke.yaml"), "--out", "smoke", cwd=root)
    assert built.returncode == 0, built.stderr
    return root / "smoke"


def test_a_rebuild_with_two_seeds_has_a_noise_ceiling(capsys, smoke, tmp_path):
    out = tmp_path / "lb"
    code, output = leaderboard(capsys, smoke, out, "--protocol", "cv", "--budgets", "0,1", "--predictor-set", "none",
                               "--predictor", "1-NN", "--predictor", "7-NN", "--predictor", "GP-ARD (arch)",
                               "--jobs", "1", "--quiet")
    assert code == 0, output.err
    maxima = load_tables(smoke).epochs.groupby(["arch_id", "seed"])["test_accuracy"].max().unstack()
    assert maxima.shape == (4, 2)
    tau = stats.kendalltau(maxima.iloc[:, 0], maxima.iloc[:, 1]).statistic
    readme = (out / "README.md").read_text()
    assert "Noise ceiling: from 4 of 4 architectures trained with two or more seeds" in readme
    assert f"one seed ranks another with Kendall τ {tau:.3f}" in readme
    assert "against the recorded target (averaged over the cv protocol's 4 test folds)" in readme
    assert "test folds of 2 items; at this size the intervals mean nothing" in readme
    assert "Skipped 7-NN under cv" in readme
    assert not (out / "results.parquet").exists() or \
        set(pd.read_parquet(out / "results.parquet")["predictor"]) == {"1-NN", "GP-ARD (arch)"}


def test_the_release_states_it_has_no_noise_ceiling(capsys, tmp_path):
    """... and, for comparison with the board's tau, what a given run-to-run noise would allow on
    the same cv folds (one repeat of 11 folds here)."""
    code, _ = leaderboard(capsys, DATA, tmp_path / "lb", *QUICK)
    readme = (tmp_path / "lb" / "README.md").read_text()
    assert code == 0 and "Noise ceiling: not estimable" in readme
    assert "sd 0.2 / 0.4 / 0.6 accuracy points" in readme and "over the cv protocol's 11 test folds" in readme


# --- SIGTERM ----------------------------------------------------------------------------------------

SLEEPY = textwrap.dedent('''
    import time
    from sklearn.dummy import DummyRegressor


    class Sleepy(DummyRegressor):
        def fit(self, X, y):
            time.sleep(600)
            return super().fit(X, y)


    def factory():
        return Sleepy()
''')


def descendants(pid: int) -> set[int]:
    """Every process below `pid`, read from /proc (field 4 of /proc/PID/stat is the parent)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc")
def test_sigterm_ends_the_run_and_its_workers_with_a_hanging_plugin(tmp_path):
    (tmp_path / "sleepy.py").write_text(SLEEPY)
    process = subprocess.Popen([sys.executable, "-m", "naap", "leaderboard", str(DATA), "--out", "lb",
                                "--predictor-set", "none", "--predictor", "sleepy:factory", "--protocol", "cv",
                                "--budgets", "0", "--jobs", "2", "--quiet"],
                               cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    workers: set[int] = set()
    deadline = time.monotonic() + 120
    while len(workers) < 2 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.5)
        workers = {pid for pid in descendants(process.pid) if "loky" in command_line(pid)}
    assert len(workers) >= 2, "the workers never started"
    time.sleep(2)  # the workers are inside the sleeping fits
    everything = descendants(process.pid)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    # naap's one line; loky's resource tracker, a process of its own, may still report its clean-up
    # of the killed workers' semaphores (naap asks it not to, through PYTHONWARNINGS)
    said = [line for line in err.splitlines() if line.startswith("naap:")]
    assert process.returncode == 143 and said == ["naap: interrupted (SIGTERM)"] and "Traceback" not in err, err
    deadline = time.monotonic() + 30
    while any(alive(pid) for pid in everything) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in everything if alive(pid)]
    assert not (tmp_path / "lb").exists()


def test_proxies_from_the_recipes_real_images(smoke):
    """`naap proxies DIR --recipe R` reads R's first training batch (smoke: its synthetic images)."""
    run = naap("proxies", "smoke", "--recipe", str(REPO / "recipes" / "smoke.yaml"), "--quiet", cwd=smoke.parent)
    assert run.returncode == 0, run.stderr
    real, provenance = load_proxies(smoke)
    assert not provenance["data_free"] and "training images of recipe smoke" in provenance["data"]
    (smoke / PROXIES_FILE).unlink()  # the other tests of this module read smoke without proxies
    from naap.bench.space import scheme_from_dicts
    from naap.rebuild import proxies

    layers = scheme_from_dicts(load_tables(smoke).architectures["layers"].iloc[0])
    data_free = proxies.compute_proxies(layers, in_channels=3, input_size=32, num_classes=10)
    assert real.iloc[0]["snip"] != data_free["snip"] and real.iloc[0]["synflow"] == data_free["synflow"]


def test_the_readme_quotes_the_committed_board():
    """Every cv tau with its interval in README.md's summary, and the noise-ceiling comparison,
    are the numbers of the committed leaderboard/README.md (`make leaderboard` writes it)."""
    readme = (REPO / "README.md").read_text()
    summary = readme[readme.index("## What the leaderboard says"):readme.index("## The library")]
    board = (REPO / "leaderboard" / "README.md").read_text()
    intervals = re.findall(r"\d\.\d{3} \[\d\.\d{3}, \d\.\d{3}\]", summary)
    assert len(intervals) >= 2 and all(f"Kendall τ {interval}" in board for interval in intervals)
    ceiling = next(line for line in board.splitlines() if "Noise ceiling" in line)
    quoted = re.search(r"reach τ ≈ (\d\.\d{3}) on these folds;\s+at 0.6 points, (\d\.\d{3})", summary)
    assert quoted and re.search(rf"τ ≈ \d\.\d{{3}} / {quoted[1]} / {quoted[2]} ", ceiling)
