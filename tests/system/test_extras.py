"""Extras by part: with every library of the `build` and `board` extras made unimportable (a
meta-path finder that refuses them), the core works (naap.load(), the queries, search, plots,
recipes), and each command or call that needs an extra says in one line which one to install,
exit 2. The extras of pyproject.toml are the ones the guard names."""
import subprocess
import sys
import tomllib

import pytest

from naap.extras import EXTRAS
from tests.conftest import REPO

# The import names of every library outside the core (pyproject.toml's build and board extras).
OPTIONAL = ("torch", "torchvision", "tqdm", "sklearn", "scipy", "xgboost", "lightgbm", "joblib", "threadpoolctl")
BLOCKER = """
import sys
BLOCKED = {blocked!r}
class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked by the test)", name=name)
        return None
sys.meta_path.insert(0, Refuse())
"""


def run(code: str, cwd, blocked=OPTIONAL):
    return subprocess.run([sys.executable, "-c", BLOCKER.format(blocked=set(blocked)) + code], cwd=cwd,
                          capture_output=True, text=True)


def test_the_blocker_blocks():
    out = run("import sklearn", REPO)
    assert out.returncode == 1 and "blocked by the test" in out.stderr


def test_the_core_works_without_any_extra(tmp_path):
    code = f"""
import naap
from naap import search
from naap.cli import main
bench = naap.load()
assert bench.query(epoch=9).loc[10, "test_accuracy"] == 0.4973
assert bench.curves([1, 2]).shape == (180, 9) and bench.final_accuracy().shape == (440,)
assert bench.cost().loc[1, "num_macs"] == 231600
objective = bench.objective(budget=3e14)
assert search.hyperband(objective, seed=0) in bench.ids()
axes = bench.plot_curves([10, 20])
axes[0].figure.savefig("curves.png")
for args in (["info"], ["recipes"], ["schemes", "naap440", "--limit", "3"],
             ["plot", "--arch", "10", "--out", "cli.png"]):
    assert main(args) == 0, args
assert not [m for m in {OPTIONAL!r} if m in sys.modules]
"""
    out = run(code, tmp_path)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "curves.png").stat().st_size > 10_000 and (tmp_path / "cli.png").stat().st_size > 10_000


@pytest.mark.parametrize("blocked, args, message", [
    (("sklearn",), ["leaderboard", "--out", "board"], "naap leaderboard needs scikit-learn: pip install 'naap[board]'"),
    (OPTIONAL, ["leaderboard", "--out", "board"], "naap leaderboard needs "),
    (("sklearn",), ["predictors"], "naap predictors needs scikit-learn: pip install 'naap[board]'"),
    (("torch",), ["dataset", "smoke", "--estimate"], "naap dataset needs torch: pip install 'naap[build]'"),
    (("torch",), ["proxies", "DIR", "--data-free"], "naap proxies needs torch: pip install 'naap[build]'"),
    (("tqdm",), ["leaderboard", "--out", "board"], "naap leaderboard needs tqdm: pip install 'naap[board]'"),
    (("tqdm",), ["dataset", "smoke", "--estimate"], "naap dataset needs tqdm: pip install 'naap[build]'"),
])
def test_a_command_without_its_extra_names_it_in_one_line(tmp_path, blocked, args, message):
    out = run(f"from naap.cli import main; sys.exit(main({args!r}))", tmp_path, blocked)
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith(f"naap: error: {message}") and len(out.stderr.strip().splitlines()) == 1
    extra = "board" if args[0] in ("leaderboard", "predictors") else "build"
    assert out.stderr.strip().endswith(f": pip install 'naap[{extra}]'")
    assert not list(tmp_path.iterdir())  # nothing written before the error


def test_a_network_without_pytorch_names_the_extra(tmp_path):
    code = """
import naap
try:
    naap.load().network(10)
except ImportError as error:
    assert isinstance(error, naap.NaapError) and isinstance(error, naap.MissingExtra)
    print(error)
"""
    out = run(code, tmp_path, ("torch",))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "Benchmark.network needs torch: pip install 'naap[build]'"


def test_the_extras_of_pyproject_are_the_ones_the_guard_names():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    name = lambda requirement: requirement.split(">")[0].split("=")[0].split("[")[0].strip()
    for extra, modules in EXTRAS.items():
        assert sorted(map(name, extras[extra])) == sorted(modules.values()), extra
    assert extras["all"] == ["naap[build,board]"]
    assert sorted(map(name, project["dependencies"])) == ["PyYAML", "matplotlib", "numpy", "pandas", "pyarrow"]
    assert not any("==" in requirement for requirement in extras["build"])  # torch is not pinned to one build
    assert set(OPTIONAL) == {module for modules in EXTRAS.values() for module in modules}
