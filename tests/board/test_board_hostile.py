"""`naap leaderboard` against hostile plug-ins, hostile data and hostile command lines: each bad case
is exit 2 and one line naming the plug-in or file and the field, with no traceback, no hang and
the output folder as it was; hostile text that is valid lands escaped in every file."""
import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from html.parser import HTMLParser
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from joblib import cpu_count
from joblib.externals.loky import get_reusable_executor

from naap import cli
from naap.board import fitting
from tests.board.test_leaderboard import SLEEPY, alive, command_line, descendants
from tests.conftest import REPO

DATA = REPO / "data" / "naap440"
QUICK = ["--protocol", "cv", "--budgets", "0", "--cv-repeats", "1", "--quiet"]
HOSTILE_NAME = "<img src=x onerror=alert(1)> | [x](javascript:alert(1)) **b** `c` $\\notacommand$"
HOSTILE_FAMILY = "=cmd|' /C calc'!A0"


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch):
    """A working directory for plug-in modules; workers left by earlier tests cannot import from it."""
    get_reusable_executor().shutdown(wait=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    written = []

    def write(module: str, source: str):
        (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
        written.append(module)

    yield write
    for module in written:
        sys.modules.pop(module, None)
    get_reusable_executor().shutdown(wait=True)


def run_cli(capsys, *argv):
    code = cli.main(list(argv))
    return code, capsys.readouterr()


def one_clear_line(code, output, *needles):
    err = output.err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err


# --- hostile text that is valid: escaped where it lands ---------------------------------------------

def table_rows(readme: str, title: str) -> list[str]:
    section = readme[readme.index(f"## {title}"):]
    section = section[:section.index("\n## ", 3)] if "\n## " in section[3:] else section
    return [line for line in section.splitlines() if line.startswith("|")]


def unescaped_pipes(line: str) -> int:
    return len(re.findall(r"(?<!\\)(?:\\\\)*\|", line))


class Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def test_hostile_plugin_texts_and_provenance_land_escaped_everywhere(plugin_dir, capsys, tmp_path):
    """A plug-in's name, family and description, the proxies' provenance and the dataset's path:
    no tag, link or table break of theirs in README.md or index.html, no formula in summary.csv."""
    plugin_dir("hostile", f'''
        from sklearn.neighbors import KNeighborsRegressor
        from naap.predictors import Predictor

        def factory():
            return Predictor({HOSTILE_NAME!r}, {HOSTILE_FAMILY!r}, KNeighborsRegressor, features="arch",
                             description="<script>alert(1)</script> [d](javascript:alert(2))")
    ''')
    data = tmp_path / "data `x` | <b>y</b>"
    shutil.copytree(DATA, data)
    table = pq.read_table(data / "proxies.parquet")
    provenance = json.loads(table.schema.metadata[b"naap.provenance"])
    provenance["data"] = "<img src=y onerror=alert(3)>\n# injected | heading"
    pq.write_table(table.replace_schema_metadata({b"naap.provenance": json.dumps(provenance).encode()}),
                   data / "proxies.parquet")
    out = tmp_path / "lb"
    code, output = run_cli(capsys, "leaderboard", str(data), "--out", str(out), "--predictor-set", "none",
                           "--predictor", "hostile:factory", "--predictor", "NumMACs alone", "--protocol", "cv,paper",
                           "--budgets", "0", "--cv-repeats", "1", "--jobs", "2", "--quiet")
    assert code == 0, output.err
    readme = (out / "README.md").read_text(encoding="utf-8")
    command = next(line for line in readme.splitlines() if line.startswith("Produced by "))
    assert command.startswith("Produced by ``naap leaderboard ") and command.endswith("``.")  # a code span
    readme = readme.replace(command, "")  # in a code span, nothing is markup
    assert "<img" not in readme and "<script" not in readme and "<b>" not in readme
    links = re.findall(r"(?<!\\)\]\(([^)]*)\)", readme)
    assert links == ["predicted_vs_true.png", "kendall_tau_vs_budget.png", "rank_matrix.png"]  # its figures only
    assert "\n# injected" not in readme
    for title in ("Cross-validation, 0 epochs", "The predictors: what each reads and what is chosen where"):
        rows = table_rows(readme, title)
        assert len(rows) >= 4 and len({unescaped_pipes(row) for row in rows}) == 1, rows
    page = (out / "index.html").read_text(encoding="utf-8")
    parser = Tags()
    parser.feed(page)
    assert [tag for tag, _ in parser.tags if tag in ("script", "a", "iframe")] == ["script"]  # its sort script
    assert [attrs.get("src", "")[:22] for tag, attrs in parser.tags if tag == "img"] == \
        ["data:image/png;base64,"] * 3
    assert "&lt;img src=x onerror=alert(1)&gt;" in page and "&lt;img src=y onerror=alert(3)&gt;" in page
    with open(out / "summary.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    hostile = [row for row in rows if row["predictor"] == HOSTILE_NAME]
    assert hostile and all(row["family"] == "'" + HOSTILE_FAMILY for row in hostile)
    assert all(not row[key].startswith(("=", "+", "-", "@")) for row in rows for key in ("predictor", "family"))
    assert all(0 < float(row["kendall_tau"]) <= 1 and float(row["mae"]) > 0 for row in hostile)  # numbers stay numbers


# --- plug-ins that are wrong: one line each -----------------------------------------------------------

BAD_FIELDS = {
    "a 1 MiB name": ('"n" * (1 << 20), "k-NN", KNeighborsRegressor', "field 'name' has 1,048,576 characters, "
                                                                    "more than 200"),
    "a name on two lines": ('"two\\nlines", "k-NN", KNeighborsRegressor', "field 'name' holds a character that "
                                                                          "is not printable"),
    "a family that is a number": ('"x", 7, KNeighborsRegressor', "field 'family' is a int, not a string"),
    "an unknown feature set": ('"x", "k-NN", KNeighborsRegressor, features="everything"',
                               "field 'features' is 'everything', not a feature set"),
    "a cost that is nan": ('"x", "k-NN", KNeighborsRegressor, cost=float("nan")',
                           "field 'cost' is nan, not a number above 0"),
    "members as text": ('"x", "k-NN", KNeighborsRegressor, members="3"', "field 'members' is '3', not a whole number"),
    "make not callable": ('"x", "k-NN", 3', "field 'make' is a int, not callable"),
    "deterministic as text": ('"x", "k-NN", KNeighborsRegressor, deterministic="yes"',
                              "field 'deterministic' is a str, not True or False"),
}


@pytest.mark.parametrize("case", BAD_FIELDS)
def test_a_predictor_with_a_wrong_field_is_one_line_naming_the_plugin_and_the_field(case, plugin_dir, capsys,
                                                                                     tmp_path):
    arguments, message = BAD_FIELDS[case]
    plugin_dir("wrong", f'''
        from sklearn.neighbors import KNeighborsRegressor
        from naap.predictors import Predictor

        def factory():
            return Predictor({arguments})
    ''')
    start = time.monotonic()
    code, output = run_cli(capsys, "leaderboard", str(DATA), "--out", str(tmp_path / "lb"), "--predictor-set", "none",
                           "--predictor", "wrong:factory", *QUICK)
    one_clear_line(code, output, "predictor 'wrong:factory'", message)
    assert len(output.err) < 400 and time.monotonic() - start < 20 and not (tmp_path / "lb").exists()


@pytest.mark.parametrize("where", ["factory", "import", "fit"])
def test_a_base_exception_from_a_plugin_is_one_line(where, plugin_dir, capsys, tmp_path):
    plugin_dir("boom", f'''
        from sklearn.dummy import DummyRegressor


        class Boom(BaseException):
            pass


        if {where == "import"}:
            raise Boom("at import")


        class Exploding(DummyRegressor):
            def fit(self, X, y):
                raise Boom("in fit")


        def factory():
            if {where == "factory"}:
                raise Boom("in the factory")
            return Exploding()
    ''')
    code, output = run_cli(capsys, "leaderboard", str(DATA), "--out", str(tmp_path / "lb"), "--predictor-set", "none",
                           "--predictor", "boom:factory", "--jobs", "1", *QUICK)
    one_clear_line(code, output, "boom:factory", "Boom: ")
    assert not (tmp_path / "lb").exists()


# --- the command line ------------------------------------------------------------------------------------

@pytest.mark.parametrize("jobs, message", [
    ("99999999999999999999999", "--jobs 99999999999999999999999: give a number of processes from 1 to 1024"),
    ("lots", "--jobs 'lots': expected a whole number (of processes, or -1 for all cores)"),
    ("-7", "--jobs -7: give a number of processes from 1 to 1024, or -1"),
    ("nan", "--jobs 'nan': expected a whole number"),
])
def test_a_huge_or_non_numeric_jobs_is_one_line(jobs, message, capsys, tmp_path):
    code, output = run_cli(capsys, "leaderboard", str(DATA), "--out", str(tmp_path / "lb"), "--predictor-set", "none",
                           "--predictor", "1-NN", "--jobs", jobs, *QUICK)
    one_clear_line(code, output, message)
    assert not (tmp_path / "lb").exists()


@pytest.mark.parametrize("repeats, message", [
    ("99999999999", "--cv-repeats 99999999999: must be at least 1 and at most 100"),
    ("two", "--cv-repeats 'two': expected a whole number"),
])
def test_a_huge_or_non_numeric_cv_repeats_is_one_line(repeats, message, capsys, tmp_path):
    code, output = run_cli(capsys, "leaderboard", str(DATA), "--out", str(tmp_path / "lb"), "--predictor-set", "none",
                           "--predictor", "1-NN", "--protocol", "cv", "--budgets", "0", "--cv-repeats", repeats)
    one_clear_line(code, output, message)
    assert not (tmp_path / "lb").exists()


def test_workers_never_outnumber_the_fits_or_the_cores():
    cores = cpu_count()  # joblib's count: CPU affinity and cgroup quotas honoured
    assert 1 <= cores <= os.cpu_count()
    assert fitting.workers(1024, 12) == min(12, cores)
    assert fitting.workers(-1, 3) == min(3, cores)
    assert fitting.workers(1, 500) == 1 and fitting.workers(8, 1) == 1


def naap(*argv, cwd, env=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "naap", *argv], cwd=cwd, capture_output=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


EXITING = '''
    import os
    from sklearn.dummy import DummyRegressor


    class Exiting(DummyRegressor):
        def fit(self, X, y):
            os._exit({code})


    def factory():
        return Exiting()
'''


@pytest.mark.parametrize("jobs, code", [("1", 0), ("2", 0), ("2", 9)])
def test_a_worker_that_exits_is_named_in_one_line_never_exit_0(jobs, code, tmp_path):
    (tmp_path / "exiting.py").write_text(textwrap.dedent(EXITING.format(code=code)))
    run = naap("leaderboard", str(DATA), "--out", "lb", "--predictor-set", "none", "--predictor", "1-NN",
               "--predictor", "exiting:factory", "--jobs", jobs, *QUICK, cwd=tmp_path)
    said = [line for line in run.stderr.decode().splitlines() if line.startswith("naap:")]
    assert run.returncode == 2 and len(said) == 1 and b"Traceback" not in run.stderr, run.stderr
    assert "a worker process ended without a result" in said[0] and "'exiting:factory'" in said[0]
    if jobs == "1":
        assert "'1-NN'" not in said[0]  # one worker: the fit it was running, and no other
    assert not (tmp_path / "lb").exists()


def test_the_output_is_utf8_whatever_the_locale(tmp_path):
    run = naap("leaderboard", str(DATA), "--out", "lb", "--predictor-set", "none", "--predictor", "1-NN",
               "--jobs", "1", *QUICK, cwd=tmp_path, env={"PYTHONIOENCODING": "ascii", "LC_ALL": "C"})
    assert run.returncode == 0, run.stderr
    assert "Kendall τ" in run.stdout.decode("utf-8")
    undecodable = os.fsdecode(b"data-\xff")  # a path that is not UTF-8: a lone surrogate in Python
    run = naap("leaderboard", undecodable, "--out", "lb2", *QUICK, cwd=tmp_path, env={"PYTHONIOENCODING": "ascii"})
    assert run.returncode == 2 and run.stderr.decode("utf-8").strip().splitlines() == \
        ["naap: error: data-\\udcff: dataset directory not found"], run.stderr


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc")
@pytest.mark.parametrize("jobs, sent", [("2", signal.SIGHUP), ("1", signal.SIGHUP), ("1", signal.SIGTERM)])
def test_sighup_ends_the_run_and_its_workers_as_sigterm_does(tmp_path, jobs, sent):
    """A hanging fit, with two workers or one (SIGTERM too: one worker is its own case)."""
    (tmp_path / "sleepy.py").write_text(SLEEPY)
    process = subprocess.Popen([sys.executable, "-m", "naap", "leaderboard", str(DATA), "--out", "lb",
                                "--predictor-set", "none", "--predictor", "sleepy:factory", "--protocol", "cv",
                                "--budgets", "0", "--jobs", jobs, "--quiet"],
                               cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    workers: set[int] = set()
    deadline = time.monotonic() + 120
    while len(workers) < int(jobs) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.5)
        workers = {pid for pid in descendants(process.pid) if "loky" in command_line(pid)}
    assert len(workers) >= int(jobs), "the workers never started"
    everything = descendants(process.pid)
    process.send_signal(sent)
    _, err = process.communicate(timeout=60)
    said = [line for line in err.splitlines() if line.startswith("naap:")]
    assert process.returncode == 128 + sent and said == [f"naap: interrupted ({sent.name})"], err
    assert "Traceback" not in err, err
    deadline = time.monotonic() + 30
    while any(alive(pid) for pid in everything) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in everything if alive(pid)]
    assert not (tmp_path / "lb").exists()
