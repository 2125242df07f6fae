"""Training: the recipe of docs/benchmark.md (Training) (learning rates, batch order, median), determinism, resume, divergence, DDP."""
import dataclasses
import json
import math
import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from naap.bench.network import build_network
from naap.bench.space import Layer
from naap.errors import NaapError
from naap.rebuild import cuda_memory, settings
from naap.rebuild import train as train_module
from naap.rebuild.datasets import load_dataset, write_synthetic_cifar10
from naap.rebuild.recipe import DatasetSpec, Training, load_recipe
from naap.rebuild.train import EpochMetrics, Stopped, train, with_sync_batchnorm
from tests.conftest import REPO
from tests.oracle import paper_training
from tests.runs import ENV

SMALL = (Layer(3, 12, 2, False), Layer(3, 16, 2, False), Layer(1, 16, 1, True))
OTHER = (Layer(3, 16, 2, False), Layer(3, 24, 2, False), Layer(3, 24, 1, False), Layer(1, 32, 2, False))
# 350 training images in batches of 64: six batches, the last one partial (30 images).
TRAINING = Training(epochs=4, batch_size=64, lr=0.1, momentum=0.9, weight_decay=1e-4, nesterov=False,
                    lr_factor=0.1, lr_cycle=3, mean=0.5, std=0.5, seeds=(7,))


@pytest.fixture(autouse=True, scope="module")
def process_settings():
    """naap's settings, as every naap process has them (train() would apply them at its first call)."""
    settings.apply("cpu")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthetic")
    write_synthetic_cifar10(root, train_size=350, test_size=100)
    return root


@pytest.fixture(scope="module")
def data(data_root):
    return load_dataset(DatasetSpec("cifar10-folder", root=str(data_root)), TRAINING)


def without_seconds(result) -> list[dict]:
    return [{k: v for k, v in dataclasses.asdict(e).items() if k != "epoch_seconds"} for e in result.epochs]


def test_learning_rates_of_all_90_epochs_follow_spec_section_4():
    training = load_recipe(REPO / "recipes" / "naap440.yaml").training
    expected = [0.1, 0.01, 0.001] * 30
    assert [training.lr_at(i) for i in range(1, 91)] == pytest.approx(expected, rel=1e-12)
    assert training.epochs == 90 and math.ceil(50000 / training.batch_size) == 196


def test_recorded_learning_rate_is_the_one_each_step_used(data, monkeypatch):
    used = []
    step = torch.optim.SGD.step
    monkeypatch.setattr(torch.optim.SGD, "step", lambda self, *a, **k: (used.append(self.param_groups[0]["lr"]),
                                                                          step(self, *a, **k))[1])
    result = train(SMALL, data, TRAINING, seed=7)
    assert len(used) == 4 * 6
    assert [e.lr for e in result.epochs] == [TRAINING.lr_at(i) for i in (1, 2, 3, 4)]
    assert used == [e.lr for e in result.epochs for _ in range(6)]


def test_metrics_are_sane_and_the_network_learns(data):
    result = train(SMALL, data, dataclasses.replace(TRAINING, epochs=6), seed=7)
    assert [e.epoch for e in result.epochs] == [1, 2, 3, 4, 5, 6] and not result.diverged
    for e in result.epochs:
        assert e.test_accuracy * 100 == int(e.test_accuracy * 100)  # a fraction of the 100 test images
        assert 0 < e.train_loss_mean < 5 and e.test_loss > 0 and e.epoch_seconds > 0
    assert result.epochs[-1].train_loss_mean < result.epochs[0].train_loss_mean
    assert max(e.test_accuracy for e in result.epochs) > 0.2


def test_training_matches_the_papers_loop_on_another_seed_and_a_partial_last_batch(data, data_root):
    result = train(OTHER, data, TRAINING, seed=7)
    ours = [(e.train_loss_mean, e.train_loss_median, e.test_accuracy) for e in result.epochs]
    assert ours == paper_training(OTHER, str(data_root), TRAINING, seed=7)


def test_same_seed_gives_identical_metrics_and_another_seed_does_not(data):
    first, second = train(SMALL, data, TRAINING, seed=7), train(SMALL, data, TRAINING, seed=7)
    assert without_seconds(first) == without_seconds(second)
    assert without_seconds(train(SMALL, data, TRAINING, seed=8)) != without_seconds(first)


