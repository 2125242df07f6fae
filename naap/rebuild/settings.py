"""Every device and numeric setting of a training, in one place (as nanoGPT states its own).

`apply(device)` sets them once per process, before the first training (naap.rebuild.train.train
calls it too, so that a library user gets the same numbers); `describe(device)` records
them, with the versions and the hardware, for the provenance and the checkpoints.
docs/exactness.md says what they guarantee.
"""
from __future__ import annotations

import hashlib
import os
import platform
import re
import threading

import torch

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
# cuBLAS is deterministic only with a fixed workspace; it is read when cuBLAS first starts.
CUBLAS_WORKSPACE_CONFIG = ":4096:8"
# A run has diverged when a batch loss of an epoch is NaN, infinite or above this. A batch loss
# of 1e4 means the right class's logit lies ~1e4 below the best one: the weights have exploded.
# No NAAP-440 run comes near it: its largest epoch LossMean is 1.88 over 196 batches, so no
# batch loss of it exceeded 196 x 1.88 = 369.
EXPLODED_LOSS = 1e4
# Checkpoints are written every CHECKPOINT_EVERY_EPOCHS epochs, or sooner once
# CHECKPOINT_EVERY_SECONDS have passed since the last one, when a run ends and when it is stopped.
CHECKPOINT_EVERY_EPOCHS = 10
CHECKPOINT_EVERY_SECONDS = 300.0
# Images per batch of the test pass (in eval mode each image's output does not depend on it).
EVAL_BATCH = 1024

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
            os.environ["CUBLAS_WORKSPACE_CONFIG"] = CUBLAS_WORKSPACE_CONFIG
            _applied.add("cuda")


def _set_fp32_precision(precision: str) -> None:
    """Through PyTorch's fp32_precision flags (>= 2.9) where they exist, else the allow_tf32 ones."""
    backends = torch.backends
    if hasattr(backends.cudnn, "conv") and hasattr(backends.cudnn.conv, "fp32_precision"):
        for leaf in (backends.cudnn.conv, backends.cudnn.rnn, backends.cuda.matmul,
                     backends.mkldnn.conv, backends.mkldnn.matmul):
            leaf.fp32_precision = precision
    else:
        tf32 = precision == "tf32"
        backends.cuda.matmul.allow_tf32 = tf32
        backends.cudnn.allow_tf32 = tf32
        torch.set_float32_matmul_precision("high" if tf32 else "highest")


def describe(device: torch.device | str = "cpu") -> dict:
    """Every setting in effect that can change a training's numbers (JSON-able), with the versions
    and, under "hardware", the device and the CPU. A checkpoint keeps all but the hardware."""
    device = torch.device(device)
    backends = torch.backends
    if hasattr(backends.cudnn, "conv") and hasattr(backends.cudnn.conv, "fp32_precision"):
        precision = {"cudnn.conv": backends.cudnn.conv.fp32_precision,
                     "cuda.matmul": backends.cuda.matmul.fp32_precision,
                     "mkldnn.conv": backends.mkldnn.conv.fp32_precision,
                     "mkldnn.matmul": backends.mkldnn.matmul.fp32_precision}
    else:
        precision = {"cudnn.allow_tf32": backends.cudnn.allow_tf32,
                     "cuda.matmul.allow_tf32": backends.cuda.matmul.allow_tf32}
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
        "exploded_loss": EXPLODED_LOSS,
        "eval_batch": EVAL_BATCH,
        "versions": {"torch": str(torch.__version__), "cuda": torch.version.cuda,
                     "cudnn": backends.cudnn.version() if backends.cudnn.is_available() else None},
        "hardware": {"device": _device_name(device), **cpu_record()},
    }


def cpu_record() -> dict:
    """The CPU as far as it decides the last bits of a CPU computation: its model, the kernels
    PyTorch dispatches to on it (its capability), a hash of its instruction-set flags (two CPUs
    of one capability can still differ, and the BLAS picks its kernels by them) and the BLAS."""
    return {"cpu": _cpu_model(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "cpu_flags": _cpu_flags(), "blas": _blas()}


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)


def _cpu_flags() -> str | None:
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1] for line in f if line.startswith("flags")), None)
    except OSError:
        return None
    return None if flags is None else hashlib.sha256(" ".join(sorted(flags.split())).encode()).hexdigest()[:16]


def _blas() -> str | None:
    found = re.search(r"BLAS_INFO=([^,\s]+)", torch.__config__.show())
    return found.group(1) if found else None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
