"""The docs run as written: every snippet of README.md and docs/*.md. Python examples with `>>>` are
doctests (their output checked); other Python blocks run (a block headed `# NAME.py` is that file,
imported and its factories called); every shell command of a bash block or an indented block is
either run from an empty folder (exit 0) or listed in EXEMPT with the reason it is not run here.
The units table of docs/benchmark.md covers every column of both tables."""
import doctest
import importlib
import re
import shlex
import subprocess
import sys

import pytest

from naap.bench.tables import ARCHITECTURES_SCHEMA, EPOCHS_SCHEMA
from tests.conftest import REPO

DOCS = REPO / "docs"
PAGES = [REPO / "README.md", *sorted(DOCS.glob("*.md"))]
# The first word of a line that is a command (not output shown in a block).
COMMAND_WORDS = ("naap", "python", "make", "torchrun", "sbatch", ".venv/bin/naap", ".venv/bin/python")
# Commands the tests do not run, and why. Every other command of the docs runs in test_every_command_runs.
EXEMPT = {
    "make leaderboard": "ranks 44 predictors over every protocol: 3-5 min (tests/board run the same code on small data)",
    "make test": "the whole test suite, which contains this test",
    "make test-avx2": "the whole test suite under an AVX2 CPU's kernels (tests/test_machine.py checks that its "
                      "variables take them)",
    "make dataset": "trains NAAP-440: about 31 h on 2 CPU cores",
    "make dataset RECIPE=recipes/fmnist-mini.yaml": "needs the Debian package dataset-fashion-mnist; "
                                                    "tests/system/test_fmnist_mini.py runs it where present",
    "make dataset RECIPE=recipes/fmnist-seeds.yaml OUT=runs/fmnist-seeds": "about 3 min, and needs dataset-fashion-mnist",
    "naap dataset recipes/naap440.yaml --estimate": "downloads CIFAR-10 (170 MB) to time real training steps",
    "torchrun --nnodes=4 --nproc-per-node=8 --rdzv-backend=c10d --rdzv-endpoint=$HEAD:29500 --rdzv-id=naap440 "
    "-m naap dataset recipes/naap440.yaml --out /shared/runs/naap440": "4 nodes of 8 GPUs",
    "torchrun --nnodes=4 --nproc-per-node=8 --rdzv-backend=c10d --rdzv-endpoint=$HEAD_NODE:29500 --rdzv-id=naap440 "
    "-m naap dataset recipes/naap440.yaml --out /shared/runs/naap440": "4 nodes of 8 GPUs",
    "naap dataset recipes/naap440.yaml --out /shared/runs/naap440 --shard $SLURM_ARRAY_TASK_ID/16":
        "a SLURM array task training NAAP-440 on /shared (tests/system/test_shards.py runs shards on small recipes)",
    "naap dataset recipes/naap440.yaml --out /shared/runs/naap440 --shard 3/16": "a share of NAAP-440: hours",
    "naap merge /shared/runs/naap440": "needs the 16 shards above (tests/system/test_shards.py merges small ones)",
    "#!/bin/bash": "the sbatch script: a SLURM cluster",
    "sbatch --dependency=afterok:$ARRAY_JOB_ID --wrap '.venv/bin/naap merge /shared/runs/naap440'": "a SLURM cluster",
    ".venv/bin/naap leaderboard runs/fmnist-seeds --out runs/fmnist-seeds-leaderboard --budgets 0,1,2":
        "needs the fmnist-seeds rebuild above",
    ".venv/bin/naap leaderboard --predictor-set none --predictor my_predictors:extra_trees_on_the_encoding "
    "--predictor 'GP-ARD (arch)' --out my-board": "every protocol for two predictors: minutes (the plug-in "
                                                     "itself is imported and built by test_every_python_block_runs)",
    "naap leaderboard --predictor-set none --predictor my_predictors:extra_trees_on_the_encoding "
    "--predictor 'GP-ARD (arch)' --out my-board": "as above",
    ".venv/bin/python -m pytest tests/rebuild -q": "a part of the test suite, which contains this test",
    "naap dataset recipes/naap440-seeds.yaml --out runs/naap440-seeds --reuse runs/naap440": "needs a NAAP-440 rebuild",
    "python my_model.py": "the reader's own model on folds.parquet (the Python block of docs/leaderboard.md: 47 s "
                          "on 2 cores); tests/board/test_folds.py round-trips built-in predictors through the files",
    "naap leaderboard --predictions 'my model=predictions.parquet' --out my-board":
        "needs the predictions of the model above and ranks every built-in predictor beside them: minutes",
}
# Run by a test of its own, which also checks what it prints.
SEARCH_EXAMPLE = "python -m naap.examples.search --out search_regret.png"
# Python blocks not run, by a line they hold, and why.
EXEMPT_BLOCKS = {
    'folds = pd.read_parquet("folds.parquet")': "python my_model.py above: fits a model on each of the 148 splits",
}


