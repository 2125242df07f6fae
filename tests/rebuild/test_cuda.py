"""CUDA: naap against the paper's loop on the GPU, device images equal to the CPU's, fp32 without TF32 (every
flag readable), the cuBLAS workspace in effect, no failed allocation, deterministic, threads (each its own
stream) equal to one training after another, DDP with SyncBatchNorm, no context on GPU 0 from a thread
training on another GPU, cohorts (eager and CUDA graphs) equal to their members trained alone.
Skipped without a GPU (the same logic on the CPU is in tests/rebuild/test_train.py); without one,
`make gpu-check` is checked to say so."""
import dataclasses
import importlib.util
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from naap._io import read_provenance, write_parquet
from naap.bench.space import Layer
from naap.bench.tables import EPOCHS_SCHEMA
from naap.rebuild import cohort_graphs, settings
from naap.rebuild.cohort import train_cohort
from naap.rebuild.datasets import load_dataset, write_synthetic_cifar10
from naap.rebuild.recipe import DatasetSpec, Training
from naap.rebuild.train import train
from tests.conftest import REPO
from tests.oracle import SCHEMES, paper_training

needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")

SMALL = (Layer(3, 12, 2, False), Layer(3, 16, 2, False), Layer(1, 16, 1, True))
OTHER = (Layer(3, 16, 2, False), Layer(3, 24, 2, False), Layer(3, 24, 1, False), Layer(1, 32, 2, False))
TRAINING = Training(epochs=4, batch_size=64, lr=0.1, momentum=0.9, weight_decay=1e-4, nesterov=False,
                    lr_factor=0.1, lr_cycle=3, mean=0.5, std=0.5, seeds=(7,))


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("synthetic")
    write_synthetic_cifar10(root, train_size=350, test_size=100)
    return str(root)


@pytest.fixture(scope="module")
def data(data_root):
    settings.apply("cuda:0")
    return load_dataset(DatasetSpec("cifar10-folder", root=data_root), TRAINING, device="cuda:0")


def without_seconds(result) -> list[dict]:
    return [{k: v for k, v in dataclasses.asdict(e).items() if k != "epoch_seconds"} for e in result.epochs]


@needs_gpu
@pytest.mark.parametrize("scheme", SCHEMES.values(), ids=SCHEMES.keys())
def test_naap_trains_bit_identically_to_the_papers_loop_on_the_gpu(scheme, data, data_root):
    """tests/oracle.py's paper_training on cuda:0: the images normalised on the CPU by
    torchvision and moved per batch, tested in batches of the training batch size, against naap's."""
    naap = [(e.train_loss_mean, e.train_loss_median, e.test_accuracy)
            for e in train(scheme, data, TRAINING, TRAINING.seeds[0]).epochs]
    assert naap == paper_training(scheme, data_root, TRAINING, TRAINING.seeds[0], device="cuda:0")


@needs_gpu
@pytest.mark.parametrize("mean, std", [(0.5, 0.5), (0.4914, 0.247)])
def test_device_images_equal_the_cpu_images_bit_for_bit(data_root, mean, std):
    """The CPU's are torchvision's (tests/rebuild/test_datasets.py); a division on the device would
    differ for about half of the pixel values."""
    training = dataclasses.replace(TRAINING, mean=mean, std=std)
    spec = DatasetSpec("cifar10-folder", root=data_root)
    on_gpu, on_cpu = load_dataset(spec, training, device="cuda:0"), load_dataset(spec, training, device="cpu")
    for name in ("train_x", "test_x"):
        assert torch.equal(getattr(on_gpu, name).cpu().view(torch.int32), getattr(on_cpu, name).view(torch.int32))


@needs_gpu
def test_every_tf32_flag_reads_after_apply_on_cuda(data):
    b = torch.backends
    assert (b.cudnn.allow_tf32, b.cuda.matmul.allow_tf32, torch.get_float32_matmul_precision()) == (False, False, "highest")
    assert {flag.fp32_precision for flag in (b.cuda.matmul, b.cudnn, b.cudnn.conv, b.cudnn.rnn)} == {"ieee"}
    with b.cudnn.flags(enabled=True, deterministic=True, benchmark=False, allow_tf32=False):
        assert b.cudnn.conv.fp32_precision == "ieee"
    assert b.cudnn.conv.fp32_precision == "ieee"