def test_trainings_in_threads_give_the_numbers_of_trainings_one_after_another(data):
    jobs = [(SMALL, 7), (OTHER, 8), (SMALL, 9), (OTHER, 7)]
    alone = [without_seconds(train(scheme, data, TRAINING, seed)) for scheme, seed in jobs]
    with ThreadPoolExecutor(len(jobs)) as pool:
        together = list(pool.map(lambda job: without_seconds(train(job[0], data, TRAINING, job[1])), jobs))
    assert together == alone


def record_train_batches(monkeypatch) -> list[torch.Tensor]:
    """Capture every training batch the network sees (its input images) through a forward pre-hook."""
    seen = []
    build = train_module.build_network

    def build_and_watch(*args, **kwargs):
        net = build(*args, **kwargs)
        net.register_forward_pre_hook(lambda module, inputs: seen.append(inputs[0].clone()) if module.training else None)
        return net
    monkeypatch.setattr(train_module, "build_network", build_and_watch)
    return seen


def test_batch_order_is_shared_by_architectures_and_reshuffled_each_epoch(data, monkeypatch):
    seen = record_train_batches(monkeypatch)
    train(SMALL, data, TRAINING, seed=7)
    small = list(seen)
    seen.clear()
    train(OTHER, data, TRAINING, seed=7)
    assert len(small) == len(seen) == 4 * 6
    assert all(torch.equal(a, b) for a, b in zip(small, seen))
    assert [len(b) for b in small[:6]] == [64] * 5 + [30]
    epochs = [torch.cat(small[i:i + 6]) for i in range(0, 24, 6)]
    flat = data.train_x.flatten(1)
    for images in epochs:  # each epoch is a permutation of the whole training set
        assert torch.equal(torch.sort(images.flatten(1), dim=0)[0], torch.sort(flat, dim=0)[0])
    assert not torch.equal(epochs[0], epochs[1])
    seen.clear()
    train(SMALL, data, TRAINING, seed=8)
    assert not torch.equal(torch.cat(seen[:6]), epochs[0])


def test_losses_are_the_batch_means_as_computed_and_the_median_is_numpys(data, monkeypatch):
    losses = []
    cross_entropy = F.cross_entropy

    def recording(logits, target, **kwargs):
        loss = cross_entropy(logits, target, **kwargs)
        if torch.is_grad_enabled():
            losses.append(loss.item())
        return loss
    monkeypatch.setattr(train_module.F, "cross_entropy", recording)
    result = train(SMALL, data, TRAINING, seed=7)
    for epoch, batch_losses in zip(result.epochs, np.array(losses).reshape(4, 6)):
        middle = np.sort(batch_losses)[2:4]
        assert middle[0] != middle[1] and epoch.train_loss_median == middle.mean() == np.median(batch_losses)
        assert epoch.train_loss_mean == np.mean(batch_losses)


FIVE = dataclasses.replace(TRAINING, epochs=5)


def saved_epochs(checkpoint: Path) -> int:
    return len(torch.load(checkpoint, weights_only=True)["epochs"])


def test_a_killed_run_resumes_from_its_last_checkpoint_to_the_same_numbers(data, tmp_path):
    uninterrupted = train(SMALL, data, FIVE, seed=7)

    class Killed(Exception):
        pass

    def kill_after_epoch_3(metrics: EpochMetrics):
        if metrics.epoch == 3:
            raise Killed
    checkpoint = tmp_path / "run.pt"
    with pytest.raises(Killed):  # checkpoints after epochs 2, 4 and the last: killed after 3, epoch 2 is kept
        train(SMALL, data, FIVE, seed=7, checkpoint=checkpoint, on_epoch=kill_after_epoch_3, checkpoint_every=2)
    assert saved_epochs(checkpoint) == 2
    redone = []
    resumed = train(SMALL, data, FIVE, seed=7, checkpoint=checkpoint, on_epoch=redone.append, checkpoint_every=2)
    assert [m.epoch for m in redone] == [3, 4, 5]
    assert without_seconds(resumed) == without_seconds(uninterrupted)
    finished = train(SMALL, data, FIVE, seed=7, checkpoint=checkpoint, on_epoch=redone.append)
    assert len(redone) == 3 and finished == resumed


