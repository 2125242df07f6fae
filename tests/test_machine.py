"""naap.machine and settings.cpu_record: the record that decides whether numbers made elsewhere are
compared bit for bit. Every variable that moves a library's kernels is in it, and `make test-avx2`'s
variables really take the AVX2 kernels (PyTorch's capability, numpy's dispatch) and change the record."""
import json
import os
import platform
import re
import shlex
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


def test_make_test_avx2_takes_the_avx2_kernels_and_says_so_in_the_record():
    if platform.machine() != "x86_64" or "avx2" not in machine_flags():
        pytest.skip("not an x86-64 CPU with AVX2")
    plain_env = {k: v for k, v in os.environ.items() if k not in machine.KERNEL_VARIABLES}
    variables = makefile_avx2_kernels()
    assert set(variables) <= set(machine.KERNEL_VARIABLES)
    plain, avx2 = probe(plain_env), probe(plain_env | variables)
    assert avx2["record"]["cpu_capability"] == "AVX2" and avx2["numpy_exp"] in ("X86_V3", "AVX2")
    assert avx2["record"]["kernel_variables"] == variables and plain["record"]["kernel_variables"] == {}
    # The same CPU, named the same way: only the variables (and what PyTorch reports) tell the two apart.
    assert {k: avx2["record"][k] for k in ("cpu", "cpu_flags", "blas")} == \
        {k: plain["record"][k] for k in ("cpu", "cpu_flags", "blas")}
    if "avx512f" in machine_flags():  # here the plain run takes wider kernels than the AVX2 run
        assert plain["record"]["cpu_capability"].startswith("AVX512") and plain["numpy_exp"] != avx2["numpy_exp"]


def machine_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            return set(next(line for line in f if line.startswith("flags")).split(":", 1)[1].split())
    except (OSError, StopIteration):
        return set()