@needs_gpu
def test_the_cublas_workspace_in_effect_is_the_recorded_one(data):
    (torch.ones(64, 64, device="cuda:0") @ torch.ones(64, 64, device="cuda:0")).sum().item()
    described = settings.describe("cuda:0")
    assert described["cublas_workspace_config"] == os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    if hasattr(torch.backends.cuda, "cublas_workspace_size"):
        assert described["cublas_workspace_bytes"] == torch.backends.cuda.cublas_workspace_size() == 8 * 4096 * 1024


@needs_gpu
def test_a_cuda_started_under_another_cublas_workspace_is_refused_in_one_line():
    script = """
import torch
(torch.ones(8, 8, device="cuda:0") @ torch.ones(8, 8, device="cuda:0")).sum().item()
from naap.errors import NaapError
from naap.rebuild import settings
try:
    settings.apply("cuda:0")
except NaapError as error:
    print(error)
"""
    env = dict(os.environ, CUBLAS_WORKSPACE_CONFIG=":16:8")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stderr
    assert run.stdout.count("\n") == 1 and run.stdout.startswith("CUBLAS_WORKSPACE_CONFIG: CUDA was started")


@needs_gpu
def test_a_training_fails_no_cuda_allocation(data):
    """No OOM caught by cuDNN (which would have run another algorithm) during a training."""
    before = torch.cuda.memory_stats("cuda:0").get("num_ooms", 0)
    train(OTHER, data, TRAINING, seed=7)
    assert torch.cuda.memory_stats("cuda:0").get("num_ooms", 0) == before


@needs_gpu
def test_fp32_convolutions_and_matmuls_are_ieee_not_tf32(data):
    """Against float64: TF32 (10-bit mantissa) errs by ~1e-3 relative, IEEE fp32 by ~1e-6."""
    assert torch.backends.cudnn.conv.fp32_precision == torch.backends.cuda.matmul.fp32_precision == "ieee"
    generator = torch.Generator().manual_seed(0)
    a, b = torch.randn(512, 512, generator=generator), torch.randn(512, 512, generator=generator)
    x, w = torch.randn(8, 64, 16, 16, generator=generator), torch.randn(64, 64, 3, 3, generator=generator)
    for ours, exact in ((a.cuda() @ b.cuda(), a.double() @ b.double()),
                        (torch.conv2d(x.cuda(), w.cuda(), padding=1), torch.conv2d(x.double(), w.double(), padding=1))):
        error = ((ours.cpu().double() - exact).abs().max() / exact.abs().max()).item()
        assert error < 1e-5


@needs_gpu
def test_training_on_cuda_is_deterministic(data):
    assert torch.are_deterministic_algorithms_enabled() and not torch.is_deterministic_algorithms_warn_only_enabled()
    assert without_seconds(train(OTHER, data, TRAINING, seed=7)) == without_seconds(train(OTHER, data, TRAINING, seed=7))


@needs_gpu
def test_four_trainings_in_threads_each_on_its_stream_equal_them_one_after_another(data):
    jobs = [(SMALL, 7), (OTHER, 8), (SMALL, 9), (OTHER, 7)]
    alone = [without_seconds(train(scheme, data, TRAINING, seed)) for scheme, seed in jobs]
    torch.cuda.synchronize(data.train_x.device)  # the data came on the default stream

    def on_its_stream(job) -> list[dict]:
        with torch.cuda.stream(torch.cuda.Stream(data.train_x.device)):
            return without_seconds(train(job[0], data, TRAINING, job[1]))
    with ThreadPoolExecutor(len(jobs)) as pool:
        together = list(pool.map(on_its_stream, jobs))
    assert together == alone