@pytest.mark.parametrize("every, seconds, written_after", [
    (2, math.inf, [2, 4, 5]), (10, math.inf, [5]), (1, math.inf, [1, 2, 3, 4, 5]), (10, 0.0, [1, 2, 3, 4, 5])])
def test_checkpoints_are_written_on_the_epoch_or_time_interval_and_at_the_end(data, tmp_path, monkeypatch,
                                                                             every, seconds, written_after):
    written = []
    save = train_module._save_checkpoint
    monkeypatch.setattr(train_module, "_save_checkpoint",
                        lambda path, fingerprint, model, optimizer, epochs, diverged:
                        (written.append(len(epochs)), save(path, fingerprint, model, optimizer, epochs, diverged)))
    train(SMALL, data, FIVE, seed=7, checkpoint=tmp_path / "run.pt", checkpoint_every=every, checkpoint_seconds=seconds)
    assert written == written_after


def test_a_stopped_run_checkpoints_its_finished_epochs_raises_stopped_and_resumes(data, tmp_path):
    uninterrupted = train(SMALL, data, FIVE, seed=7)
    checkpoint, stop = tmp_path / "run.pt", threading.Event()
    with pytest.raises(Stopped) as stopped:
        train(SMALL, data, FIVE, seed=7, checkpoint=checkpoint, stop=stop,
              on_epoch=lambda metrics: metrics.epoch == 3 and stop.set())
    assert stopped.value.epochs == 3 and saved_epochs(checkpoint) == 3
    with pytest.raises(Stopped) as stopped:  # still set: nothing is trained
        train(SMALL, data, FIVE, seed=7, checkpoint=checkpoint, stop=stop, on_epoch=pytest.fail)
    assert stopped.value.epochs == 3
    stop.clear()
    redone = []
    resumed = train(SMALL, data, FIVE, seed=7, checkpoint=checkpoint, stop=stop, on_epoch=redone.append)
    assert [m.epoch for m in redone] == [4, 5] and without_seconds(resumed) == without_seconds(uninterrupted)


def test_a_stop_set_before_the_start_trains_nothing_and_writes_nothing(data, tmp_path):
    stop = threading.Event()
    stop.set()
    with pytest.raises(Stopped) as stopped:
        train(SMALL, data, FIVE, seed=7, checkpoint=tmp_path / "run.pt", stop=stop, on_epoch=pytest.fail)
    assert stopped.value.epochs == 0 and not (tmp_path / "run.pt").exists()


def test_a_stop_during_the_last_epoch_lets_the_run_finish(data):
    stop = threading.Event()
    result = train(SMALL, data, FIVE, seed=7, stop=stop, on_epoch=lambda metrics: metrics.epoch == 5 and stop.set())
    assert len(result.epochs) == 5 and not result.diverged


def test_a_checkpoint_of_another_run_or_a_damaged_one_is_refused(data, tmp_path):
    checkpoint = tmp_path / "run.pt"
    train(SMALL, data, dataclasses.replace(TRAINING, epochs=1), seed=7, checkpoint=checkpoint)
    with pytest.raises(NaapError, match=f"{checkpoint}: checkpoint of another run"):
        train(OTHER, data, dataclasses.replace(TRAINING, epochs=1), seed=7, checkpoint=checkpoint)
    with pytest.raises(NaapError, match=f"{checkpoint}: checkpoint of another run"):
        train(SMALL, data, dataclasses.replace(TRAINING, epochs=1), seed=8, checkpoint=checkpoint)
    checkpoint.write_bytes(checkpoint.read_bytes()[:100])
    with pytest.raises(NaapError, match=f"{checkpoint}: unreadable checkpoint"):
        train(SMALL, data, dataclasses.replace(TRAINING, epochs=1), seed=7, checkpoint=checkpoint)


def test_a_checkpoint_made_under_other_settings_is_refused(data, tmp_path):
    """A training's numbers depend on its thread count: a checkpoint made at 2 threads is not resumed at 1."""
    checkpoint = tmp_path / "run.pt"
    torch.set_num_threads(2)
    try:
        train(SMALL, data, dataclasses.replace(TRAINING, epochs=1), seed=7, checkpoint=checkpoint)
    finally:
        torch.set_num_threads(settings.CPU_THREADS_PER_TRAINING)
    with pytest.raises(NaapError, match=f"{checkpoint}: checkpoint of another run .*settings"):
        train(SMALL, data, dataclasses.replace(TRAINING, epochs=2), seed=7, checkpoint=checkpoint)


