"""The docs run as written: every example of docs/library.md (with its output) and every `naap`
command in a bash block; the units table of docs/benchmark.md covers every column of both tables."""
import doctest
import re
import shlex
import subprocess
import sys

from naap.bench.tables import ARCHITECTURES_SCHEMA, EPOCHS_SCHEMA
from tests.conftest import REPO

DOCS = REPO / "docs"


def test_library_examples_print_what_the_page_shows(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # from a folder that is not the repository
    failures, tried = doctest.testfile(str(DOCS / "library.md"), module_relative=False, report=True,
                                       optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert tried > 20 and failures == 0
    assert (tmp_path / "curves.png").exists()


def _commands(page: str) -> list[list[str]]:
    """The `naap ...` and `python ...` lines of a page's bash blocks, as argument lists to run here."""
    blocks = re.findall(r"```bash\n(.*?)```", (DOCS / page).read_text(), re.S)
    commands = []
    for line in (line for block in blocks for line in block.splitlines()):
        args = shlex.split(line)
        if args and args[0] in ("naap", "python"):
            args = [sys.executable, "-m", "naap", *args[1:]] if args[0] == "naap" else [sys.executable, *args[1:]]
            commands.append([str(REPO / a) if a.startswith("docs/examples/") else a for a in args])
    return commands


def test_the_library_commands_run(tmp_path):
    commands = _commands("library.md")
    assert commands
    for command in commands:
        out = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True)
        assert out.returncode == 0, (command, out.stderr)


def test_the_search_example_prints_the_documented_results_and_draws_the_figure(tmp_path):
    [command] = _commands("search.md")
    out = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    documented = re.search(r"```\n(budget .*?)```", (DOCS / "search.md").read_text(), re.S).group(1)
    assert out.stdout.splitlines()[:-1] == documented.splitlines()
    assert (tmp_path / "search_regret.png").stat().st_size > 10_000
    assert (DOCS / "figures" / "search_regret.png").exists()


def _table_columns(text: str, heading: str) -> list[str]:
    section = text.split(f"### {heading}\n", 1)[1].split("\n#", 1)[0]
    return re.findall(r"^\| `(\w+)` \|", section, re.M)


def test_the_units_table_has_every_column_of_both_tables():
    text = (DOCS / "benchmark.md").read_text()
    assert _table_columns(text, "architectures.parquet") == ARCHITECTURES_SCHEMA.names
    assert _table_columns(text, "epochs.parquet") == EPOCHS_SCHEMA.names