@needs_gpu
def test_ddp_with_syncbatchnorm_on_one_rank_equals_the_plain_training_and_does_not_broadcast_buffers(
        data, tmp_path, monkeypatch):
    made = []
    ddp = torch.nn.parallel.DistributedDataParallel
    monkeypatch.setattr(torch.nn.parallel, "DistributedDataParallel",
                        lambda module, **kwargs: (made.append((module, kwargs)), ddp(module, **kwargs))[1])
    torch.distributed.init_process_group("nccl", init_method=f"file://{tmp_path}/store", rank=0, world_size=1)
    try:
        together = train(SMALL, data, TRAINING, seed=7, ddp=True)
    finally:
        torch.distributed.destroy_process_group()
    (module, kwargs), = made
    assert kwargs["broadcast_buffers"] is False and kwargs["device_ids"] == [0]
    assert any(isinstance(m, torch.nn.SyncBatchNorm) for m in module.modules())
    assert without_seconds(together) == without_seconds(train(SMALL, data, TRAINING, seed=7))


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_a_thread_training_on_gpu_1_opens_no_context_on_gpu_0(data_root):
    script = f"""
import torch
from concurrent.futures import ThreadPoolExecutor
from naap.rebuild.datasets import load_dataset
from naap.rebuild.recipe import DatasetSpec, Training
from naap.bench.space import Layer
from naap.rebuild.train import train
from tests.conftest import REPO
from tests.oracle import SCHEMES, paper_training
training = Training(**{dataclasses.asdict(TRAINING)!r})
data = load_dataset(DatasetSpec("cifar10-folder", root={data_root!r}), training, device="cuda:1")
ThreadPoolExecutor(1).submit(train, {SMALL!r}, data, training, 7).result()
print(torch._C._cuda_hasPrimaryContext(0), torch._C._cuda_hasPrimaryContext(1))
"""
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["False", "True"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here: `make gpu-check` runs for real")
def test_gpu_check_without_a_gpu_says_so_in_one_line_and_exits_2():
    run = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py")], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 2 and run.stdout.count("\n") == 1 and "no CUDA GPU" in run.stdout


@needs_gpu
@pytest.mark.parametrize("engine", ["cohort", "cohort-graphs"])
def test_a_cohort_on_cuda_equals_its_members_trained_alone(data, engine):
    """Three lr graphs (4 epochs: 0.1, 0.01, 0.001, then 0.1 replayed), the partial batch eager, no OOM
    caught inside PyTorch (cuDNN would have fallen back to other kernels)."""
    schemes = [SMALL, OTHER, SMALL, OTHER]
    alone = [without_seconds(train(scheme, data, TRAINING, seed=7)) for scheme in schemes]
    ooms = torch.cuda.memory_stats(0).get("num_ooms", 0)
    together = train_cohort(schemes, data, TRAINING, seed=7, engine=engine)
    assert [without_seconds(r) for r in together] == alone
    assert torch.cuda.memory_stats(0).get("num_ooms", 0) == ooms


@needs_gpu
def test_cohort_graphs_capture_one_graph_per_learning_rate(data, monkeypatch):
    made = []
    real = cohort_graphs.GraphEngine._replay

    def replay(self, lr, body):
        real(self, lr, body)
        made.append(sorted(self.graphs))
    monkeypatch.setattr(cohort_graphs.GraphEngine, "_replay", replay)
    train_cohort([SMALL, OTHER], data, TRAINING, seed=7, engine="cohort-graphs")
    assert made[-1] == sorted({TRAINING.lr_at(epoch) for epoch in range(1, TRAINING.epochs + 1)})


def test_gpu_check_names_the_first_difference_between_two_datasets(smoke_run, tmp_path):
    """gpu_check's comparison (exit 1 names it), on the CPU: a copy of a dataset, then one value one ulp off."""
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "benchmarks" / "gpu_check.py")
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)
    copy = Path(shutil.copytree(smoke_run, tmp_path / "copy"))
    assert gpu_check.first_difference(smoke_run, copy) is None
    epochs = pd.read_parquet(copy / "epochs.parquet")
    row = epochs.iloc[5]
    epochs.loc[5, "train_loss_mean"] = np.nextafter(row["train_loss_mean"], np.inf)
    write_parquet(epochs, copy / "epochs.parquet", EPOCHS_SCHEMA, provenance=read_provenance(copy / "epochs.parquet"))
    assert gpu_check.first_difference(smoke_run, copy).startswith(
        f"epochs (arch_id={int(row['arch_id'])}, seed={int(row['seed'])}, epoch={int(row['epoch'])}), "
        f"column train_loss_mean: {row['train_loss_mean']} vs ")