@pytest.mark.parametrize("losses, diverged", [
    ([2.3, 1.9, 0.5], False), ([2.3, settings.EXPLODED_LOSS], False), ([2.3, settings.EXPLODED_LOSS * 1.01], True),
    ([2.3, 1e24], True), ([float("inf"), 1.0], True), ([1.0, float("nan")], True), ([-float("inf")], True)])
def test_an_epoch_has_exploded_when_a_batch_loss_is_not_finite_or_above_the_bound(losses, diverged):
    assert train_module.exploded(np.array(losses)) == diverged


def test_a_huge_learning_rate_diverges_and_is_recorded(data, tmp_path):
    """At lr 1e30 the first step moves the weights by ~1e30: the next batch loss is above the bound
    or not finite, whatever the CPU's rounding."""
    huge = dataclasses.replace(TRAINING, lr=1e30, lr_factor=1.0)
    result = train(SMALL, data, huge, seed=7, checkpoint=tmp_path / "run.pt")
    assert result.diverged and result.epochs == []
    again = train(SMALL, data, huge, seed=7, checkpoint=tmp_path / "run.pt", on_epoch=pytest.fail)
    assert again == result


def test_divergence_keeps_the_epochs_finished_before_it(data):
    poisoned = dataclasses.replace(data, train_x=data.train_x.clone())

    def poison_after_epoch_2(metrics: EpochMetrics):
        if metrics.epoch == 2:
            poisoned.train_x[0, 0, 0, 0] = float("inf")
    result = train(SMALL, poisoned, TRAINING, seed=7, on_epoch=poison_after_epoch_2)
    assert result.diverged and [e.epoch for e in result.epochs] == [1, 2]
    assert all(math.isfinite(e.train_loss_mean) for e in result.epochs)


@pytest.mark.parametrize("device, synced", [("cpu", False), ("cuda:1", True)])
def test_batchnorm_is_synchronised_on_cuda_only(device, synced):
    model = with_sync_batchnorm(build_network(SMALL), torch.device(device))
    kinds = {type(m) for m in model.modules()}
    assert (torch.nn.SyncBatchNorm in kinds, torch.nn.BatchNorm2d in kinds) == (synced, not synced)


# --- DDP on two gloo processes -------------------------------------------------------------------

def _ddp_worker(rank: int, world: int, root: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{out}/store", rank=rank, world_size=world)
    try:
        data = load_dataset(DatasetSpec("cifar10-folder", root=root), TRAINING)
        training = dataclasses.replace(TRAINING, epochs=3)
        full = train(SMALL, data, training, seed=7, ddp=True)
        stop = threading.Event()  # set on rank 0 only, after epoch 1: every rank stops there
        try:
            train(SMALL, data, training, seed=7, ddp=True, checkpoint=Path(out) / "run.pt", stop=stop,
                  on_epoch=lambda metrics: rank == 0 and metrics.epoch == 1 and stop.set())
        except Stopped as stopped:
            assert stopped.epochs == 1
        else:
            raise AssertionError(f"rank {rank} did not stop")
        dist.barrier()
        resumed = train(SMALL, data, training, seed=7, ddp=True, checkpoint=Path(out) / "run.pt")
        try:  # every rank gets rank 0's error, none waits for the others
            train(SMALL, data, training, seed=8, ddp=True, checkpoint=Path(out) / "run.pt")
        except NaapError as error:
            assert "checkpoint of another run" in str(error)
        else:
            raise AssertionError("a checkpoint of another seed was accepted")
        Path(out, f"rank{rank}.json").write_text(json.dumps([without_seconds(full), without_seconds(resumed)]))
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("world", [1, 2])
def test_ddp_ranks_agree_and_resume(data, data_root, tmp_path, world):
    mp.start_processes(_ddp_worker, args=(world, str(data_root), str(tmp_path)), nprocs=world,
                       start_method="spawn")
    runs = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(world)]
    full, resumed = runs[0]
    assert all(run == runs[0] for run in runs) and resumed == full
    single = without_seconds(train(SMALL, data, dataclasses.replace(TRAINING, epochs=3), seed=7))
    if world == 1:  # one rank: DDP is the plain loop
        assert full == single
    else:  # per-rank BatchNorm on gloo: the first losses agree closely, not exactly
        assert full != single
        assert full[0]["train_loss_mean"] == pytest.approx(single[0]["train_loss_mean"], rel=0.05)


