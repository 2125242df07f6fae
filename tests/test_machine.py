"""naap.machine and settings.cpu_record: the record that decides whether numbers made elsewhere are
compared bit for bit. Every variable that moves a library's kernels is in it; the Makefile's
AVX2_KERNELS (under which `make leaderboard` and `make test-avx2` run on a CPU with AVX2) really take
the AVX2 kernels (PyTorch's capability, numpy's dispatch) and change the record."""
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys

import pytest

from naap import machine
from tests.conftest import REPO

PROBE = """
import json
from numpy.lib import introspect
from naap.rebuild import settings
exp = introspect.opt_func_info(func_name="exp", signature="float64")["exp"]["dd"]["current"]
print(json.dumps({"numpy_exp": exp, "record": settings.cpu_record()}))
"""


def makefile_avx2_kernels() -> dict[str, str]:
    line = re.search(r"^AVX2_KERNELS := (.*)$", (REPO / "Makefile").read_text(), re.MULTILINE).group(1)
    return dict(item.split("=", 1) for item in shlex.split(line))


def probe(env: dict[str, str]) -> dict:
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120,
                          cwd=REPO)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize("name", machine.KERNEL_VARIABLES)
def test_a_kernel_variable_set_is_in_the_record_and_changes_it(name, monkeypatch):
    for other in machine.KERNEL_VARIABLES:
        monkeypatch.delenv(other, raising=False)
    unset = machine.cpu_record()
    monkeypatch.setenv(name, "AVX2")
    record = machine.cpu_record()
    assert unset["kernel_variables"] == {} and record["kernel_variables"] == {name: "AVX2"}
    assert record != unset


def has_avx2() -> bool:
    return platform.machine() == "x86_64" and {"avx2", "fma"} <= machine_flags()


def test_the_avx2_kernels_are_taken_and_said_in_the_record():
    if not has_avx2():
        pytest.skip("not an x86-64 CPU with AVX2 and FMA")
    plain_env = {k: v for k, v in os.environ.items() if k not in machine.KERNEL_VARIABLES}
    variables = makefile_avx2_kernels()
    assert set(variables) <= set(machine.KERNEL_VARIABLES)
    plain, avx2 = probe(plain_env), probe(plain_env | variables)
    # numpy >= 2.4 calls its AVX-512 targets X86_V4, older ones AVX512F, AVX512_SKX...
    assert avx2["record"]["cpu_capability"] == "AVX2" and not avx2["numpy_exp"].startswith(("X86_V4", "AVX512"))
    assert avx2["record"]["kernel_variables"] == variables and plain["record"]["kernel_variables"] == {}
    # The same CPU, named the same way: only the variables (and what PyTorch reports) tell the two apart.
    assert {k: avx2["record"][k] for k in ("cpu", "cpu_flags", "blas")} == \
        {k: plain["record"][k] for k in ("cpu", "cpu_flags", "blas")}
    if "avx512f" in machine_flags():  # here the plain run takes wider kernels than the AVX2 run
        assert plain["record"]["cpu_capability"].startswith("AVX512") and plain["numpy_exp"] != avx2["numpy_exp"]


def make_dry_run(target: str) -> list[str]:
    """The commands make would run for `target`, as it prints them."""
    if shutil.which("make") is None:
        pytest.skip("no make here")
    done = subprocess.run(["make", "-n", target], cwd=REPO, capture_output=True, text=True, timeout=60)
    return done.stdout.splitlines()


def variables_before(line: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in shlex.split(line.split(".venv/bin/")[0]))


def test_make_leaderboard_ranks_under_the_avx2_kernels_where_the_cpu_has_them():
    line = next(line for line in make_dry_run("leaderboard") if "naap leaderboard" in line)
    assert variables_before(line) == (makefile_avx2_kernels() if has_avx2() else {})


def test_make_test_avx2_runs_the_suite_under_them_or_refuses_without_avx2():
    lines = make_dry_run("test-avx2")
    assert variables_before(next(line for line in lines if "python -m pytest" in line)) == makefile_avx2_kernels()
    assert any("has no AVX2 and FMA" in line and "exit 2" in line for line in lines)


def machine_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            return set(next(line for line in f if line.startswith("flags")).split(":", 1)[1].split())
    except (OSError, StopIteration):
        return set()