def fenced(page) -> list[tuple[str, str]]:
    """(language, text) of every fenced block of a page."""
    return re.findall(r"^```(\w*)\n(.*?)^```", page.read_text(), re.S | re.M)


def indented(page) -> list[str]:
    """The text of every block indented by four spaces after a blank line, outside fenced blocks."""
    blocks, current, fence, previous = [], None, False, ""
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            fence = not fence
        if fence or line.startswith("```"):
            current, previous = None, line
            continue
        if line.startswith("    ") and (current is not None or not previous.strip()):
            if current is None:
                current = []
                blocks.append(current)
            current.append(line[4:])
        elif line.strip():
            current = None
        previous = line
    return ["\n".join(block) for block in blocks]


def commands(page) -> list[str]:
    """The shell commands of a page's bash and indented blocks, continuation lines joined and
    comments dropped; a block that is a script (#!) is one entry, its first line."""
    found = []
    for text in [body for language, body in fenced(page) if language == "bash"] + indented(page):
        if text.startswith("#!"):
            found.append(text.splitlines()[0])
            continue
        for line in re.sub(r"\\\n\s*", "", text).splitlines():
            words = shlex.split(line, comments=True)
            if words and words[0] in COMMAND_WORDS:
                found.append(shlex.join(words) if "$" not in line else " ".join(line.split("#")[0].split()))
    return found


def every_command() -> dict[str, str]:
    """command -> the page it is on, over every page."""
    return {command: page.name for page in PAGES for command in commands(page)}


def _normal(command: str) -> str:
    return command if command.startswith("#!") else " ".join(command.split("#")[0].split())


def test_the_cheap_commands_run_and_every_exemption_says_why():
    """What test_every_command_runs runs: every command that is not exempt, the cheap ones among them."""
    run = {_normal(command) for command in every_command()} - {_normal(command) for command in EXEMPT}
    assert {"naap plot --arch 10 --arch 'k3w16s2 k3w24s2 k3w32s1' --out curves.png", SEARCH_EXAMPLE,
            "naap dataset recipes/smoke.yaml --out runs/smoke"} <= run
    assert all(reason.strip() for reason in [*EXEMPT.values(), *EXEMPT_BLOCKS.values()])


def _argv(command: str) -> list[str]:
    words = shlex.split(command)
    head = {"naap": [sys.executable, "-m", "naap"], "python": [sys.executable]}[words[0]]
    return head + words[1:]


@pytest.mark.parametrize("command", sorted({_normal(c) for c in every_command()}
                                           - {_normal(c) for c in EXEMPT} - {SEARCH_EXAMPLE}))
def test_every_command_runs(command, tmp_path):
    """From an empty folder where `recipes` is the shipped recipes (commands name recipes/...)."""
    (tmp_path / "recipes").symlink_to(REPO / "recipes")
    out = subprocess.run(_argv(command), cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, (command, out.stderr)


@pytest.mark.parametrize("page", [p for p in PAGES if any(">>>" in body for _, body in fenced(p))],
                         ids=lambda p: p.name)
def test_every_example_prints_what_the_page_shows(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # from a folder that is not the repository
    failures, tried = doctest.testfile(str(page), module_relative=False, report=True,
                                       optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert tried > 5 and failures == 0


def _python_blocks() -> list[tuple[str, int, str]]:
    return [(page.name, i, body) for page in PAGES for i, (language, body) in enumerate(fenced(page))
            if language == "python" and ">>>" not in body and not any(line in body for line in EXEMPT_BLOCKS)]


@pytest.mark.parametrize("page, index, body", _python_blocks(), ids=lambda v: str(v)[:20])
def test_every_python_block_runs(page, index, body, tmp_path, monkeypatch):
    """A block headed `# NAME.py` is written as that module, imported, and each of its functions
    called (factories take no argument); any other block runs as a script in an empty folder."""
    module = re.match(r"# (\w+)\.py\b", body)
    if module is None:
        out = subprocess.run([sys.executable, "-c", body], cwd=tmp_path, capture_output=True, text=True)
        assert out.returncode == 0, (page, out.stderr)
        return
    (tmp_path / f"{module.group(1)}.py").write_text(body)
    monkeypatch.syspath_prepend(str(tmp_path))
    loaded = importlib.import_module(module.group(1))
    functions = [f for name, f in vars(loaded).items() if callable(f) and getattr(f, "__module__", "") == loaded.__name__]
    assert functions
    for factory in functions:
        assert factory() is not None
    sys.modules.pop(module.group(1))


def test_the_library_page_draws_its_figure(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    doctest.testfile(str(DOCS / "library.md"), module_relative=False, optionflags=doctest.ELLIPSIS)
    assert (tmp_path / "curves.png").stat().st_size > 10_000


def test_the_search_example_prints_the_documented_results_and_draws_the_figure(tmp_path):
    [command] = commands(DOCS / "search.md")
    assert command == SEARCH_EXAMPLE
    out = subprocess.run(_argv(command), cwd=tmp_path, capture_output=True, text=True)
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