# --- the settings ---------------------------------------------------------------------------------

def test_settings_are_fp32_deterministic_and_one_thread_per_training():
    settings.apply("cpu")
    assert torch.get_num_threads() == settings.CPU_THREADS_PER_TRAINING == 1
    assert torch.are_deterministic_algorithms_enabled() and not torch.is_deterministic_algorithms_warn_only_enabled()
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    assert not torch.utils.deterministic.fill_uninitialized_memory
    # PyTorch's own default for cuDNN convolutions is TF32
    assert torch.backends.cudnn.conv.fp32_precision == torch.backends.cuda.matmul.fp32_precision == "ieee"
    described = json.loads(json.dumps(settings.describe("cpu")))
    assert described["fp32_precision"]["cudnn.conv"] == "ieee" and described["cpu_threads_per_training"] == 1
    assert described["deterministic_algorithms"] and not described["deterministic_warn_only"]
    assert described["memory_format"] == "contiguous_format" and described["hardware"]["device"] == "cpu"


@pytest.mark.parametrize("user_threads", [None, "2"], ids=["no thread variables", "OMP_NUM_THREADS=2"])
def test_train_applies_the_settings_in_a_fresh_process(data_root, user_threads):
    """A library user who calls train() alone gets naap's settings, and so its numbers: unpinned
    (torch starts with a thread per core) or with the user's own thread variables."""
    script = f"""
import torch
from naap.rebuild.datasets import load_dataset
from naap.rebuild.recipe import DatasetSpec, Training
from naap.bench.space import Layer
from naap.rebuild.train import train
training = Training(**{dataclasses.asdict(dataclasses.replace(TRAINING, epochs=1))!r})
data = load_dataset(DatasetSpec("cifar10-folder", root={str(data_root)!r}), training)
result = train({SMALL!r}, data, training, seed=7)
print(torch.get_num_threads(), torch.backends.cudnn.conv.fp32_precision, result.epochs[0].train_loss_mean)
"""
    env = dict(ENV, **({"OMP_NUM_THREADS": user_threads, "MKL_NUM_THREADS": user_threads} if user_threads else {}))
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stderr
    threads, precision, loss = run.stdout.split()
    here = train(SMALL, load_dataset(DatasetSpec("cifar10-folder", root=str(data_root)), TRAINING),
                 dataclasses.replace(TRAINING, epochs=1), seed=7)
    assert (int(threads), precision, float(loss)) == (1, "ieee", here.epochs[0].train_loss_mean)


def test_the_forward_sees_the_batches_of_the_papers_loaders(data, monkeypatch):
    """Training batches as the paper's shuffled loader, test batches as its test loader (the
    training batch size, not another): on CUDA, cuDNN picks its kernels per shape."""
    seen = []

    def built(*args):
        net = build_network(*args)
        net.register_forward_pre_hook(lambda module, inputs: seen.append((module.training, len(inputs[0]))))
        return net
    monkeypatch.setattr(train_module, "build_network", built)
    train(OTHER, data, dataclasses.replace(TRAINING, epochs=2), seed=7)
    loader = lambda n, shuffle: [len(y) for _, y in torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.zeros(n), torch.zeros(n)), batch_size=TRAINING.batch_size, shuffle=shuffle)]
    epoch = [(True, size) for size in loader(len(data.train_y), True)] + [(False, size) for size in
                                                                          loader(len(data.test_y), False)]
    assert epoch == [(True, 64)] * 5 + [(True, 30), (False, 64), (False, 36)]  # 350 and 100 images
    assert seen == epoch * 2


