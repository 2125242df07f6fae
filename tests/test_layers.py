"""The layers of the package, read from its imports with `ast`: core <- bench <- {rebuild, board} <- cli,
and naap.examples (scripts run with `python -m`) on bench, beside rebuild and board.

A module imports only from its own part or the parts below it (rebuild and board do not import each
other), no import cycle joins two modules, and an import inside a function carries a comment saying
why (a heavy library loaded late). The checker is shown to fail on an upward import and on a cycle
added to the real sources.
"""
import ast
import subprocess
import sys

import pytest

from tests.conftest import REPO

PACKAGE = REPO / "naap"
PARTS = ("bench", "rebuild", "board", "cli", "examples")
# The parts each part may import from, besides its own.
BELOW = {"core": set(), "bench": {"core"}, "rebuild": {"core", "bench"}, "board": {"core", "bench"},
         "cli": {"core", "bench", "rebuild", "board"}, "examples": {"core", "bench"}}
# The old import paths that docs and plug-ins use, each an alias of the module that now holds it.
ALIASES = {"naap.search": "naap.bench.search", "naap.plot": "naap.bench.plot", "naap.predictors": "naap.board.predictors"}


def real_sources() -> dict[str, str]:
    """module name -> source, for every module of the package."""
    sources = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        sources[name] = path.read_text(encoding="utf-8")
    return sources


def part_of(module: str) -> str:
    if module == "naap.__main__":  # `python -m naap` is the command line
        return "cli"
    pieces = module.split(".")
    return pieces[1] if len(pieces) > 1 and pieces[1] in PARTS else "core"


def imported(module: str, source: str, modules: set[str]) -> list[tuple[int, str, bool, bool]]:
    """(line, imported naap module, inside a function, commented) for each import of a naap module."""
    lines = source.splitlines()
    tree = ast.parse(source)
    inside = {id(node) for fn in ast.walk(tree) if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
              for node in ast.walk(fn)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            targets = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                       for a in node.names]
        else:
            continue
        commented = "#" in lines[node.lineno - 1] or _comment_above(lines, node.lineno - 1)
        for target in targets:
            if target.split(".")[0] == "naap" or isinstance(node, ast.Import):
                found.append((node.lineno, target, id(node) in inside, commented))
    return found


def _comment_above(lines: list[str], index: int) -> bool:
    """A comment line right above the block of imports (and the statements between them) that holds lines[index]."""
    index -= 1
    while index >= 0 and lines[index].strip() and not lines[index].strip().startswith("#"):
        index -= 1
    return index >= 0 and lines[index].strip().startswith("#")


def check(sources: dict[str, str]) -> list[str]:
    """Every breach of the rules in `sources` (module name -> source), one line each."""
    modules = set(sources)
    graph: dict[str, set[str]] = {module: set() for module in modules}
    breaches = []
    for module, source in sources.items():
        for line, target, in_function, commented in imported(module, source, modules):
            if in_function and not commented:
                breaches.append(f"{module}:{line}: imports {target} inside a function without a comment saying why")
            if target not in modules or module in ALIASES:
                continue
            graph[module].add(target)
            if part_of(target) != part_of(module) and part_of(target) not in BELOW[part_of(module)]:
                breaches.append(f"{module}:{line}: imports {target} ({part_of(module)} may not import {part_of(target)})")
    breaches += [f"import cycle: {' -> '.join(cycle)}" for cycle in _cycles(graph)]
    return breaches


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each group of modules that import each other (depth-first search)."""
    state, stack, cycles = {}, [], []

    def visit(module):
        state[module] = "open"
        stack.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                cycles.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module)
    return cycles


def test_the_package_keeps_its_layers():
    assert check(real_sources()) == []


def test_every_part_is_a_package_and_every_alias_is_its_module():
    import importlib

    sources = real_sources()
    assert {part for part in PARTS if f"naap.{part}" in sources} == set(PARTS)
    for alias, module in ALIASES.items():
        assert importlib.import_module(alias) is importlib.import_module(module)


@pytest.mark.parametrize("module, added, breach", [
    ("naap.bench.arch", "from naap.rebuild.train import train", "bench may not import rebuild"),
    ("naap.errors", "import naap.bench.tables", "core may not import bench"),
    ("naap.rebuild.merge", "from naap.board.features import wide_frame", "rebuild may not import board"),
    ("naap.board.metrics", "from naap.cli import main", "board may not import cli"),
    ("naap.bench.counts", "from naap.bench.query import load", "import cycle"),
    ("naap.bench.split", "def f():\n    import naap.bench.tables", "inside a function without a comment"),
])
def test_the_check_fails_on_a_breach_added_to_the_real_sources(module, added, breach):
    sources = real_sources()
    sources[module] += f"\n{added}\n"
    found = check(sources)
    assert any(breach in line for line in found), found


def test_the_benchmark_loads_and_answers_without_pytorch_yaml_or_scikit_learn(tmp_path):
    """naap.bench is the part a notebook or a search algorithm uses: from any folder, loading the
    shipped NAAP-440 and querying it pulls in none of the builder's or the leaderboard's libraries."""
    code = ("import sys, naap; bench = naap.load(); bench.query(None, epoch=9); bench.objective(budget=1e14); "
            "print(' '.join(m for m in ('torch', 'yaml', 'sklearn', 'matplotlib', 'scipy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == []
