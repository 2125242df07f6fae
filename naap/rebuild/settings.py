"""Every device and numeric setting of a training, in one place (as nanoGPT states its own).

`apply(device)` sets them once per process, before the first training (naap.rebuild.train.train
calls it too, so that a library user gets the same numbers); `describe(device)` records
them, with the versions and the hardware, for the provenance and the checkpoints.
docs/exactness.md says what they guarantee.
"""
from __future__ import annotations

import os
import re
import threading

import torch

from naap import machine
from naap._cuda_env import CUBLAS_WORKSPACE_CONFIG
from naap.errors import NaapError

# One intra-op thread per training on the CPU: a training's numbers depend on its thread count
# (oneDNN splits the weight-gradient reductions by thread), so parallelism comes from several
# trainings at once (processes or threads), never from threads inside one training.
CPU_THREADS_PER_TRAINING = 1
# Inter-op threads run nothing of a training (no torch.jit.fork), so they change no number and
# describe() leaves them out; one is enough.
INTEROP_THREADS = 1
# NCHW everywhere: channels_last BatchNorm on the CPU is ~100x less accurate against float64 and
# gives other numbers than the paper's code, which trained NCHW (on CUDA too).
MEMORY_FORMAT = torch.contiguous_format
# fp32 convolutions and matmuls in IEEE fp32: no TF32 (cuDNN convolutions default to TF32 on
# Ampere and Hopper in PyTorch >= 2.9), no bf16 shortcuts in oneDNN.
FP32_PRECISION = "ieee"
# Deterministic kernels only: a kernel without a deterministic implementation is an error.
DETERMINISTIC = True
# Deterministic mode also fills every new tensor with NaN (a debugging aid costing 12 % of a
# CPU step here); no kernel used by naap reads memory it did not write, so it is off.
FILL_UNINITIALIZED_MEMORY = False
# cuBLAS is deterministic only with a fixed workspace. CUBLAS_WORKSPACE_CONFIG (naap._cuda_env, set
# at `import naap`) is read once per process, when cuBLAS first starts; apply() also sets the size
# through PyTorch's own setting where it exists: 8 buffers of 4096 KiB.
CUBLAS_WORKSPACE_BYTES = 8 * 4096 * 1024
# A run has diverged when a batch loss of an epoch is NaN, infinite or above this. A batch loss
# of 1e4 means the right class's logit lies ~1e4 below the best one: the weights have exploded.
# No NAAP-440 run comes near it: its largest epoch LossMean is 1.88 over 196 batches, so no
# batch loss of it exceeded 196 x 1.88 = 369.
EXPLODED_LOSS = 1e4
# Memory kept free on a CUDA device (naap.rebuild.cuda_memory): when a cuDNN workspace cannot be
# allocated, cuDNN runs another algorithm, silently. The larger of 2 GiB and 10 % of the device.
# (It changes no number: an allocation failure stops the training.)
CUDA_HEADROOM_MIN_BYTES = 2 << 30
CUDA_HEADROOM_FRACTION = 0.1
# Checkpoints are written every CHECKPOINT_EVERY_EPOCHS epochs, or sooner once
# CHECKPOINT_EVERY_SECONDS have passed since the last one, when a run ends and when it is stopped.
CHECKPOINT_EVERY_EPOCHS = 10
CHECKPOINT_EVERY_SECONDS = 300.0
# The test pass runs in batches of training.batch_size, as the paper's test loader did: cuDNN
# chooses its kernels per shape, so on CUDA another batch size may change the last bits.

_lock = threading.Lock()
_applied: set[str] = set()  # "process", and "cuda" once the CUDA part is done


def apply(device: torch.device | str = "cpu") -> None:
    """Set every setting above for this process; idempotent and thread-safe (cheap after the first call).

    Call it before the first CUDA call of the process: cuBLAS reads its workspace setting
    when it starts. The threads are those of every training in the process.
    """
    device = torch.device(device)
    with _lock:
        if "process" not in _applied:
            torch.set_num_threads(CPU_THREADS_PER_TRAINING)
            try:
                torch.set_num_interop_threads(INTEROP_THREADS)
            except RuntimeError:  # allowed once, before any inter-op work; some already ran
                pass
            torch.use_deterministic_algorithms(DETERMINISTIC)
            torch.utils.deterministic.fill_uninitialized_memory = FILL_UNINITIALIZED_MEMORY
            torch.backends.cudnn.deterministic = DETERMINISTIC
            torch.backends.cudnn.benchmark = False
            _set_fp32_precision(FP32_PRECISION)
            _applied.add("process")
        if device.type == "cuda" and "cuda" not in _applied:
            _claim_cublas_workspace()
            _applied.add("cuda")


def _claim_cublas_workspace() -> None:
    """Make CUBLAS_WORKSPACE_CONFIG the one in effect, or refuse a CUDA started under another value:
    PyTorch reads the variable once (the handle pool's workspace size and the deterministic-mode
    check are both cached at the first cuBLAS use), so a change after CUDA work would be recorded
    in the provenance without being in effect."""
    current = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    if current != CUBLAS_WORKSPACE_CONFIG:
        if torch.cuda.is_initialized():  # asks without starting CUDA
            raise NaapError(f"CUBLAS_WORKSPACE_CONFIG: CUDA was started in this process with {current!r}; naap's "
                            f"numbers need {CUBLAS_WORKSPACE_CONFIG!r}: set it in the environment, or import naap "
                            f"before any CUDA work")
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = CUBLAS_WORKSPACE_CONFIG
    if hasattr(torch.backends.cuda, "cublas_workspace_size"):  # PyTorch >= 2.14: wins over the variable
        torch.backends.cuda.cublas_workspace_size(CUBLAS_WORKSPACE_BYTES)


def _set_fp32_precision(precision: str) -> None:
    """The legacy allow_tf32 flags first, then PyTorch's fp32_precision flags (>= 2.9), parents
    before leaves. Every flag then reads back consistently: the new leaves alone leave the legacy
    cuDNN flag True while conv says "ieee", and reading it (cudnn.flags(), torch.compile) raises;
    the new flags first and the legacy ones after reset cudnn.conv to "none"."""
    backends = torch.backends
    tf32 = precision == "tf32"
    backends.cuda.matmul.allow_tf32 = tf32
    backends.cudnn.allow_tf32 = tf32
    torch.set_float32_matmul_precision("high" if tf32 else "highest")
    if hasattr(backends, "fp32_precision") and hasattr(backends.cudnn, "conv"):
        backends.fp32_precision = precision
        for flag in _fp32_precision_flags().values():
            flag.fp32_precision = precision


def _fp32_precision_flags() -> dict:
    """PyTorch's fp32_precision flags by name, parents before leaves."""
    b = torch.backends
    return {"cuda.matmul": b.cuda.matmul, "cudnn": b.cudnn, "cudnn.conv": b.cudnn.conv, "cudnn.rnn": b.cudnn.rnn,
            "mkldnn": b.mkldnn, "mkldnn.conv": b.mkldnn.conv, "mkldnn.matmul": b.mkldnn.matmul}


def describe(device: torch.device | str = "cpu") -> dict:
    """Every setting in effect that can change a training's numbers (JSON-able), with the versions
    and, under "hardware", the device and the CPU. A checkpoint keeps all but the hardware."""
    device = torch.device(device)
    backends = torch.backends
    precision = {"cudnn.allow_tf32": backends.cudnn.allow_tf32,
                 "cuda.matmul.allow_tf32": backends.cuda.matmul.allow_tf32,
                 "float32_matmul_precision": torch.get_float32_matmul_precision()}
    if hasattr(backends, "fp32_precision") and hasattr(backends.cudnn, "conv"):
        precision |= {"backends": backends.fp32_precision,
                      **{name: flag.fp32_precision for name, flag in _fp32_precision_flags().items()}}
    return {
        "cpu_threads_per_training": torch.get_num_threads(),
        "memory_format": str(MEMORY_FORMAT).removeprefix("torch."),
        "fp32_precision": precision,
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "deterministic_warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
        "fill_uninitialized_memory": torch.utils.deterministic.fill_uninitialized_memory,
        "cudnn_deterministic": backends.cudnn.deterministic,
        "cudnn_benchmark": backends.cudnn.benchmark,
        "cublas_workspace_config": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
        "cublas_workspace_bytes": _cublas_workspace_bytes(device),
        "exploded_loss": EXPLODED_LOSS,
        "versions": {"torch": str(torch.__version__), "cuda": torch.version.cuda,
                     "cudnn": backends.cudnn.version() if backends.cudnn.is_available() else None},
        "hardware": {"device": _device_name(device), **cpu_record()},
    }


def _cublas_workspace_bytes(device: torch.device) -> int | None:
    """The cuBLAS workspace size in effect for handles used from now on (CUDA, PyTorch >= 2.14), else None."""
    if device.type != "cuda" or not hasattr(torch.backends.cuda, "cublas_workspace_size"):
        return None
    return torch.backends.cuda.cublas_workspace_size()


def cpu_record() -> dict:
    """The CPU as far as it decides the last bits of a CPU computation (naap.machine.cpu_record),
    with the kernels PyTorch dispatches to on it (its capability) and PyTorch's BLAS."""
    return {**machine.cpu_record(), "cpu_capability": torch.backends.cpu.get_cpu_capability(), "blas": _blas()}


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)


def _blas() -> str | None:
    found = re.search(r"BLAS_INFO=([^,\s]+)", torch.__config__.show())
    return found.group(1) if found else None
