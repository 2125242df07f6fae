"""naap.rebuild.settings in fresh processes: every TF32 flag reads after apply, and the cuBLAS
workspace is set at `import naap` (a user's own value kept) or a CUDA started under another one is
refused. (The settings' values and their record: tests/rebuild/test_train.py; on a GPU: test_cuda.py.)"""
import subprocess
import sys

import pytest

from tests.runs import ENV

WITHOUT_CUBLAS = {name: value for name, value in ENV.items() if name != "CUBLAS_WORKSPACE_CONFIG"}


def python(code: str, **env) -> subprocess.CompletedProcess:
    """`code` in a fresh interpreter, CUBLAS_WORKSPACE_CONFIG unset unless given."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env=WITHOUT_CUBLAS | env)


def test_every_tf32_flag_reads_after_apply_and_cudnn_flags_can_be_entered():
    """Reading a flag raises when the legacy and new TF32 APIs disagree (cudnn.flags() and
    torch.compile read cudnn.allow_tf32): after apply every one reads, and all say fp32."""
    run = python("""
import torch
from naap.rebuild import settings
settings.apply('cpu')
b = torch.backends
flags = (b.fp32_precision, b.cuda.matmul.fp32_precision, b.cudnn.fp32_precision, b.cudnn.conv.fp32_precision,
         b.cudnn.rnn.fp32_precision, b.mkldnn.fp32_precision, b.mkldnn.conv.fp32_precision,
         b.mkldnn.matmul.fp32_precision)
print(b.cudnn.allow_tf32, b.cuda.matmul.allow_tf32, torch.get_float32_matmul_precision(), *flags)
with b.cudnn.flags(enabled=True, deterministic=True, benchmark=False, allow_tf32=False):
    print(b.cudnn.conv.fp32_precision)
print(b.cudnn.conv.fp32_precision, b.cudnn.allow_tf32)
""")
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["False", "False", "highest"] + ["ieee"] * 8 + ["ieee"] + ["ieee", "False"]


def test_without_apply_the_legacy_cudnn_flag_is_still_tf32():
    """PyTorch's own defaults, which apply changes: the test above would fail without it."""
    run = python("import torch; print(torch.backends.cudnn.allow_tf32, torch.backends.cudnn.conv.fp32_precision)")
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["True", "tf32"]


@pytest.mark.parametrize("given, expected", [(None, ":4096:8"), (":16:8", ":16:8")], ids=["unset", "the user's"])
def test_import_naap_sets_the_cublas_workspace_without_importing_torch(given, expected):
    run = python("import os, sys, naap; print(os.environ['CUBLAS_WORKSPACE_CONFIG'], 'torch' in sys.modules)",
                 **({"CUBLAS_WORKSPACE_CONFIG": given} if given else {}))
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == [expected, "False"]


def test_apply_on_cuda_refuses_a_cuda_started_under_another_cublas_workspace():
    """The workspace is read once, at the first cuBLAS call: too late to change it. (No GPU here:
    PyTorch is told that CUDA is initialised.)"""
    run = python("""
import torch
from naap.errors import NaapError
from naap.rebuild import settings
torch.cuda.is_initialized = lambda: True
try:
    settings.apply('cuda:0')
except NaapError as error:
    print(error)
""", CUBLAS_WORKSPACE_CONFIG=":16:8")
    assert run.returncode == 0, run.stderr
    assert run.stdout.count("\n") == 1
    assert run.stdout.startswith("CUBLAS_WORKSPACE_CONFIG: CUDA was started in this process with ':16:8'; naap's "
                                 "numbers need ':4096:8'")


def test_apply_on_cuda_before_cuda_starts_sets_the_workspace_and_describe_records_the_size_in_effect():
    """A variable removed after `import naap` is set again, PyTorch's own size setting (>= 2.14) is
    given the same 32 MiB, and describe() reads back the size in effect. (No GPU here: the size
    setting is played by a variable.)"""
    run = python("""
import os, torch, naap
from naap.rebuild import settings
del os.environ['CUBLAS_WORKSPACE_CONFIG']
size = [None]
def cublas_workspace_size(bytes=None):
    if bytes is not None:
        size[0] = bytes
    return size[0]
torch.backends.cuda.cublas_workspace_size = cublas_workspace_size
torch.cuda.get_device_name = lambda device: 'a GPU'
settings.apply('cuda:0')
described = settings.describe('cuda:0')
print(os.environ['CUBLAS_WORKSPACE_CONFIG'], size[0], described['cublas_workspace_config'],
      described['cublas_workspace_bytes'], settings.describe('cpu')['cublas_workspace_bytes'])
""")
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == [":4096:8", str(8 * 4096 * 1024), ":4096:8", str(8 * 4096 * 1024), "None"]