def test_an_allocation_failure_during_an_epoch_stops_the_run_before_the_epoch_is_kept(data, tmp_path, monkeypatch):
    """cuDNN falls back to another algorithm when its workspace allocation fails: the allocator's
    OOM count (read once per epoch) growing stops the run; the checkpoint keeps the epochs before.
    The same logic as on CUDA, with the allocator's statistics played by a counter."""
    fake_cuda = torch.device("cuda", 0)
    failures, reads = [0], []
    monkeypatch.setattr(torch.cuda, "memory_stats", lambda device: (reads.append(device), {"num_ooms": failures[0]})[1])
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (80 << 30, 80 << 30))
    monkeypatch.setattr(train_module, "AllocationWatch", lambda device: cuda_memory.AllocationWatch(fake_cuda))

    def an_oom_in_epoch_3(metrics: EpochMetrics) -> None:
        if metrics.epoch == 2:
            failures[0] += 1
    checkpoint = tmp_path / "run.pt"
    with pytest.raises(NaapError, match="cuda:0: 1 CUDA allocation.*failed during this epoch"):
        train(SMALL, data, TRAINING, seed=7, checkpoint=checkpoint, checkpoint_every=1, on_epoch=an_oom_in_epoch_3)
    assert saved_epochs(checkpoint) == 2
    assert reads == [fake_cuda] * 4  # at the start, after epochs 1 and 2, and the failing read after epoch 3


def _damaged(state: dict, change: str) -> dict:
    """A checkpoint's state with one field damaged as issue 17's hostile trial did."""
    epochs = state["epochs"]
    return {
        "epochs-as-text": lambda: {**state, "epochs": [{k: str(v) for k, v in e.items()} for e in epochs]},
        "accuracy-7": lambda: {**state, "epochs": [{**e, "test_accuracy": 7.0} for e in epochs]},
        "epochs-not-1-to-n": lambda: {**state, "epochs": [{**e, "epoch": e["epoch"] + 1} for e in epochs]},
        "more-epochs-than-the-recipe": lambda: {**state, "epochs": epochs * 3},
        "a-field-missing": lambda: {**state, "epochs": [{k: v for k, v in e.items() if k != "lr"} for e in epochs]},
        "diverged-as-text": lambda: {**state, "diverged": "no"},
        "model-a-list": lambda: {**state, "model": [1, 2]},
        "model-of-another-shape": lambda: {**state, "model": {k: v[:1] if v.dim() else v for k, v in state["model"].items()}},
        "not-a-dict": lambda: [state],
    }[change]()


@pytest.mark.parametrize("change,field", [
    ("epochs-as-text", "checkpoint fields 'epochs', 'diverged', 'model', 'optimizer': not what naap saves"),
    ("accuracy-7", "column 'test_accuracy': epoch 1 has 7.0 (must be in [0, 1])"),
    ("epochs-not-1-to-n", "checkpoint field 'epochs': epochs [2, 3]..., not 1, 2, ..., n"),
    ("more-epochs-than-the-recipe", "not what naap saves (wrong types, or more than 5 epochs)"),
    ("a-field-missing", "checkpoint fields 'epochs', 'diverged', 'model', 'optimizer': not what naap saves"),
    ("diverged-as-text", "checkpoint fields 'epochs', 'diverged', 'model', 'optimizer': not what naap saves"),
    ("model-a-list", "checkpoint fields 'epochs', 'diverged', 'model', 'optimizer': not what naap saves"),
    ("model-of-another-shape", "checkpoint fields 'model', 'optimizer': do not fit the network"),
    ("not-a-dict", "checkpoint of another run"),
])
def test_a_checkpoint_whose_metrics_or_types_are_wrong_is_one_error_naming_the_field(data, tmp_path, change, field):
    """A checkpoint's metrics are checked as a part's rows are: its epochs never pass into a part unchecked."""
    checkpoint, stop = tmp_path / "run.pt", threading.Event()
    with pytest.raises(Stopped):
        train(SMALL, data, FIVE, seed=7, checkpoint=checkpoint, stop=stop,
              on_epoch=lambda metrics: metrics.epoch == 2 and stop.set())
    torch.save(_damaged(torch.load(checkpoint, weights_only=True), change), checkpoint)
    with pytest.raises(NaapError) as refused:
        train(SMALL, data, FIVE, seed=7, checkpoint=checkpoint, on_epoch=pytest.fail)
    assert str(refused.value).startswith(f"{checkpoint}: ") and field in str(refused.value), str(refused.value)


def test_a_fifo_as_a_checkpoint_is_refused_without_blocking(data, tmp_path):
    checkpoint = tmp_path / "run.pt"
    os.mkfifo(checkpoint)
    with pytest.raises(NaapError, match="a FIFO, not a regular file"):
        train(SMALL, data, FIVE, seed=7, checkpoint=checkpoint, on_epoch=pytest.fail)
