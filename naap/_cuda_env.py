"""The CUDA environment naap's numbers need, set at `import naap`, before PyTorch can start CUDA.

cuBLAS is deterministic only with a fixed workspace, and PyTorch reads CUBLAS_WORKSPACE_CONFIG
once per process, at the first cuBLAS call: set later, it would be recorded in the provenance
without being in effect. A value the user set is kept (naap.rebuild.settings.apply refuses a CUDA
started under another one). No PyTorch here: `import naap` stays light.
"""
import os

CUBLAS_WORKSPACE_CONFIG = ":4096:8"


def set_defaults() -> None:
    """Set the variables the user has not set."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE_CONFIG)
